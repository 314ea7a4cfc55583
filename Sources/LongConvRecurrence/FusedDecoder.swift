import CDecodeKernels
import Foundation
import LongConv
import Synchronization

/// One decoding step of a ``RecurrentLanguageModel`` as a single pass over packed weights,
/// run by a team of threads that stays alive between tokens.
///
/// A step reads every weight once (about 19 MB for the benchmark model: d = 256, 6 layers) and,
/// for ETSC layers, every state once: it is memory-bound. Going through the model's modules
/// costs an allocation and a BLAS call per product and a hand-off to other threads per
/// parallel op. Here member `t` of a team of `T` owns a fixed slice `C_t` of each block's
/// inner channels and a slice `K_t` of its channel mixer's hidden features, the products run
/// in vector kernels chosen for the machine (`lck_kernel_isa`), and the members meet at two
/// spinning barriers per block:
///
/// ```
/// mixer:    z = norm1(h) (pre-norm) or h
///           u, v = W_u z, W_v z on C_t;  g = SiLU(u) * rec(SiLU(v)) on C_t
///           p_t = W_o[:, C_t] g[C_t]                                         barrier
///           m = sum_t p_t + b_o;  h = h + m (pre-norm) or norm1(h + m)
/// channels: z = norm2(h) or h;  a = SiLU(W_1 z) * (W_2 z) (GLU) or act(W_1 z) (MLP) on K_t
///           p_t = W_3[:, K_t] a[K_t] (GLU; W_2 for the MLP)                  barrier
///           m = sum_t p_t + b_3;  h = h + m or norm2(h + m)
/// head:     logits = E finalNorm(h), vocabulary rows split over the members
/// ```
///
/// Splitting the output products by columns lets a member go from its own gated channels
/// straight to its partial output; every member keeps the whole residual stream `h` (only `d`
/// wide), so only the partial outputs cross between members (double-buffered: a member may
/// write the next phase's partial while another still sums the last one).
///
/// Covered: blocks whose mixer is a gated Toeplitz unit with any converted kernel and whose
/// channel mixer is a GLU or an MLP, pre- or post-norm, any norm. Other models step through
/// their modules (``make(model:mixers:)`` returns nil). The weights are copied when the decoder
/// is made: like the converted kernels, the recurrent model is a snapshot of the model at
/// conversion. One step runs at a time per decoder.
final class FusedDecoder: @unchecked Sendable {
  private let width: Int
  private let vocabulary: Int
  private let embedding: RowSlices
  private let finalNorm: RowNorm
  private let layers: [Layer]
  private let team: OpaquePointer
  private let members: Int
  private let scratch: Scratch
  /// Serialises steps: the scratch and the team serve one step at a time.
  private let running = Mutex(())

  private struct Layer {
    let prenorm: Bool
    let norm1: RowNorm, norm2: RowNorm
    let u: RowSlices, v: RowSlices
    let o: ColumnSlices
    let recurrence: PackedRecurrence
    let channelMixer: ChannelMixerForm
  }

  private enum ChannelMixerForm {
    /// `W_3 (SiLU(W_1 z) * (W_2 z))`.
    case glu(RowSlices, RowSlices, ColumnSlices)
    /// `W_2 act(W_1 z)`.
    case mlp(RowSlices, ColumnSlices, activation: String)
  }

  /// A decoder for `model` with `mixers` as its recurrent mixers, or nil when some block is not
  /// covered (then the model steps through its modules).
  static func make(model: CausalLanguageModel, mixers: [any RecurrentMixer]) -> FusedDecoder? {
    // Check coverage before starting threads or copying weights.
    for (block, mixer) in zip(model.blocks, mixers) {
      guard mixer is any FusableGatedUnit else { return nil }
      let coveredMLP = (block.channelMixer as? MLP).map { ["gelu", "relu", "silu"].contains($0.activation) }
      guard block.channelMixer is GLU || coveredMLP == true else { return nil }
    }
    guard !model.blocks.isEmpty, let team = lck_team_create(Int32(ComputeThreads.count)) else { return nil }
    return FusedDecoder(model: model, mixers: mixers, team: team)
  }

