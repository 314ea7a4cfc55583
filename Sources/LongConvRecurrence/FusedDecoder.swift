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
///
/// The hot loop reads only plain pointers and counts (``LayerPlan``, one per layer and member):
/// no reference counting, whose atomic updates of shared objects from two cores cost more than
/// the arithmetic of small layers.
final class FusedDecoder: @unchecked Sendable {
  private let width: Int
  private let vocabulary: Int
  private let layerCount: Int
  private let team: OpaquePointer
  private let members: Int
  /// Owns the weights, kernels and plans below.
  private let arena: Arena
  /// `plans[layer * members + member]`.
  private let plans: UnsafeMutablePointer<LayerPlan>
  /// The tied head's rows per member: `logits = E finalNorm(h)`.
  private let head: UnsafeMutablePointer<RowProduct>
  private let embedding: UnsafePointer<Float>
  private let finalNorm: NormPlan
  private let scratch: Scratch
  /// The states of the step running, one pair per layer.
  private let states: UnsafeMutablePointer<StatePointers>
  private var token = 0
  /// Serialises steps: the scratch and the team serve one step at a time.
  private let running = Mutex(())

  private typealias StatePointers = (re: UnsafeMutablePointer<Double>?, im: UnsafeMutablePointer<Double>?)

  /// A decoder for `model` with `mixers` as its recurrent mixers, or nil when some block is not
  /// covered (then the model steps through its modules).
  static func make(model: CausalLanguageModel, mixers: [any RecurrentMixer]) -> FusedDecoder? {
    guard covers(model: model, mixers: mixers), let team = lck_team_create(Int32(ComputeThreads.count)) else {
      return nil
    }
    return FusedDecoder(model: model, mixers: mixers, team: team)
  }

  /// Whether every block of `model` is one the fused step runs (see the type's documentation).
  static func covers(model: CausalLanguageModel, mixers: [any RecurrentMixer]) -> Bool {
    guard !model.blocks.isEmpty, model.blocks.count == mixers.count else { return false }
    return zip(model.blocks, mixers).allSatisfy { block, mixer in
      let coveredMLP = (block.channelMixer as? MLP).map { ["gelu", "relu", "silu"].contains($0.activation) }
      return mixer is any FusableGatedUnit && (block.channelMixer is GLU || coveredMLP == true)
    }
  }

  private init(model: CausalLanguageModel, mixers: [any RecurrentMixer], team: OpaquePointer) {
    let d = model.embedding.width
    let members = Int(lck_team_size(team))
    let arena = Arena()
    var plans: [LayerPlan] = []
    var wide = 1
    for (block, mixer) in zip(model.blocks, mixers) {
      let parts = (mixer as! any FusableGatedUnit).fusableParts
      let inner = parts.u.outputCount
      let channels = Self.bounds(inner, members: members)
      let u = RowProduct.slices(parts.u.weight, bias: parts.u.bias, bounds: channels, arena: arena)
      let v = RowProduct.slices(parts.v.weight, bias: parts.v.bias, bounds: channels, arena: arena)
      let o = ColumnProduct.slices(parts.o.weight, bounds: channels, arena: arena)
      let recurrence = RecurrencePlan(parts.recurrence, arena: arena)
      let (first, gate, out, outBias, activation):
        ([RowProduct], [RowProduct?], [ColumnProduct], Tensor?, Activation)
      let hidden: Int
      if let glu = block.channelMixer as? GLU {
        hidden = glu.l1.outputCount
        let features = Self.bounds(hidden, members: members)
        first = RowProduct.slices(glu.l1.weight, bias: glu.l1.bias, bounds: features, arena: arena)
        gate = RowProduct.slices(glu.l2.weight, bias: glu.l2.bias, bounds: features, arena: arena)
        out = ColumnProduct.slices(glu.l3.weight, bounds: features, arena: arena)
        (outBias, activation) = (glu.l3.bias, .gatedSiLU)
      } else {
        let mlp = block.channelMixer as! MLP
        hidden = mlp.l1.outputCount
        let features = Self.bounds(hidden, members: members)
        first = RowProduct.slices(mlp.l1.weight, bias: mlp.l1.bias, bounds: features, arena: arena)
        gate = [RowProduct?](repeating: nil, count: members)
        out = ColumnProduct.slices(mlp.l2.weight, bounds: features, arena: arena)
        outBias = mlp.l2.bias
        activation = mlp.activation == "relu" ? .relu : mlp.activation == "silu" ? .silu : .gelu
      }
      wide = max(wide, inner, hidden)
      let (norm1, norm2) = (
        NormPlan(block.norm1, width: d, arena: arena), NormPlan(block.norm2, width: d, arena: arena)
      )
      let (mixerBias, channelBias) = (
        parts.o.bias.map { UnsafePointer(arena.copy($0)) }, outBias.map { UnsafePointer(arena.copy($0)) }
      )
      for t in 0..<members {
        plans.append(
          LayerPlan(
            prenorm: block.prenorm, norm1: norm1, norm2: norm2, u: u[t], v: v[t], o: o[t],
            mixerBias: mixerBias,
            recurrence: recurrence, activation: activation, first: first[t], gate: gate[t], out: out[t],
            channelBias: channelBias))
      }
    }
    let vocabulary = model.embedding.vocabulary
    let head = RowProduct.slices(
      model.embedding.weight, bias: nil, bounds: Self.bounds(vocabulary, members: members), arena: arena)
    width = d
    self.vocabulary = vocabulary
    layerCount = model.blocks.count
    self.team = team
    self.members = members
    self.arena = arena
    self.plans = arena.copy(plans)
    self.head = arena.copy(head)
    embedding = UnsafePointer(head[0].weight)
    finalNorm = NormPlan(model.finalNorm, width: d, arena: arena)
    scratch = Scratch(width: d, wide: wide, vocabulary: vocabulary, members: members, arena: arena)
    states = arena.allocate(layerCount, of: StatePointers.self)
  }

