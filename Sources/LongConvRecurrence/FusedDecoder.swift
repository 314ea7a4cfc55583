import CDecodeKernels
import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import Synchronization

/// One decoding step of a ``RecurrentLanguageModel`` as a single pass over packed weights,
/// run by a team of threads that stays alive between tokens.
///
/// A step reads every weight once (about 19 MB for the benchmark model: d = 256, 6 layers) and,
/// for ETSC layers, every state once: it is memory-bound. Going through the model's modules
/// costs an allocation and a BLAS call per product and a hand-off to other threads per
/// parallel op. Here member `t` of a team of `T` owns a fixed slice `C_t` of each block's
/// inner channels and a slice `K_t` of its channel mixer's hidden features, the products run
/// in vector kernels of the decoder's own instruction set (`lck_kernels_named`; the machine's
/// widest unless chosen otherwise), and the members meet at two
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
/// Covered: blocks whose mixer is a ``FusableMixer`` with a step (GTU, Hyena operator without
/// outer mixing, SSM block, or a mixer of one's own that describes its step in one of
/// ``FusedMixerStep``'s forms) and a converted recurrence, and whose channel mixer is a
/// ``FusableChannelMixer`` (GLU, MLP), pre- or post-norm, any norm. Other models step through
/// their modules (``make(model:mixers:)`` returns nil). The decoder reads modules only through
/// those step descriptions and ``LongConvLayers/Normalization/formula``: the math of a block
/// lives in its modules, the plans below only pack it. The weights are copied when the decoder
/// is made: like the converted kernels, the recurrent model is a snapshot of the model at
/// conversion. One step runs at a time per decoder.
///
/// A step can also run every member's share on the calling thread, segment by segment (the
/// same bits); ``TeamSchedule`` measures both and runs the faster, so that a busy core, which
/// stalls the team at every barrier, costs no more than one thread would.
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
  /// The head's weights, tied: row `token` is the token's embedding.
  private let embedding: PackedWeights
  private let finalNorm: NormPlan
  private let scratch: Scratch
  /// The states of the step running, one pair per layer.
  private let states: UnsafeMutablePointer<StatePointers>
  private var token = 0
  /// The state bytes a step reads and writes, for ``bytesPerStep()``.
  private let stateBytes: (read: Int, written: Int)
  /// Serialises steps: the scratch and the team serve one step at a time.
  private let running = Mutex(())

  /// A layer's recurrence state, and its short convolution's recent inputs (Hyena).
  private typealias StatePointers = (recurrence: RecurrenceState, history: UnsafeMutablePointer<Float>?)

  /// A decoder for `model` with `mixers` as its recurrent mixers, or nil when some block is not
  /// covered (then the model steps through its modules).
  /// `kernels` names its vector kernels' instruction set (`"best"` for the machine's widest;
  /// nil too when the machine lacks it); `weights` is the format its products' weights are kept in.
  static func make(
    model: CausalLanguageModel, mixers: [any RecurrentMixer], kernels name: String = "best",
    weights: DecodingWeights = .float32
  ) -> FusedDecoder? {
    var kernels = lck_kernels()
    guard covers(model: model, mixers: mixers), lck_kernels_named(name, &kernels) == 1,
      let team = lck_team_create(Int32(ComputeThreads.count))
    else { return nil }
    return FusedDecoder(model: model, mixers: mixers, kernels: kernels, weights: weights, team: team)
  }

  /// Whether every block of `model` is one the fused step runs (see the type's documentation).
  static func covers(model: CausalLanguageModel, mixers: [any RecurrentMixer]) -> Bool {
    guard !model.blocks.isEmpty, model.blocks.count == mixers.count else { return false }
    return zip(model.blocks, mixers).allSatisfy { block, mixer in
      (block.mixer as? any FusableMixer)?.fusedStep != nil && mixer.fusedRecurrence != nil
        && block.channelMixer is any FusableChannelMixer
    }
  }

  private init(
    model: CausalLanguageModel, mixers: [any RecurrentMixer], kernels: lck_kernels, weights: DecodingWeights,
    team: OpaquePointer
  ) {
    let d = model.embedding.width
    let members = Int(lck_team_size(team))
    let arena = Arena()
    let packing = Packing(kernels: kernels, weights: weights, arena: arena)
    var plans: [LayerPlan] = []
    var wide = 1
    for (block, mixer) in zip(model.blocks, mixers) {
      let step = (block.mixer as! any FusableMixer).fusedStep!
      let recurrence = RecurrencePlan(mixer.fusedRecurrence!, packing: packing)
      let (inner, streams) = Self.widths(of: step)
      let channels = Self.bounds(inner, members: members)
      let (forms, output, outputGLU) = Self.mixerForms(step, bounds: channels, packing: packing)
      let o = ColumnProduct.slices(output.weight, bounds: channels, packing: packing)
      let (firstLayer, gateLayer, outLayer, activation): (Linear, Linear?, Linear, ChannelActivation)
      switch (block.channelMixer as! any FusableChannelMixer).fusedStep {
      case .gated(let first, let gate, let out, let function):
        (firstLayer, gateLayer, outLayer, activation) = (first, gate, out, .gated(ElementwisePlan(function)))
      case .pointwise(let first, let out, let function):
        (firstLayer, gateLayer, outLayer, activation) = (
          first, nil, out, .pointwise(ElementwisePlan(function))
        )
      }
      let hidden = firstLayer.outputCount
      let features = Self.bounds(hidden, members: members)
      let first = RowProduct.slices(
        firstLayer.weight, bias: firstLayer.bias, bounds: features, packing: packing)
      let gate: [RowProduct?] =
        gateLayer.map {
          RowProduct.slices($0.weight, bias: $0.bias, bounds: features, packing: packing)
        }
        ?? [RowProduct?](repeating: nil, count: members)
      let out = ColumnProduct.slices(outLayer.weight, bounds: features, packing: packing)
      let outBias = outLayer.bias
      wide = max(wide, streams * inner, hidden)
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
      model.embedding.weight, bias: nil, bounds: Self.bounds(vocabulary, members: members), packing: packing)
    width = d
    self.vocabulary = vocabulary
    layerCount = model.blocks.count
    self.team = team
    self.members = members
    self.arena = arena
    self.plans = arena.copy(plans)
    self.head = arena.copy(head)
    embedding = head[0].weight
    finalNorm = NormPlan(model.finalNorm, width: d, arena: arena)
    scratch = Scratch(width: d, wide: wide, vocabulary: vocabulary, members: members, arena: arena)
    states = arena.allocate(layerCount, of: StatePointers.self)
    let recurrences = mixers.map { $0.fusedRecurrence! }
    stateBytes = recurrences.reduce((0, 0)) {
      ($0.0 + $1.stateBytesPerStep.read, $0.1 + $1.stateBytesPerStep.written)
    }
  }

  deinit { lck_team_destroy(team) }

  /// The channels the members split (the output product's inputs) and the rows of scratch
  /// per channel (Hyena's projected streams).
  private static func widths(of step: FusedMixerStep) -> (inner: Int, streams: Int) {
    switch step {
    case .gated(_, _, let out, _): (out.inputCount, 1)
    case .hyena(let parts): (parts.outProj.inputCount, parts.order + 1)
    case .ssm(let output, _, _): (output.inputCount, 1)
    }
  }

  /// Member `t`'s share of a mixer before its output product, the output product, and whether
  /// its summed output goes through `a * sigmoid(b)` (the SSM block's GLU output).
  private static func mixerForms(_ step: FusedMixerStep, bounds: [Int], packing: Packing)
    -> (
      [MixerForm], Linear, Bool
    )
  {
    switch step {
    case .gated(let u, let v, let o, let activation):
      let (us, vs) = (
        RowProduct.slices(u.weight, bias: u.bias, bounds: bounds, packing: packing),
        RowProduct.slices(v.weight, bias: v.bias, bounds: bounds, packing: packing)
      )
      return (
        zip(us, vs).map { MixerForm.gated(u: $0, v: $1, activation: ElementwisePlan(activation)) }, o, false
      )
    case .hyena(let parts):
      // The whole input projection's rows, each stream's slice split like the channels; a
      // member applies its rows of every stream.
      let d = parts.outProj.inputCount
      let streams = parts.order + 1
      let rows = (0..<streams).map { n in
        RowProduct.slices(
          parts.inProj.weight.slice(axis: 0, n * d..<(n + 1) * d),
          bias: parts.inProj.bias?.slice(axis: 0, n * d..<(n + 1) * d),
          bounds: bounds, packing: packing)
      }
      let arena = packing.arena
      let (taps, filter) = (parts.shortFilter.shape[1], UnsafePointer(arena.copy(parts.shortFilter)))
      let bias = UnsafePointer(arena.copy(parts.shortFilterBias))
      let scales = parts.orderScales.map { UnsafePointer(arena.copy($0)) }
      let forms = (0..<bounds.count - 1).map { t in
        MixerForm.hyena(
          HyenaForm(
            projections: UnsafePointer(arena.copy((0..<streams).map { rows[$0][t] })), order: parts.order,
            filter: filter, filterBias: bias, taps: taps, orderScales: scales,
            activation: ElementwisePlan(parts.activation)))
      }
      return (forms, parts.outProj, false)
    case .ssm(let output, let activation, let outputGLU):
      return (
        [MixerForm](repeating: .ssm(ElementwisePlan(activation)), count: bounds.count - 1), output, outputGLU
      )
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
      var alone = members > 1 && (forcedMode.map { $0 == .alone } ?? schedule.runsAlone())
      // Members whose threads have not started yet, or that fell asleep while no step came (a
      // pause between requests), take a millisecond or more to come on some virtual machines,
      // 100 times a small model's step: steps run alone until they are up, and are not
      // measurements for the schedule.
      let waking = !alone && forcedMode == nil && lck_team_ready(team) == 0
      if waking {
        lck_team_wake(team)
        alone = true
      }
      let start = DispatchTime.now().uptimeNanoseconds
      withStatePointers(&states, layer: 0) {
        if alone {
          runAlone()
        } else {
          lck_team_run(
            team,
            { context, member in
              Unmanaged<FusedDecoder>.fromOpaque(context!).takeUnretainedValue().runTeam(member: Int(member))
            }, Unmanaged.passUnretained(self).toOpaque())
        }
      }
      if !waking {
        schedule.finished(seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9, alone: alone)
      }
      return Array(UnsafeBufferPointer(start: scratch.logits, count: vocabulary))
    }
  }

  /// The memory one step streams through: everything the decoder packed (weights, recurrence
  /// constants, plans, scratch) plus the states it reads, and the states it writes back.
  func bytesPerStep() -> (read: Int, written: Int) {
    (arena.bytes + stateBytes.read, stateBytes.written)
  }

  /// How a step runs: on the team, or every member's share on the calling thread.
  enum Mode { case team, alone }
  /// Runs every step this way when set (tests: both give the same bits); ``TeamSchedule``
  /// decides otherwise.
  var forcedMode: Mode?
  private var schedule = TeamSchedule()

  /// Pins every layer's state arrays into ``states`` for the duration of `body`.
  private func withStatePointers(_ layerStates: inout [RecurrentMixerState], layer: Int, _ body: () -> Void) {
    if layer == layerStates.count {
      body()
      return
    }
    // Moved out while pinned, so that the next layers can still reach `layerStates`.
    var (re, im, slots, history): ([Double], [Double], [Float], [Float]) = ([], [], [], [])
    swap(&re, &layerStates[layer].convolution.re)
    swap(&im, &layerStates[layer].convolution.im)
    swap(&slots, &layerStates[layer].convolution.slots)
    swap(&history, &layerStates[layer].history)
    let time = layerStates[layer].convolution.time
    re.withUnsafeMutableBufferPointer { re in
      im.withUnsafeMutableBufferPointer { im in
        slots.withUnsafeMutableBufferPointer { slots in
          history.withUnsafeMutableBufferPointer { history in
            states[layer] = (
              RecurrenceState(re: re.baseAddress, im: im.baseAddress, slots: slots.baseAddress, time: time),
              history.baseAddress
            )
            withStatePointers(&layerStates, layer: layer + 1, body)
          }
        }
      }
    }
    swap(&re, &layerStates[layer].convolution.re)
    swap(&im, &layerStates[layer].convolution.im)
    swap(&slots, &layerStates[layer].convolution.slots)
    swap(&history, &layerStates[layer].history)
    layerStates[layer].convolution.time += 1
    layerStates[layer].position += 1
  }

  /// A step is `2 * layerCount + 1` segments, the stretches between barriers: segment `2i`
  /// finishes the previous sublayer (or takes the embedding) and runs layer `i`'s mixer share,
  /// segment `2i + 1` finishes the mixer and runs the channel mixer's share, the last one
  /// finishes the last channel mixer and runs the head's rows.
  private var segmentCount: Int { 2 * layerCount + 1 }

  /// Member `t`'s share of a step on the team: its segments, with a barrier between each two.
  private func runTeam(member t: Int) {
    for s in 0..<segmentCount {
      if s > 0 { lck_team_barrier(team) }
      segment(s, member: t)
    }
  }

  /// The whole step on the calling thread: every member's share of each segment in turn. The
  /// shares write disjoint ranges and read only what earlier segments wrote, so this computes
  /// the same values as the team, in the same order, bit for bit.
  private func runAlone() {
    for s in 0..<segmentCount {
      for t in 0..<members { segment(s, member: t) }
    }
  }

  /// Member `t`'s share of segment `s` (see ``segmentCount``).
  private func segment(_ s: Int, member t: Int) {
    let h = scratch.residual(t)
    if s == 0 {
      embedding.widen(from: token * width, count: width, into: h)
    } else {
      // Finish the sublayer of segment s - 1: sum the members' partial outputs into h.
      let plan = plans[(s - 1) / 2 * members + t]
      let finishesMixer = (s - 1) % 2 == 0
      gather(
        phase: (s - 1) & 1, rows: finishesMixer ? plan.o.rows : width,
        bias: finishesMixer ? plan.mixerBias : plan.channelBias, glu: finishesMixer && plan.outputGLU,
        into: h,
        norm: plan.prenorm ? nil : (finishesMixer ? plan.norm1 : plan.norm2), member: t)
    }
    if s == segmentCount - 1 {
      head[t].apply(finalNorm.apply(h, into: scratch.normed(t)), into: scratch.logits)
    } else if s % 2 == 0 {
      mixerShare(plans[s / 2 * members + t], layer: s / 2, member: t, phase: s & 1)
    } else {
      channelMixerShare(plans[s / 2 * members + t], member: t, phase: s & 1)
    }
  }

  /// Member `t`'s channels of a layer's mixer, from the projections to its partial output.
  private func mixerShare(_ plan: LayerPlan, layer index: Int, member t: Int, phase: Int) {
    let (h, z) = (scratch.residual(t), scratch.normed(t))
    let (u, v, gated, extra) = (scratch.u, scratch.v, scratch.gated, scratch.extra)
    let input = plan.prenorm ? plan.norm1.apply(h, into: z) : UnsafePointer(h)
    let channels = plan.channels
    let state = states[index]
    switch plan.mixer {
    case .gated(let up, let vp, let activation):
      // Gated (GTU): g = act(W_u z) * rec(act(W_v z)).
      up.apply(input, into: u)
      vp.apply(input, into: v)
      activation.apply(v, channels)
      plan.recurrence.step(channels: channels, x: v, y: gated, state: state.recurrence)
      activation.apply(u, channels)
      for c in channels { gated[c] *= u[c] }
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
        plan.recurrence.step(channels: stepChannels, x: extra, y: u, state: state.recurrence)
        let scale = form.orderScales?[o] ?? 1
        for c in channels { gated[c] = u[o * inner + c] * scale }
      }
      for c in channels { gated[c] *= v[c] }
      form.activation.apply(gated, channels)
    case .ssm(let activation):
      // SSM block: g = act(rec(z)); a GLU output follows the output product.
      plan.recurrence.step(channels: channels, x: input, y: gated, state: state.recurrence)
      activation.apply(gated, channels)
    }
    plan.o.apply(gated, into: scratch.partial(t, phase: phase))
  }

  /// Member `t`'s hidden features of a layer's channel mixer, to its partial output.
  private func channelMixerShare(_ plan: LayerPlan, member t: Int, phase: Int) {
    let (h, z) = (scratch.residual(t), scratch.normed(t))
    let (u, v, gated) = (scratch.u, scratch.v, scratch.gated)
    let input = plan.prenorm ? plan.norm2.apply(h, into: z) : UnsafePointer(h)
    plan.first.apply(input, into: u)
    let features = plan.first.range
    switch plan.activation {
    case .gated(let activation):
      plan.gate!.apply(input, into: v)
      activation.apply(u, features)
      for k in features { gated[k] = u[k] * v[k] }
    case .pointwise(let activation):
      activation.map(u, into: gated, features)
    }
    plan.out.apply(gated, into: scratch.partial(t, phase: phase))
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