  private init(model: CausalLanguageModel, mixers: [any RecurrentMixer], team: OpaquePointer) {
    let d = model.embedding.width
    let members = Int(lck_team_size(team))
    let arena = Arena()
    width = d
    vocabulary = model.embedding.vocabulary
    embedding = RowSlices(model.embedding.weight, bias: nil, members: members, arena: arena)
    finalNorm = RowNorm(model.finalNorm, width: d)
    layers = zip(model.blocks, mixers).map { block, mixer in
      let parts = (mixer as! any FusableGatedUnit).fusableParts
      let inner = RowSlices(parts.u, members: members, arena: arena)
      let channelMixer: ChannelMixerForm
      if let glu = block.channelMixer as? GLU {
        let l1 = RowSlices(glu.l1, members: members, arena: arena)
        channelMixer = .glu(l1, RowSlices(glu.l2, members: members, arena: arena), ColumnSlices(glu.l3, like: l1, arena: arena))
      } else {
        let mlp = block.channelMixer as! MLP
        let l1 = RowSlices(mlp.l1, members: members, arena: arena)
        channelMixer = .mlp(l1, ColumnSlices(mlp.l2, like: l1, arena: arena), activation: mlp.activation)
      }
      return Layer(
        prenorm: block.prenorm, norm1: RowNorm(block.norm1, width: d), norm2: RowNorm(block.norm2, width: d),
        u: inner, v: RowSlices(parts.v, members: members, arena: arena), o: ColumnSlices(parts.o, like: inner, arena: arena),
        recurrence: PackedRecurrence(parts.recurrence, arena: arena), channelMixer: channelMixer)
    }
    self.team = team
    self.members = members
    let wide = layers.flatMap { layer -> [Int] in
      switch layer.channelMixer {
      case .glu(let l1, _, _), .mlp(let l1, _, _): [layer.u.rows, l1.rows]
      }
    }.max()!
    scratch = Scratch(width: d, wide: wide, vocabulary: vocabulary, members: members)
  }

  deinit { lck_team_destroy(team) }

  /// The instruction set of the vector kernels: `avx512`, `avx2` or `portable`.
  static var instructionSet: String { String(cString: lck_kernel_isa()) }

  /// Consumes `token` with the recurrent states `states[layer]` and returns the logits.
  func step(_ token: Int, states: inout [RecurrentMixerState]) -> [Float] {
    precondition(token >= 0 && token < vocabulary, "step: token \(token) outside 0..<\(vocabulary)")
    return running.withLock { _ in
      withStatePointers(&states, layer: 0, collected: []) { pointers in
        var work = StepWork(decoder: self, token: token, states: pointers)
        withUnsafeMutablePointer(to: &work) { context in
          lck_team_run(
            team,
            { context, member in
              let work = context!.assumingMemoryBound(to: StepWork.self)
              work.pointee.decoder.run(member: Int(member), work: work.pointee)
            }, context)
        }
      }
      return Array(UnsafeBufferPointer(start: scratch.logits, count: vocabulary))
    }
  }

  /// Pins every layer's state arrays for the duration of `body` (one closure per layer).
  private func withStatePointers(
    _ states: inout [RecurrentMixerState], layer: Int, collected: [StatePointers],
    _ body: ([StatePointers]) -> Void
  ) {
    if layer == states.count {
      body(collected)
      return
    }
    // Moved out while pinned, so that the next layers can still reach `states`.
    var (re, im): ([Double], [Double]) = ([], [])
    swap(&re, &states[layer].convolution.re)
    swap(&im, &states[layer].convolution.im)
    re.withUnsafeMutableBufferPointer { re in
      im.withUnsafeMutableBufferPointer { im in
        let pointers: StatePointers = (re.baseAddress, im.baseAddress)
        withStatePointers(&states, layer: layer + 1, collected: collected + [pointers], body)
      }
    }
    swap(&re, &states[layer].convolution.re)
    swap(&im, &states[layer].convolution.im)
    states[layer].position += 1
  }

  private typealias StatePointers = (re: UnsafeMutablePointer<Double>?, im: UnsafeMutablePointer<Double>?)

  private struct StepWork {
    let decoder: FusedDecoder
    let token: Int
    let states: [StatePointers]
  }