  deinit { lck_team_destroy(team) }

  /// `count` items split over `members` in whole groups of 16: member `t` has `b[t] ..< b[t + 1]`.
  private static func bounds(_ count: Int, members: Int) -> [Int] {
    let groups = (count + 15) / 16
    return (0...members).map { min(count, groups * $0 / members * 16) }
  }

  /// The instruction set of the vector kernels: `avx512`, `avx2` or `portable`.
  static var instructionSet: String { String(cString: lck_kernel_isa()) }

  /// Consumes `token` with the recurrent states `states[layer]` and returns the logits.
  func step(_ token: Int, states: inout [RecurrentMixerState]) -> [Float] {
    precondition(token >= 0 && token < vocabulary, "step: token \(token) outside 0..<\(vocabulary)")
    precondition(states.count == layerCount, "step: \(states.count) layer states for \(layerCount) layers")
    return running.withLock { _ in
      self.token = token
      withStatePointers(&states, layer: 0) {
        lck_team_run(
          team,
          { context, member in
            Unmanaged<FusedDecoder>.fromOpaque(context!).takeUnretainedValue().run(member: Int(member))
          }, Unmanaged.passUnretained(self).toOpaque())
      }
      return Array(UnsafeBufferPointer(start: scratch.logits, count: vocabulary))
    }
  }

  /// Pins every layer's state arrays into ``states`` for the duration of `body`.
  private func withStatePointers(_ layerStates: inout [RecurrentMixerState], layer: Int, _ body: () -> Void) {
    if layer == layerStates.count {
      body()
      return
    }
    // Moved out while pinned, so that the next layers can still reach `layerStates`.
    var (re, im): ([Double], [Double]) = ([], [])
    swap(&re, &layerStates[layer].convolution.re)
    swap(&im, &layerStates[layer].convolution.im)
    re.withUnsafeMutableBufferPointer { re in
      im.withUnsafeMutableBufferPointer { im in
        states[layer] = (re.baseAddress, im.baseAddress)
        withStatePointers(&layerStates, layer: layer + 1, body)
      }
    }
    swap(&re, &layerStates[layer].convolution.re)
    swap(&im, &layerStates[layer].convolution.im)
    layerStates[layer].position += 1
  }

