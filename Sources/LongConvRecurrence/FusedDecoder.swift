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
/// mixer:    z = norm1(h) (pre-norm) or h;  on C_t:
///             GTU:   u, v = W_u z, W_v z;  g = SiLU(u) * rec(SiLU(v))
///             Hyena: q = shortconv(W_in z) for the value, x1, x2 streams of C_t;
///                    g = q_value * rec(q_x1 * q_x2)
///             SSM:   g = GELU(rec(z))
///           p_t = W_o[:, C_t] g[C_t]                                         barrier
///           m = sum_t p_t + b_o (SSM: then m = m[:d] * sigmoid(m[d:]))
///           h = h + m (pre-norm) or norm1(h + m)
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
/// Covered: blocks whose mixer is a GTU, a Hyena operator or an SSM block with any converted
/// kernel and whose channel mixer is a GLU or an MLP, pre- or post-norm, any norm. Other
/// models (a mixer defined outside the toolkit) step through their modules
/// (``make(model:mixers:)`` returns nil). The weights are copied when the decoder
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

  /// A layer's recurrence state, and its short convolution's recent inputs (Hyena).
  private typealias StatePointers = (
    re: UnsafeMutablePointer<Double>?, im: UnsafeMutablePointer<Double>?,
    history: UnsafeMutablePointer<Float>?
  )

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
      guard let fusable = mixer as? any FusableMixer else { return false }
      if case .hyena(let parts) = fusable.fusableParts, parts.outerMixing { return false }
      return block.channelMixer is GLU || block.channelMixer is MLP
    }
  }

  private init(model: CausalLanguageModel, mixers: [any RecurrentMixer], team: OpaquePointer) {
    let d = model.embedding.width
    let members = Int(lck_team_size(team))
    let arena = Arena()
    var plans: [LayerPlan] = []
    var wide = 1
    for (block, mixer) in zip(model.blocks, mixers) {
      let fusable = mixer as! any FusableMixer
      let recurrence = RecurrencePlan(fusable.recurrence, arena: arena)
      let inner = fusable.innerWidth
      let channels = Self.bounds(inner, members: members)
      let (forms, output, outputGLU) = Self.mixerForms(fusable.fusableParts, bounds: channels, arena: arena)
      let o = ColumnProduct.slices(output.weight, bounds: channels, arena: arena)
      let (first, gate, out, outBias, activation):
        ([RowProduct], [RowProduct?], [ColumnProduct], Tensor?, ChannelActivation)
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
        activation = .pointwise(mlp.activation)
      }
      wide = max(wide, fusable.streams * inner, hidden)
      let (norm1, norm2) = (
        NormPlan(block.norm1, width: d, arena: arena), NormPlan(block.norm2, width: d, arena: arena)
      )
      let (mixerBias, channelBias) = (
        output.bias.map { UnsafePointer(arena.copy($0)) }, outBias.map { UnsafePointer(arena.copy($0)) }
      )
      for t in 0..<members {
        plans.append(
          LayerPlan(
            prenorm: block.prenorm, norm1: norm1, norm2: norm2, mixer: forms[t],
            channels: channels[t]..<channels[t + 1], o: o[t], mixerBias: mixerBias, outputGLU: outputGLU,
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

  /// Member `t`'s share of a mixer before its output product, the output product, and whether
  /// its summed output goes through `a * sigmoid(b)` (the SSM block's GLU output).
  private static func mixerForms(_ parts: FusableParts, bounds: [Int], arena: Arena) -> (
    [MixerForm], Linear, Bool
  ) {
    switch parts {
    case .gated(let u, let v, let o):
      let (us, vs) = (
        RowProduct.slices(u.weight, bias: u.bias, bounds: bounds, arena: arena),
        RowProduct.slices(v.weight, bias: v.bias, bounds: bounds, arena: arena)
      )
      return (zip(us, vs).map { MixerForm.gated(u: $0, v: $1) }, o, false)
    case .hyena(let parts):
      // The whole input projection's rows, each stream's slice split like the channels; a
      // member applies its rows of every stream.
      let d = parts.outProj.inputCount
      let streams = parts.order + 1
      let rows = (0..<streams).map { n in
        RowProduct.slices(
          parts.inProj.weight.slice(axis: 0, n * d..<(n + 1) * d),
          bias: parts.inProj.bias?.slice(axis: 0, n * d..<(n + 1) * d),
          bounds: bounds, arena: arena)
      }
      let (taps, filter) = (parts.filter.shape[1], UnsafePointer(arena.copy(parts.filter)))
      let bias = UnsafePointer(arena.copy(parts.filterBias))
      let scales = parts.orderScales.map { UnsafePointer(arena.copy($0)) }
      let forms = (0..<bounds.count - 1).map { t in
        MixerForm.hyena(
          HyenaForm(
            projections: UnsafePointer(arena.copy((0..<streams).map { rows[$0][t] })), order: parts.order,
            filter: filter, filterBias: bias, taps: taps, orderScales: scales, activation: parts.activation))
      }
      return (forms, parts.outProj, false)
    case .ssm(let output, let activation, let outputGLU):
      return ([MixerForm](repeating: .ssm(activation), count: bounds.count - 1), output, outputGLU)
    }
  }

  /// `count` items split over `members` in whole groups of 16: member `t` has `b[t] ..< b[t + 1]`.
  private static func bounds(_ count: Int, members: Int) -> [Int] {
    let groups = (count + 15) / 16
    return (0...members).map { min(count, groups * $0 / members * 16) }
  }

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
    var (re, im, history): ([Double], [Double], [Float]) = ([], [], [])
    swap(&re, &layerStates[layer].convolution.re)
    swap(&im, &layerStates[layer].convolution.im)
    swap(&history, &layerStates[layer].history)
    re.withUnsafeMutableBufferPointer { re in
      im.withUnsafeMutableBufferPointer { im in
        history.withUnsafeMutableBufferPointer { history in
          states[layer] = (re.baseAddress, im.baseAddress, history.baseAddress)
          withStatePointers(&layerStates, layer: layer + 1, body)
        }
      }
    }
    swap(&re, &layerStates[layer].convolution.re)
    swap(&im, &layerStates[layer].convolution.im)
    swap(&history, &layerStates[layer].history)
    layerStates[layer].position += 1
  }

  /// One member's share of a step.
  private func run(member t: Int) {
    let d = width
    let (h, z) = (scratch.residual(t), scratch.normed(t))
    let (u, v, gated, extra) = (scratch.u, scratch.v, scratch.gated, scratch.extra)
    h.update(from: embedding + token * d, count: d)
    var phase = 0
    for index in 0..<layerCount {
      let plan = plans[index * members + t]
      // Mixer: this member's channels, from the projections to its partial output.
      let input = plan.prenorm ? plan.norm1.apply(h, into: z) : UnsafePointer(h)
      let channels = plan.channels
      let state = states[index]
      switch plan.mixer {
      case .gated(let up, let vp):
        // GTU: g = SiLU(W_u z) * rec(SiLU(W_v z)).
        up.apply(input, into: u)
        vp.apply(input, into: v)
        for c in channels { v[c] = v[c] * FastMath.sigmoid(v[c]) }
        plan.recurrence.step(channels: channels, x: v, y: gated, state: (state.re, state.im))
        for c in channels { gated[c] *= u[c] * FastMath.sigmoid(u[c]) }
      case .hyena(let form):
        // Hyena: q = shortconv(W_in z) per stream (x_0 ... x_(N-1), v), then per step o
        // v = w_o rec_o(v * x_(N-1-o)) on recurrence channels o d + c, and g = act(v * x_0).
        let (inner, order) = (plan.o.columnsTotal, form.order)
        let streams = (order + 1) * inner
        for n in 0...order { form.projections[n].apply(input, into: u + n * inner) }
        for c in channels {
          for n in 0...order {
            let stream = n * inner + c
            v[stream] = shortFilterStep(
              stream, input: u[stream], filter: form.filter, bias: form.filterBias, taps: form.taps,
              history: state.history, streams: streams)
          }
          gated[c] = v[order * inner + c]
        }
        // The projections are spent: `u` takes the recurrence's outputs.
        for o in 0..<order - 1 {
          let gate = (order - 1 - o) * inner
          for c in channels { extra[o * inner + c] = gated[c] * v[gate + c] }
          let stepChannels = o * inner + channels.lowerBound..<o * inner + channels.upperBound
          plan.recurrence.step(channels: stepChannels, x: extra, y: u, state: (state.re, state.im))
          let scale = form.orderScales?[o] ?? 1
          for c in channels { gated[c] = u[o * inner + c] * scale }
        }
        for c in channels { gated[c] = form.activation.value(gated[c] * v[c]) }
      case .ssm(let activation):
        // SSM block: g = act(rec(z)); a GLU output follows the output product.
        plan.recurrence.step(channels: channels, x: input, y: gated, state: (state.re, state.im))
        for c in channels { gated[c] = activation.value(gated[c]) }
      }
      plan.o.apply(gated, into: scratch.partial(t, phase: phase))
      lck_team_barrier(team)
      gather(
        phase: phase, rows: plan.o.rows, bias: plan.mixerBias, glu: plan.outputGLU, into: h,
        norm: plan.prenorm ? nil : plan.norm1, member: t)
      phase ^= 1

      // Channel mixer: this member's hidden features.
      let input2 = plan.prenorm ? plan.norm2.apply(h, into: z) : UnsafePointer(h)
      plan.first.apply(input2, into: u)
      let features = plan.first.range
      switch plan.activation {
      case .gatedSiLU:
        plan.gate!.apply(input2, into: v)
        for k in features { gated[k] = u[k] * FastMath.sigmoid(u[k]) * v[k] }
      case .pointwise(let activation):
        for k in features { gated[k] = activation.value(u[k]) }
      }
      plan.out.apply(gated, into: scratch.partial(t, phase: phase))
      lck_team_barrier(team)
      gather(
        phase: phase, rows: width, bias: plan.channelBias, glu: false, into: h,
        norm: plan.prenorm ? nil : plan.norm2, member: t)
      phase ^= 1
    }
    head[t].apply(finalNorm.apply(h, into: z), into: scratch.logits)
  }

  /// `h = h + m` (or `norm(h + m)` for a post-norm block) with `m` the members' partial
  /// outputs of `phase` (`rows` wide) summed, plus `bias`, then for `glu` `m = m[:d] * sigmoid(m[d:])`.
  private func gather(
    phase: Int, rows: Int, bias: UnsafePointer<Float>?, glu: Bool, into h: UnsafeMutablePointer<Float>,
    norm: NormPlan?, member t: Int
  ) {
    let m = scratch.summed(t)
    if let bias { m.update(from: bias, count: rows) } else { m.update(repeating: 0, count: rows) }
    for member in 0..<members {
      let p = scratch.partial(member, phase: phase)
      for j in 0..<rows { m[j] += p[j] }
    }
    if glu {
      for j in 0..<width { m[j] *= FastMath.sigmoid(m[width + j]) }
    }
    for j in 0..<width { h[j] += m[j] }
    if let norm {
      let z = scratch.normed(t)
      _ = norm.apply(h, into: z)
      h.update(from: z, count: width)
    }
  }
}

/// The modules of a recurrent mixer that ``FusedDecoder`` runs.
enum FusableParts {
  /// GTU: `W_o (SiLU(W_u x) * rec(SiLU(W_v x)))`.
  case gated(u: Linear, v: Linear, o: Linear)
  /// Hyena operator of order `N` (``HyenaOperator``).
  case hyena(HyenaParts)
  /// SSM block: `z = output(act(rec(x)))`, then `y = z[:d] * sigmoid(z[d:])` for a GLU output.
  case ssm(output: Linear, activation: Activation, outputGLU: Bool)
}

/// A Hyena operator's modules: input projection `[(N+1) d, d]`, short filter `[(N+1) d, s]` and
/// its bias, output projection, the step scales and the activation.
struct HyenaParts {
  let inProj: Linear
  let filter: Tensor
  let filterBias: Tensor
  let outProj: Linear
  let order: Int
  let outerMixing: Bool
  let orderScales: Tensor?
  let activation: Activation
}

/// A recurrent mixer whose step ``FusedDecoder`` can run.
protocol FusableMixer {
  var fusableParts: FusableParts { get }
  var recurrence: RecurrentConvolution { get }
}

extension FusableMixer {
  /// The channels the members split: the output product's inputs.
  var innerWidth: Int {
    switch fusableParts {
    case .gated(_, _, let o): o.inputCount
    case .hyena(let parts): parts.outProj.inputCount
    case .ssm(let output, _, _): output.inputCount
    }
  }

  /// Rows of scratch per channel of `d`: the projected streams (and the recurrence's
  /// channels, fewer).
  var streams: Int {
    switch fusableParts {
    case .gated, .ssm: 1
    case .hyena(let parts): parts.order + 1
    }
  }
}

extension RecurrentGTU: FusableMixer {
  var fusableParts: FusableParts { .gated(u: mixer.uProj, v: mixer.vProj, o: mixer.out) }
}

extension RecurrentHyena: FusableMixer {
  var fusableParts: FusableParts {
    .hyena(
      HyenaParts(
        inProj: mixer.inProj, filter: mixer.shortFilter, filterBias: mixer.shortFilterBias,
        outProj: mixer.outProj,
        order: mixer.order, outerMixing: mixer.outerMixing, orderScales: mixer.orderScales,
        activation: mixer.activation))
  }
}

extension RecurrentSSM: FusableMixer {
  var fusableParts: FusableParts {
    .ssm(output: mixer.output, activation: mixer.activation, outputGLU: mixer.outputGLU)
  }
}

/// What a block's mixer computes on a member's channels before its output product.
private enum MixerForm {
  case gated(u: RowProduct, v: RowProduct)
  case hyena(HyenaForm)
  case ssm(Activation)
}

/// A member's share of a Hyena operator: its rows of each stream's projection
/// (`projections[n]` for stream `n`), the short filter, the step scales and the activation.
private struct HyenaForm {
  let projections: UnsafePointer<RowProduct>
  let order: Int
  let filter: UnsafePointer<Float>
  let filterBias: UnsafePointer<Float>
  let taps: Int
  let orderScales: UnsafePointer<Float>?
  let activation: Activation
}

/// The channel mixer's nonlinearity: `SiLU(W_1 z) * (W_2 z)` for a GLU, or `act(W_1 z)`.
private enum ChannelActivation {
  case gatedSiLU
  case pointwise(Activation)
}

/// One member's share of one block.
private struct LayerPlan {
  let prenorm: Bool
  let norm1: NormPlan, norm2: NormPlan
  let mixer: MixerForm
  /// This member's channels of the recurrence.
  let channels: Range<Int>
  /// The mixer's output product on those channels, its bias, and whether a GLU follows it.
  let o: ColumnProduct
  let mixerBias: UnsafePointer<Float>?
  let outputGLU: Bool
  let recurrence: RecurrencePlan
  let activation: ChannelActivation
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
  /// Columns of the whole weight.
  let columnsTotal: Int

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
      return ColumnProduct(block: block, columns: columns, rows: rows, columnsTotal: cols)
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
/// residual stream, its normed copy, its partial outputs of two phases and the summed output.
private struct Scratch {
  let u: UnsafeMutablePointer<Float>
  let v: UnsafeMutablePointer<Float>
  let gated: UnsafeMutablePointer<Float>
  let extra: UnsafeMutablePointer<Float>
  let logits: UnsafeMutablePointer<Float>
  private let perMember: UnsafeMutablePointer<Float>
  /// One row of `2 width` (an SSM block's output), rounded up to whole cache lines so members
  /// do not share lines.
  private let stride: Int

  init(width: Int, wide: Int, vocabulary: Int, members: Int, arena: Arena) {
    (u, v, gated, extra) = (
      arena.allocate(wide), arena.allocate(wide), arena.allocate(wide), arena.allocate(wide)
    )
    logits = arena.allocate(vocabulary)
    stride = (2 * width + 15) / 16 * 16
    perMember = arena.allocate(5 * stride * members)
  }

  func residual(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + 5 * member * stride }
  func normed(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + (5 * member + 1) * stride }
  func partial(_ member: Int, phase: Int) -> UnsafeMutablePointer<Float> {
    perMember + (5 * member + 2 + phase) * stride
  }
  func summed(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + (5 * member + 4) * stride }
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
  let epsilon: Float

  init(_ norm: Normalization, width: Int, arena: Arena) {
    kind = norm.kind
    epsilon = norm.epsilon
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
      case .simpleRMSNorm: 1 / ((sumSquares / Float(d)).squareRoot() + epsilon)
      case .rmsNorm: 1 / (sumSquares / Float(d) + epsilon).squareRoot()
      case .layerNorm: 1 / (sumSquares / Float(d) + epsilon).squareRoot()
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