  /// One member's share of a step.
  private func run(member t: Int, work: StepWork) {
    let d = width
    let (h, z) = (scratch.residual(t), scratch.normed(t))
    h.update(from: embedding.weight + work.token * d, count: d)
    var phase = 0
    for (index, layer) in layers.enumerated() {
      // Mixer: this member's channels, from the projections to its partial output.
      let input = layer.prenorm ? layer.norm1.apply(h, into: z) : UnsafePointer(h)
      let channels = layer.u.slice(t)
      layer.u.apply(member: t, to: input, into: scratch.u)
      layer.v.apply(member: t, to: input, into: scratch.v)
      for c in channels { scratch.v[c] = scratch.v[c] * FastMath.sigmoid(scratch.v[c]) }
      layer.recurrence.step(channels: channels, x: scratch.v, y: scratch.gated, state: work.states[index])
      for c in channels { scratch.gated[c] *= scratch.u[c] * FastMath.sigmoid(scratch.u[c]) }
      layer.o.apply(member: t, to: scratch.gated, into: scratch.partial(t, phase: phase))
      lck_team_barrier(team)
      gather(phase: phase, bias: layer.o.bias, into: h, norm: layer.prenorm ? nil : layer.norm1, scratch: z)
      phase ^= 1

      // Channel mixer: this member's hidden features.
      let input2 = layer.prenorm ? layer.norm2.apply(h, into: z) : UnsafePointer(h)
      let output: ColumnSlices
      switch layer.channelMixer {
      case .glu(let l1, let l2, let l3):
        l1.apply(member: t, to: input2, into: scratch.u)
        l2.apply(member: t, to: input2, into: scratch.v)
        for k in l1.slice(t) { scratch.gated[k] = scratch.u[k] * FastMath.sigmoid(scratch.u[k]) * scratch.v[k] }
        output = l3
      case .mlp(let l1, let l2, let activation):
        l1.apply(member: t, to: input2, into: scratch.u)
        for k in l1.slice(t) { scratch.gated[k] = Self.activate(scratch.u[k], activation) }
        output = l2
      }
      output.apply(member: t, to: scratch.gated, into: scratch.partial(t, phase: phase))
      lck_team_barrier(team)
      gather(phase: phase, bias: output.bias, into: h, norm: layer.prenorm ? nil : layer.norm2, scratch: z)
      phase ^= 1
    }
    // Tied head: logits = E finalNorm(h), this member's vocabulary rows.
    embedding.apply(member: t, to: finalNorm.apply(h, into: z), into: scratch.logits)
  }

  /// `h = h + m` (or `norm(h + m)` for a post-norm block) with `m` the members' partial
  /// outputs of `phase` summed, plus `bias`.
  private func gather(
    phase: Int, bias: UnsafeMutablePointer<Float>?, into h: UnsafeMutablePointer<Float>, norm: RowNorm?,
    scratch z: UnsafeMutablePointer<Float>
  ) {
    for member in 0..<members {
      let p = scratch.partial(member, phase: phase)
      for j in 0..<width { h[j] += p[j] }
    }
    if let bias {
      for j in 0..<width { h[j] += bias[j] }
    }
    if let norm {
      _ = norm.apply(h, into: z)
      h.update(from: z, count: width)
    }
  }

  private static func activate(_ x: Float, _ activation: String) -> Float {
    switch activation {
    case "relu": max(x, 0)
    case "silu": x * FastMath.sigmoid(x)
    default: 0.5 * x * (1 + erf(x * 0.707_106_781_186_547_5))
    }
  }
}

/// A mixer whose step ``FusedDecoder`` can run: a gated unit with a recurrence.
protocol FusableGatedUnit {
  /// `u`, `v`, `o` projections and the recurrence of `y = W_o (SiLU(W_u x) * rec(SiLU(W_v x)))`.
  var fusableParts: (u: Linear, v: Linear, o: Linear, recurrence: RecurrentConvolution) { get }
}

extension RecurrentGTU: FusableGatedUnit {
  var fusableParts: (u: Linear, v: Linear, o: Linear, recurrence: RecurrentConvolution) {
    (mixer.uProj, mixer.vProj, mixer.out, recurrence)
  }
}

/// Buffers of a step: product outputs (members write disjoint rows), each member's partial
/// outputs (two phases) and each member's residual stream.
private final class Scratch {
  let u: UnsafeMutablePointer<Float>
  let v: UnsafeMutablePointer<Float>
  let gated: UnsafeMutablePointer<Float>
  let logits: UnsafeMutablePointer<Float>
  private let perMember: UnsafeMutablePointer<Float>
  /// One row of `width`, rounded up to whole cache lines so members do not share lines.
  private let stride: Int
  private let total: Int