  /// One member's share of a step.
  private func run(member t: Int) {
    let d = width
    let (h, z) = (scratch.residual(t), scratch.normed(t))
    let (u, v, gated) = (scratch.u, scratch.v, scratch.gated)
    h.update(from: embedding + token * d, count: d)
    var phase = 0
    for index in 0..<layerCount {
      let plan = plans[index * members + t]
      // Mixer: this member's channels, from the projections to its partial output.
      let input = plan.prenorm ? plan.norm1.apply(h, into: z) : UnsafePointer(h)
      plan.u.apply(input, into: u)
      plan.v.apply(input, into: v)
      let channels = plan.u.range
      for c in channels { v[c] = v[c] * FastMath.sigmoid(v[c]) }
      plan.recurrence.step(channels: channels, x: v, y: gated, state: states[index])
      for c in channels { gated[c] *= u[c] * FastMath.sigmoid(u[c]) }
      plan.o.apply(gated, into: scratch.partial(t, phase: phase))
      lck_team_barrier(team)
      gather(phase: phase, bias: plan.mixerBias, into: h, norm: plan.prenorm ? nil : plan.norm1, scratch: z)
      phase ^= 1

      // Channel mixer: this member's hidden features.
      let input2 = plan.prenorm ? plan.norm2.apply(h, into: z) : UnsafePointer(h)
      plan.first.apply(input2, into: u)
      let features = plan.first.range
      switch plan.activation {
      case .gatedSiLU:
        plan.gate!.apply(input2, into: v)
        for k in features { gated[k] = u[k] * FastMath.sigmoid(u[k]) * v[k] }
      case .silu:
        for k in features { gated[k] = u[k] * FastMath.sigmoid(u[k]) }
      case .relu:
        for k in features { gated[k] = max(u[k], 0) }
      case .gelu:
        for k in features { gated[k] = 0.5 * u[k] * (1 + erf(u[k] * 0.707_106_781_186_547_5)) }
      }
      plan.out.apply(gated, into: scratch.partial(t, phase: phase))
      lck_team_barrier(team)
      gather(phase: phase, bias: plan.channelBias, into: h, norm: plan.prenorm ? nil : plan.norm2, scratch: z)
      phase ^= 1
    }
    head[t].apply(finalNorm.apply(h, into: z), into: scratch.logits)
  }

  /// `h = h + m` (or `norm(h + m)` for a post-norm block) with `m` the members' partial
  /// outputs of `phase` summed, plus `bias`.
  private func gather(
    phase: Int, bias: UnsafePointer<Float>?, into h: UnsafeMutablePointer<Float>, norm: NormPlan?,
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

/// The channel mixer's nonlinearity: `SiLU(W_1 z) * (W_2 z)` for a GLU, or `act(W_1 z)`.
private enum Activation { case gatedSiLU, silu, relu, gelu }

/// One member's share of one block.
private struct LayerPlan {
  let prenorm: Bool
  let norm1: NormPlan, norm2: NormPlan
  let u: RowProduct, v: RowProduct
  let o: ColumnProduct
  let mixerBias: UnsafePointer<Float>?
  let recurrence: RecurrencePlan
  let activation: Activation
  /// `W_1`'s rows, `W_2`'s rows for a GLU (nil for an MLP), and the output product's columns.
  let first: RowProduct
  let gate: RowProduct?
  let out: ColumnProduct
  let channelBias: UnsafePointer<Float>?
}

/// `y[r] = W[r] . x + b[r]` for one member's rows `r` in ``range`` of a copied weight.
private struct RowProduct {
  /// Row ``range``'s lower bound of the whole `[rows, cols]` weight.
  let weight: UnsafePointer<Float>
  let bias: UnsafePointer<Float>?
  let range: Range<Int>
  let cols: Int

  /// One per member (`bounds` from ``FusedDecoder``), over one copy of `weight` and `bias`.
  static func slices(_ weight: Tensor, bias: Tensor?, bounds: [Int], arena: Arena) -> [RowProduct] {
    let (w, b, cols) = (arena.copy(weight), bias.map(arena.copy), weight.shape[1])
    return (0..<bounds.count - 1).map { t in
      let range = bounds[t]..<bounds[t + 1]
      return RowProduct(
        weight: w + range.lowerBound * cols, bias: b.map { UnsafePointer($0 + range.lowerBound) },
        range: range,
        cols: cols)
    }
  }

  /// Writes `y[range]`.
  @inline(__always)
  func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
    guard !range.isEmpty else { return }
    lck_gemv(weight, range.count, cols, x, bias, y + range.lowerBound)
  }
}

/// `p = W[:, C] x[C]` for one member's columns `C` of a `[rows, cols]` weight, kept contiguous.
/// The bias is added once, when the members' partials are summed.
private struct ColumnProduct {
  let block: UnsafePointer<Float>
  let columns: Range<Int>
  let rows: Int

  /// One per member, over the column slices `bounds` of `weight`.
  static func slices(_ weight: Tensor, bounds: [Int], arena: Arena) -> [ColumnProduct] {
    let (rows, cols) = (weight.shape[0], weight.shape[1])
    let values = weight.scalars
    return (0..<bounds.count - 1).map { t in
      let columns = bounds[t]..<bounds[t + 1]
      let block = arena.allocate(rows * columns.count, of: Float.self)
      for r in 0..<rows {
        for (j, c) in columns.enumerated() { block[r * columns.count + j] = values[r * cols + c] }
      }
      return ColumnProduct(block: block, columns: columns, rows: rows)
    }
  }

  /// Writes the partial `p [rows]` (zeros when the member has no columns).
  @inline(__always)
  func apply(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>) {
    guard !columns.isEmpty else {
      p.update(repeating: 0, count: rows)
      return
    }
    lck_gemv(block, rows, columns.count, x + columns.lowerBound, nil, p)
  }
}

/// A ``RecurrentConvolution``'s poles, residues and skip, copied for the kernels.
private struct RecurrencePlan {
  let offsets: UnsafePointer<Int>
  let sharedPoles: Bool
  let poles: (re: UnsafePointer<Double>, im: UnsafePointer<Double>)
  let residues: (re: UnsafePointer<Float>, im: UnsafePointer<Float>)
  let skip: UnsafePointer<Float>?

  init(_ recurrence: RecurrentConvolution, arena: Arena) {
    offsets = UnsafePointer(arena.copy(recurrence.offsets))
    sharedPoles = recurrence.sharedPoles
    poles = (UnsafePointer(arena.copy(recurrence.poles.re)), UnsafePointer(arena.copy(recurrence.poles.im)))
    residues = (
      UnsafePointer(arena.copy(recurrence.residues.re)), UnsafePointer(arena.copy(recurrence.residues.im))
    )
    skip = recurrence.skip.map { UnsafePointer(arena.copy($0)) }
  }

  /// ``RecurrentConvolution/step(_:into:state:)`` for `channels` alone: `y[c]` from `x[c]`.
  @inline(__always)
  func step(
    channels: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    state: (re: UnsafeMutablePointer<Double>?, im: UnsafeMutablePointer<Double>?)
  ) {
    guard !channels.isEmpty else { return }
    lck_recurrence_channels(
      channels.lowerBound, channels.upperBound, offsets, sharedPoles ? 1 : 0, poles.re, poles.im, residues.re,
      residues.im, skip, state.re, state.im, x, y)
  }
}

/// Buffers of a step: product outputs (members write disjoint rows), and per member its
/// residual stream, its normed copy and its partial outputs of two phases.
private struct Scratch {
  let u: UnsafeMutablePointer<Float>
  let v: UnsafeMutablePointer<Float>
  let gated: UnsafeMutablePointer<Float>
  let logits: UnsafeMutablePointer<Float>
  private let perMember: UnsafeMutablePointer<Float>
  /// One row of `width`, rounded up to whole cache lines so members do not share lines.
  private let stride: Int

  init(width: Int, wide: Int, vocabulary: Int, members: Int, arena: Arena) {
    (u, v, gated) = (arena.allocate(wide), arena.allocate(wide), arena.allocate(wide))
    logits = arena.allocate(vocabulary)
    stride = (width + 15) / 16 * 16
    perMember = arena.allocate(4 * stride * members)
  }

  func residual(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + 4 * member * stride }
  func normed(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + (4 * member + 1) * stride }
  func partial(_ member: Int, phase: Int) -> UnsafeMutablePointer<Float> {
    perMember + (4 * member + 2 + phase) * stride
  }
}

/// The memory of a decoder (`lck_arena`: zeroed, 64-byte aligned, huge pages where the kernel
/// allows), freed with the decoder.
private final class Arena: @unchecked Sendable {
  private let arena: OpaquePointer

  init() {
    guard let arena = lck_arena_create() else { fatalError("FusedDecoder: out of memory") }
    self.arena = arena
  }

  /// `count` zeroed values of a trivial type.
  func allocate<T>(_ count: Int, of type: T.Type = T.self) -> UnsafeMutablePointer<T> {
    precondition(_isPOD(T.self), "Arena holds trivial values only")
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

/// A norm's formula on one row (``LongConvLayers/NormalizationKind``), its parameters copied:
/// `y = (x - c) * s * weight + bias`, `c` the mean for LayerNorm and 0 otherwise, `s` from the
/// sum of squares of `x - c`.
private struct NormPlan {
  let kind: NormalizationKind
  let width: Int
  let weight: UnsafePointer<Float>?
  let bias: UnsafePointer<Float>?

  init(_ norm: Normalization, width: Int, arena: Arena) {
    kind = norm.kind
    self.width = width
    weight = norm.weight.map { UnsafePointer(arena.copy($0)) }
    bias = norm.bias.map { UnsafePointer(arena.copy($0)) }
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