  init(width: Int, wide: Int, vocabulary: Int, members: Int) {
    u = .allocate(capacity: wide)
    v = .allocate(capacity: wide)
    gated = .allocate(capacity: wide)
    logits = .allocate(capacity: vocabulary)
    stride = (width + 15) / 16 * 16
    // Per member: residual, normed, partial (phase 0), partial (phase 1).
    total = 4 * stride * members
    perMember = .allocate(capacity: total)
    u.initialize(repeating: 0, count: wide)
    v.initialize(repeating: 0, count: wide)
    gated.initialize(repeating: 0, count: wide)
    logits.initialize(repeating: 0, count: vocabulary)
    perMember.initialize(repeating: 0, count: total)
  }

  func residual(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + 4 * member * stride }
  func normed(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + (4 * member + 1) * stride }
  func partial(_ member: Int, phase: Int) -> UnsafeMutablePointer<Float> {
    perMember + (4 * member + 2 + phase) * stride
  }

  deinit {
    for p in [u, v, gated, logits, perMember] { p.deallocate() }
  }
}

/// The memory of a decoder's weights (`lck_arena`: huge pages where the kernel allows), freed
/// when the last block referring to it goes.
private final class Arena: @unchecked Sendable {
  private let arena: OpaquePointer

  init() {
    guard let arena = lck_arena_create() else { fatalError("FusedDecoder: out of memory") }
    self.arena = arena
  }

  /// `count` zeroed values.
  func allocate<T>(_ count: Int, of type: T.Type = T.self) -> UnsafeMutablePointer<T> {
    guard let raw = lck_arena_allocate(arena, max(count, 1) * MemoryLayout<T>.stride) else {
      fatalError("FusedDecoder: out of memory")
    }
    return raw.bindMemory(to: T.self, capacity: max(count, 1))
  }

  /// A copy of `values`.
  func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
    let p = allocate(values.count, of: T.self)
    values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
    return p
  }

  /// A copy of `tensor`'s values.
  func copy(_ tensor: Tensor) -> UnsafeMutablePointer<Float> {
    let p = allocate(tensor.count, of: Float.self)
    tensor.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: tensor.count) }
    return p
  }

  deinit { lck_arena_destroy(arena) }
}

/// A `[rows, cols]` weight and optional `[rows]` bias, copied, whose rows are split over the
/// members in slices of whole groups of 16.
private final class RowSlices {
  let rows: Int, cols: Int
  let weight: UnsafeMutablePointer<Float>
  let bias: UnsafeMutablePointer<Float>?
  private let bounds: [Int]
  private let arena: Arena

  convenience init(_ linear: Linear, members: Int, arena: Arena) {
    self.init(linear.weight, bias: linear.bias, members: members, arena: arena)
  }

  init(_ weight: Tensor, bias: Tensor?, members: Int, arena: Arena) {
    (rows, cols) = (weight.shape[0], weight.shape[1])
    self.arena = arena
    self.weight = arena.copy(weight)
    self.bias = bias.map(arena.copy)
    let (rows, groups) = (rows, (rows + 15) / 16)
    bounds = (0...members).map { min(rows, groups * $0 / members * 16) }
  }

  /// Members the rows are split over.
  var members: Int { bounds.count - 1 }

  /// Member `t`'s rows.
  func slice(_ t: Int) -> Range<Int> { bounds[t]..<bounds[t + 1] }

  /// `y[r] = W[r] . x + b[r]` for member `t`'s rows `r`.
  func apply(member t: Int, to x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
    let range = slice(t)
    guard !range.isEmpty else { return }
    lck_gemv(
      weight + range.lowerBound * cols, range.count, cols, x, bias.map { UnsafePointer($0 + range.lowerBound) },
      y + range.lowerBound)
  }
}

/// A `[rows, cols]` weight split by columns, the same slices as a ``RowSlices`` producing its
/// input: member `t` keeps `W[:, C_t]` contiguous and computes the partial `W[:, C_t] x[C_t]`.
/// The bias is added once, when the partials are summed.
private final class ColumnSlices {
  let rows: Int
  let bias: UnsafeMutablePointer<Float>?
  private let blocks: [UnsafeMutablePointer<Float>]
  private let columns: [Range<Int>]
  private let arena: Arena

  init(_ linear: Linear, like input: RowSlices, arena: Arena) {
    let (rows, cols) = (linear.weight.shape[0], linear.weight.shape[1])
    precondition(cols == input.rows, "ColumnSlices: \(cols) columns for \(input.rows) inputs")
    self.rows = rows
    self.arena = arena
    bias = linear.bias.map(arena.copy)
    let columns = (0..<input.members).map(input.slice)
    self.columns = columns
    let weight = linear.weight.scalars
    blocks = columns.map { range in
      let block = arena.allocate(rows * range.count, of: Float.self)
      for r in 0..<rows {
        for (j, c) in range.enumerated() { block[r * range.count + j] = weight[r * cols + c] }
      }
      return block
    }
  }

  /// `p = W[:, C_t] x[C_t]` (no bias); zeros when member `t` has no columns.
  func apply(member t: Int, to x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>) {
    guard !columns[t].isEmpty else {
      p.update(repeating: 0, count: rows)
      return
    }
    lck_gemv(blocks[t], rows, columns[t].count, x + columns[t].lowerBound, nil, p)
  }
}

/// A ``RecurrentConvolution``'s poles, residues and skip in buffers the kernels can read.
private final class PackedRecurrence {
  private let offsets: [Int]
  private let sharedPoles: Bool
  private let poles: (re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>)
  private let residues: (re: UnsafeMutablePointer<Float>, im: UnsafeMutablePointer<Float>)
  private let skip: UnsafeMutablePointer<Float>?
  private let arena: Arena

  init(_ recurrence: RecurrentConvolution, arena: Arena) {
    self.arena = arena
    offsets = recurrence.offsets
    sharedPoles = recurrence.sharedPoles
    poles = (arena.copy(recurrence.poles.re), arena.copy(recurrence.poles.im))
    residues = (arena.copy(recurrence.residues.re), arena.copy(recurrence.residues.im))
    skip = recurrence.skip.map(arena.copy)
  }

  /// ``RecurrentConvolution/step(_:into:state:)`` for `channels` alone: `y[c]` from `x[c]`.
  func step(
    channels: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    state: (re: UnsafeMutablePointer<Double>?, im: UnsafeMutablePointer<Double>?)
  ) {
    guard !channels.isEmpty else { return }
    offsets.withUnsafeBufferPointer { offsets in
      lck_recurrence_channels(
        channels.lowerBound, channels.upperBound, offsets.baseAddress, sharedPoles ? 1 : 0, poles.re, poles.im,
        residues.re, residues.im, skip, state.re, state.im, x, y)
    }
  }
}

/// A norm's formula on one row (``LongConvLayers/NormalizationKind``), its parameters copied:
/// `y = (x - c) * s * weight + bias`, `c` the mean for LayerNorm and 0 otherwise, `s` from the
/// sum of squares of `x - c`.
private struct RowNorm {
  let kind: NormalizationKind
  let width: Int
  let weight: [Float]?
  let bias: [Float]?

  init(_ norm: Normalization, width: Int) {
    kind = norm.kind
    self.width = width
    weight = norm.weight?.scalars
    bias = norm.bias?.scalars
  }

  /// Writes the normalised `x` into `y` and returns `y`.
  func apply(_ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
    let d = width
    var mean: Float = 0
    if kind == .layerNorm {
      for j in 0..<d { mean += x[j] }
      mean /= Float(d)
    }
    var sumSquares: Float = 0
    for j in 0..<d { sumSquares += (x[j] - mean) * (x[j] - mean) }
    let scale: Float =
      switch kind {
      case .simpleRMSNorm: 1 / ((sumSquares / Float(d)).squareRoot() + 1e-8)
      case .rmsNorm: 1 / (sumSquares / Float(d) + 1e-6).squareRoot()
      case .layerNorm: 1 / (sumSquares / Float(d) + 1e-5).squareRoot()
      }
    for j in 0..<d { y[j] = (x[j] - mean) * scale }
    if let weight {
      for j in 0..<d { y[j] = y[j] * weight[j] }
    }
    if let bias {
      for j in 0..<d { y[j] = y[j] + bias[j] }
    }
    return UnsafePointer(y)
  }
}
