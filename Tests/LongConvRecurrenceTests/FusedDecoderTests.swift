import CDecodeKernels
import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Synchronization
import Testing

@testable import LongConvRecurrence

/// The fused decoding step against the model's own modules stepping the same recurrence, and
/// its kernels against Double references, under every instruction set this machine has.
@Suite struct FusedDecoderTests {
  /// The kernels of `isa`, or nil on a machine without it.
  static func kernels(_ isa: String) -> lck_kernels? {
    var kernels = lck_kernels()
    return lck_kernels_named(isa, &kernels) == 1 ? kernels : nil
  }
  static let hasAVX512 = kernels("avx512") != nil
  static let hasAVX2 = kernels("avx2") != nil

  static let gtu =
    #"{"type": "gtu", "expand_ratio": 3, "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}"#
  static let hyena = #"{"type": "hyena", "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5}}"#
  static let hyenaWidth1 =
    #"{"type": "hyena", "short_filter_width": 1, "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5}}"#
  static let ssm = #"{"type": "ssm", "kernel": {"type": "s4d", "state_size": 4}}"#
  static let hyenaOrder3 =
    #"{"type": "hyena", "order": 3, "post_order_ffn": true, "activation": "gelu_tanh", "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5, "shift": 0.1}}"#
  static let hyenaOrder4 =
    #"{"type": "hyena", "order": 4, "short_filter_width": 4, "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 3, "normalized": true}}"#
  static let ssmLinear =
    #"{"type": "ssm", "output": "linear", "activation": "tanh", "kernel": {"type": "s4d", "state_size": 6, "pole_groups": 4}}"#

  /// A model with `mixer` (GTU by default), `norm`, pre- or post-norm, a GLU or MLP channel
  /// mixer, every parameter but the kernels' (norm scales and shifts included) moved off its
  /// initial value so that each takes part.
  func model(
    norm: String, prenorm: Bool, channelMixer: String, finalNorm: String,
    mixer: String = FusedDecoderTests.gtu
  ) throws -> CausalLanguageModel {
    let json = """
      {"model": "causal_lm", "vocab_size": 40, "dim": 20, "num_layers": 2, "max_length": 64, "seed": 7,
       "final_norm": "\(finalNorm)",
       "layers": {"norm": "\(norm)", "prenorm": \(prenorm),
                  "mixer": \(mixer),
                  "channel_mixer": \(channelMixer)}}
      """
    let model = try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "test")) as? CausalLanguageModel)
    var generator = SeededGenerator(seed: 11)
    for (name, p) in model.namedParameters() where !name.contains("kernel") {
      p.withUnsafeMutableBufferPointer { values in
        for i in values.indices { values[i] += 0.2 * (generator.nextUniform() - 0.5) }
      }
    }
    return model
  }

  func tokens(_ count: Int, vocabulary: Int) -> [Int] {
    var generator = SeededGenerator(seed: 5)
    return (0..<count).map { _ in Int(generator.nextUniform() * Float(vocabulary)) % vocabulary }
  }

  /// `max |a - b| / max |b|`.
  func relative(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max()! / max(b.map(abs).max()!, 1e-30)
  }

  /// Every covered block shape: norm, pre-norm, channel mixer, final norm, mixer.
  static let shapes: [(String, Bool, String, String, String)] = [
    ("simple_rms_norm", true, #"{"type": "glu"}"#, "layer_norm", FusedDecoderTests.gtu),
    ("layer_norm", false, #"{"type": "glu", "hidden_dim": 36}"#, "rms_norm", FusedDecoderTests.gtu),
    (
      "rms_norm", true, #"{"type": "mlp", "hidden_dim": 24, "activation": "gelu"}"#, "simple_rms_norm",
      FusedDecoderTests.gtu
    ),
    (
      "layer_norm", true, #"{"type": "mlp", "hidden_dim": 17, "activation": "relu"}"#, "layer_norm",
      FusedDecoderTests.gtu
    ),
    (
      "rms_norm", false, #"{"type": "mlp", "hidden_dim": 33, "activation": "silu"}"#, "layer_norm",
      FusedDecoderTests.gtu
    ),
    ("simple_rms_norm", true, #"{"type": "glu"}"#, "layer_norm", FusedDecoderTests.hyena),
    (
      "layer_norm", false, #"{"type": "mlp", "hidden_dim": 24, "activation": "gelu"}"#, "rms_norm",
      FusedDecoderTests.hyena
    ),
    ("rms_norm", true, #"{"type": "glu"}"#, "layer_norm", FusedDecoderTests.hyenaWidth1),
    ("simple_rms_norm", true, #"{"type": "glu"}"#, "layer_norm", FusedDecoderTests.ssm),
    (
      "layer_norm", true, #"{"type": "mlp", "hidden_dim": 40, "activation": "gelu_tanh"}"#, "layer_norm",
      FusedDecoderTests.hyenaOrder3
    ),
    ("rms_norm", false, #"{"type": "glu"}"#, "layer_norm", FusedDecoderTests.hyenaOrder4),
    (
      "layer_norm", true, #"{"type": "mlp", "hidden_dim": 24, "activation": "sigmoid"}"#, "layer_norm",
      FusedDecoderTests.ssmLinear
    ),
    (
      "rms_norm", false, #"{"type": "mlp", "hidden_dim": 17, "activation": "relu"}"#, "layer_norm",
      FusedDecoderTests.ssm
    ),
  ]

  /// Every covered block shape gives the module path's logits and states, token after token,
  /// with exact (40 tokens: past the folded grid's 33 slots, so it wraps) and compact (own poles
  /// per channel, skip) kernels, on the kernels of `isa`
  /// (chosen for the model alone: other suites decoding at the same time are unaffected).
  func fusedStepEqualsTheModules(isa: String) throws {
    for (norm, prenorm, channelMixer, finalNorm, mixer) in Self.shapes {
      let model = try model(
        norm: norm, prenorm: prenorm, channelMixer: channelMixer, finalNorm: finalNorm, mixer: mixer)
      let converters: [any KernelConverter] = [ExactConverter(), try CompactConverter(tolerance: 1e-3)]
      for converter in converters {
        let converted = try RecurrentLanguageModel(model: model, converter: converter, length: 32)
        let recurrent = try #require(converted.usingInstructionSet(isa))
        #expect(recurrent.usesFusedStep && recurrent.instructionSet == isa)
        var (fused, modules) = (recurrent.makeState(), recurrent.makeState())
        for (i, token) in tokens(40, vocabulary: 40).enumerated() {
          let a = recurrent.step(token, state: &fused)
          let b = recurrent.stepThroughModules(token, state: &modules)
          let error = relative(a, b)
          #expect(
            error < 2e-5, "\(mixer) \(norm) prenorm \(prenorm) \(isa) \(converter) position \(i): \(error)")
        }
        #expect(fused.position == modules.position)
        for (x, y) in zip(fused.layers, modules.layers) {
          #expect(x.position == y.position)
          let historyDifference = zip(x.history, y.history).map { abs($0 - $1) }.max() ?? 0
          #expect(
            x.history.count == y.history.count && historyDifference < 1e-5, "\(isa): short-filter history")
          // Modal states (compact), or ETSC's folded slots (exact): one of the two is empty.
          let (a, b) = (x.convolution, y.convolution)
          #expect(a.re.count == b.re.count && a.slots.count == b.slots.count && a.time == b.time)
          #expect(a.re.isEmpty != a.slots.isEmpty, "\(converter): a modal or a folded state")
          let difference = max(
            zip(a.re + a.im, b.re + b.im).map { abs($0 - $1) }.max() ?? 0,
            zip(a.slots, b.slots).map { Double(abs($0 - $1)) }.max() ?? 0)
          #expect(difference < 1e-4, "\(isa): state difference \(difference)")
        }
      }
    }
  }

  @Test(.enabled(if: hasAVX512, "this CPU has no AVX-512: the AVX-512 kernels are not tested here"))
  func fusedStepEqualsTheModulesAVX512() throws { try fusedStepEqualsTheModules(isa: "avx512") }

  @Test(.enabled(if: hasAVX2, "this CPU has no AVX2 with FMA: the AVX2 kernels are not tested here"))
  func fusedStepEqualsTheModulesAVX2() throws { try fusedStepEqualsTheModules(isa: "avx2") }

  @Test func fusedStepEqualsTheModulesPortable() throws { try fusedStepEqualsTheModules(isa: "portable") }

  /// With bfloat16 weights, every covered block shape gives the logits of the module path of
  /// the same model whose matrices (every linear layer's weight outside the kernels and the
  /// embedding, nothing else)
  /// were rounded to bfloat16 beforehand: the decoder rounds exactly those, and its products
  /// are the Float32 ones of the rounded weights. The rounding's own effect is reported.
  @Test func bfloat16WeightsAreTheRoundedModel() throws {
    for (norm, prenorm, channelMixer, finalNorm, mixer) in Self.shapes {
      let (original, rounded) = try (
        model(norm: norm, prenorm: prenorm, channelMixer: channelMixer, finalNorm: finalNorm, mixer: mixer),
        model(norm: norm, prenorm: prenorm, channelMixer: channelMixer, finalNorm: finalNorm, mixer: mixer)
      )
      // Linear layers inside a kernel (TNN's relative-position network) only make the kernel,
      // which is converted as it is.
      let linear = rounded.namedModules().filter { !$0.name.contains("kernel") }
      let matrices = linear.compactMap { ($0.module as? Linear)?.weight } + [rounded.embedding.weight]
      for matrix in matrices {
        matrix.withUnsafeMutableBufferPointer { values in
          for i in values.indices { values[i] = Float(Self.decodedBFloat16(BFloat16.rounded(values[i]))) }
        }
      }
      let fused = try RecurrentLanguageModel(model: original, converter: ExactConverter(), length: 32)
        .usingWeights(.bfloat16)
      let reference = try RecurrentLanguageModel(model: rounded, converter: ExactConverter(), length: 32)
      #expect(fused.usesFusedStep && fused.weights == .bfloat16)
      var (a, b) = (fused.makeState(), reference.makeState())
      let sequence = tokens(16, vocabulary: 40)
      for (i, token) in sequence.enumerated() {
        let error = relative(fused.step(token, state: &a), reference.stepThroughModules(token, state: &b))
        #expect(error < 2e-5, "\(mixer) \(norm) position \(i): \(error)")
      }
      let report = fused.weightRoundingReport(tokens: sequence)
      #expect(report.tokens == 16 && report.maxLogit > 0)
      #expect(
        report.maxLogitDifference > 0 && report.maxLogitDifference < 0.05 * report.maxLogit, "\(report)")
      #expect(fused.usingWeights(.float32).weightRoundingReport(tokens: sequence).maxLogitDifference == 0)
    }
  }

  /// Rounding to bfloat16: to nearest, ties to even, overflow to infinity, NaN kept; every
  /// normal value within half a unit of the 8th significant bit.
  @Test func bfloat16Rounding() {
    #expect(BFloat16.rounded(1) == 0x3F80 && BFloat16.rounded(-2) == 0xC000)
    #expect(BFloat16.rounded(1 + 0x1p-8) == 0x3F80, "a tie goes to the even neighbour below")
    #expect(BFloat16.rounded(1 + 3 * 0x1p-8) == 0x3F82, "a tie goes to the even neighbour above")
    #expect(BFloat16.rounded(1 + 0x1p-8 + 0x1p-20) == 0x3F81, "just above a tie rounds up")
    #expect(BFloat16.rounded(.greatestFiniteMagnitude) == 0x7F80 && BFloat16.rounded(-.infinity) == 0xFF80)
    #expect(BFloat16.rounded(-0.0) == 0x8000 && BFloat16.rounded(.leastNonzeroMagnitude) == 0)
    #expect(BFloat16.value(BFloat16.rounded(.nan)).isNaN)
    var generator = SeededGenerator(seed: 21)
    for _ in 0..<10_000 {
      let x =
        (generator.nextUniform() * 2 - 1)
        * Float(Foundation.pow(2.0, Double(Int(generator.next() % 60) - 30)))
      let bits = BFloat16.rounded(x)
      let error = abs(Self.decodedBFloat16(bits) - Double(x))
      #expect(BFloat16.value(bits) == Float(Self.decodedBFloat16(bits)))
      #expect(error <= BFloat16.unitRoundoff * abs(Double(x)), "\(x)")
      // No neighbour is nearer.
      for neighbour in [bits &- 1, bits &+ 1] {
        #expect(abs(Self.decodedBFloat16(neighbour) - Double(x)) >= error, "\(x)")
      }
    }
  }

  /// Norm epsilons from the config reach the fused step; a Hyena with outer mixing (a sum over
  /// all channels per step, which the members' channel split cannot form) steps through its
  /// modules instead.
  @Test func normEpsilonsAndOuterMixing() throws {
    let json = """
      {"model": "causal_lm", "vocab_size": 40, "dim": 20, "num_layers": 2, "max_length": 64, "seed": 7,
       "final_norm": "rms_norm", "final_norm_epsilon": 0.5,
       "layers": {"norm": "layer_norm", "norm_epsilon": 0.3, "mixer": \(Self.hyenaOrder3),
                  "channel_mixer": {"type": "mlp", "activation": "gelu_tanh"}}}
      """
    let epsilonModel = try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "test")) as? CausalLanguageModel)
    #expect(epsilonModel.blocks[0].norm1.epsilon == 0.3 && epsilonModel.finalNorm.epsilon == 0.5)
    let recurrent = try RecurrentLanguageModel(model: epsilonModel, converter: ExactConverter(), length: 32)
    #expect(recurrent.usesFusedStep)
    var (fused, modules) = (recurrent.makeState(), recurrent.makeState())
    for token in tokens(12, vocabulary: 40) {
      let error = relative(
        recurrent.step(token, state: &fused), recurrent.stepThroughModules(token, state: &modules))
      #expect(error < 2e-5)
    }
    let outer = try model(
      norm: "layer_norm", prenorm: true, channelMixer: #"{"type": "glu"}"#, finalNorm: "layer_norm",
      mixer:
        #"{"type": "hyena", "order": 3, "outer_mixing": true, "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5}}"#
    )
    #expect(
      !(try RecurrentLanguageModel(model: outer, converter: ExactConverter(), length: 32)).usesFusedStep)
  }

  /// An activation and a channel mixer written once, here, outside the toolkit: registered,
  /// named in a config, and decoded by the fused step exactly as through the modules.
  @Test func anActivationAndAChannelMixerDefinedOutsideDecodeFused() throws {
    try Activation.register(SquaredReLU.self)
    try Registry.register(channelMixer: GELUGatedUnit.self)
    let mixer =
      #"{"type": "hyena", "order": 3, "activation": "test_squared_relu", "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 3}}"#
    for channelMixer in [
      #"{"type": "mlp", "hidden_dim": 30, "activation": "test_squared_relu"}"#,
      #"{"type": "test_gelu_glu", "hidden_dim": 26}"#,
    ] {
      let model = try model(
        norm: "layer_norm", prenorm: true, channelMixer: channelMixer, finalNorm: "layer_norm", mixer: mixer)
      let recurrent = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: 32)
      #expect(recurrent.usesFusedStep)
      var (fused, modules) = (recurrent.makeState(), recurrent.makeState())
      for token in tokens(16, vocabulary: 40) {
        let error = relative(
          recurrent.step(token, state: &fused), recurrent.stepThroughModules(token, state: &modules))
        #expect(error < 2e-5, "\(channelMixer): \(error)")
      }
    }
  }

  /// A step on the team and a step with every member's share on the calling thread give the same
  /// bits, token after token, for each block shape (the schedule may switch between them at
  /// any step).
  @Test func teamAndAloneGiveTheSameBits() throws {
    for (norm, prenorm, channelMixer, finalNorm, mixer) in Self.shapes {
      let model = try model(
        norm: norm, prenorm: prenorm, channelMixer: channelMixer, finalNorm: finalNorm, mixer: mixer)
      let recurrent = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: 32)
      let decoders = try [FusedDecoder.Mode.team, .alone].map { mode in
        let decoder = try #require(FusedDecoder.make(model: recurrent.model, mixers: recurrent.mixers))
        decoder.forcedMode = mode
        return decoder
      }
      var states = decoders.map { _ in recurrent.makeState().layers }
      for (i, token) in tokens(12, vocabulary: 40).enumerated() {
        let team = decoders[0].step(token, states: &states[0])
        let alone = decoders[1].step(token, states: &states[1])
        #expect(team == alone, "\(mixer) \(norm) position \(i)")
      }
      for (x, y) in zip(states[0], states[1]) {
        #expect(
          x.convolution.re == y.convolution.re && x.convolution.im == y.convolution.im
            && x.convolution.slots == y.convolution.slots && x.history == y.history)
      }
    }
  }

  /// The bytes a fused step streams (the benchmark's floor): at least the packed weights (every
  /// block parameter outside the kernels, the tied embedding as the head; 2 bytes each in
  /// bfloat16) and the recurrences' constants and states, and not much more. Exact (ETSC's grid,
  /// folded): `m = n + 1` slots and as many window values per channel read, one slot written.
  /// Compact (own poles per channel): poles, residues and states read, the states written.
  @Test func stepBytesCountWeightsAndStates() throws {
    let model = try model(
      norm: "simple_rms_norm", prenorm: true, channelMixer: #"{"type": "glu"}"#, finalNorm: "layer_norm")
    let weights = model.namedParameters().filter {
      !$0.name.contains(".kernel.") && !$0.name.contains("norm")
    }
    .reduce(0) { $0 + $1.tensor.count }
    let (n, m) = (32, 33)
    let channels = model.blocks.count * 60  // GTU, dim 20, expand 3
    for converter in [ExactConverter(), try CompactConverter(tolerance: 1e-3)] as [any KernelConverter] {
      let recurrent = try RecurrentLanguageModel(model: model, converter: converter, length: n)
      let exact = converter.mode == .exact
      let (recurrenceRead, written) =
        exact ? (8 * m * channels, 4 * channels) : (40 * recurrent.stateCount, 16 * recurrent.stateCount)
      for (format, bytesPerWeight) in [(DecodingWeights.float32, 4), (.bfloat16, 2)] {
        let bytes = try #require(recurrent.usingWeights(format).fusedStepBytes)
        let expected = bytesPerWeight * weights + recurrenceRead
        #expect(bytes.written == written, "\(converter)")
        #expect(
          bytes.read >= expected && Double(bytes.read) <= 1.3 * Double(expected) + 65_536,
          "\(converter) \(format): \(bytes.read) for \(expected)")
      }
    }
  }

  /// The schedule: probes of each way open every round, the faster one runs the rest, and a
  /// team that stalls (load that began after the probes) hands the rest of the round over.
  @Test func teamScheduleFollowsTheMeasurements() {
    var schedule = TeamSchedule()
    func run(_ steps: Int, team: Double, alone: Double) -> [Bool] {
      (0..<steps).map { _ in
        let ranAlone = schedule.runsAlone()
        schedule.finished(seconds: ranAlone ? alone : team, alone: ranAlone)
        return ranAlone
      }
    }
    let probes = TeamSchedule.probeSteps
    // An idle machine: the team is faster, and keeps the round.
    var ways = run(TeamSchedule.roundSteps, team: 1e-3, alone: 2e-3)
    #expect(ways.prefix(probes).allSatisfy { !$0 } && ways[probes..<2 * probes].allSatisfy { $0 })
    #expect(ways[(2 * probes)...].allSatisfy { !$0 })
    // Load from the start of a round: the probes find the team slower.
    ways = run(TeamSchedule.roundSteps, team: 5e-3, alone: 2e-3)
    #expect(ways[(2 * probes)...].allSatisfy { $0 })
    // Load that begins mid-round: three slow team steps in a row, then alone to the round's end.
    ways = run(2 * probes + 10, team: 1e-3, alone: 2e-3)
    #expect(ways[(2 * probes)...].allSatisfy { !$0 })
    ways = run(TeamSchedule.stallsToLeave, team: 4e-3, alone: 2e-3)
    #expect(ways.allSatisfy { !$0 })
    #expect(schedule.runsAlone())
    // Two slow steps are not a stall.
    var steady = TeamSchedule()
    for _ in 0..<(2 * probes) {
      let a = steady.runsAlone()
      steady.finished(seconds: a ? 2e-3 : 1e-3, alone: a)
    }
    for seconds in [4e-3, 4e-3, 1e-3, 4e-3] { steady.finished(seconds: seconds, alone: false) }
    #expect(!steady.runsAlone())
  }

  /// Two models stepping at once from two threads (four team members on two cores), and one
  /// model stepped from two threads with separate states, give the logits of stepping alone.
  @Test func concurrentSteps() throws {
    let models = [
      try model(
        norm: "simple_rms_norm", prenorm: true, channelMixer: #"{"type": "glu"}"#, finalNorm: "layer_norm"),
      try model(
        norm: "layer_norm", prenorm: false, channelMixer: #"{"type": "glu"}"#, finalNorm: "layer_norm"),
    ]
    let recurrent = try models.map {
      try RecurrentLanguageModel(model: $0, converter: ExactConverter(), length: 32)
    }
    let sequence = tokens(20, vocabulary: 40)
    @Sendable func run(_ model: RecurrentLanguageModel) -> [[Float]] {
      var state = model.makeState()
      return sequence.map { model.step($0, state: &state) }
    }
    let alone = recurrent.map(run)
    for pairing in [[0, 1], [0, 0]] {
      let results = Mutex<[Int: [[Float]]]>([:])
      DispatchQueue.concurrentPerform(iterations: 2) { i in
        let logits = run(recurrent[pairing[i]])
        results.withLock { $0[i] = logits }
      }
      let logits = results.withLock { $0 }
      for i in 0..<2 { #expect(logits[i] == alone[pairing[i]], "pairing \(pairing), thread \(i)") }
    }
  }

  /// A bfloat16's value in Double from its fields (sign, 8 exponent bits, 7 fraction bits), apart
  /// from the kernels' widening by a shift.
  static func decodedBFloat16(_ bits: UInt16) -> Double {
    let sign: Double = bits & 0x8000 != 0 ? -1 : 1
    let (exponent, fraction) = (Int(bits >> 7) & 0xFF, Double(bits & 0x7F))
    return exponent == 0
      ? sign * fraction / 128 * 0x1p-126
      : sign * (1 + fraction / 128) * Foundation.pow(2.0, Double(exponent - 127))
  }

  /// The kernels' `gemv` and `gemv_bf16` (`lck_kernels`) against a Double product of the weights
  /// they see, shapes with every tail (rows not a multiple of 4, columns not a multiple of 16 or
  /// 8), with and without a bias.
  func matrixVectorProduct(isa: String) throws {
    let kernels = try #require(Self.kernels(isa))
    var generator = SeededGenerator(seed: 3)
    for (rows, cols) in [(1, 1), (3, 7), (4, 16), (9, 33), (37, 256), (6, 769)] {
      let w = (0..<rows * cols).map { _ in Float(generator.nextUniform() * 2 - 1) }
      let rounded = w.map(BFloat16.rounded)
      let x = (0..<cols).map { _ in Float(generator.nextUniform() * 2 - 1) }
      let bias = (0..<rows).map { _ in Float(generator.nextUniform()) }
      for format in DecodingWeights.allCases {
        let seen = format == .float32 ? w.map(Double.init) : rounded.map(Self.decodedBFloat16)
        for withBias in [false, true] {
          var y = [Float](repeating: .nan, count: rows)
          bias.withUnsafeBufferPointer { b in
            switch format {
            case .float32: kernels.gemv(w, rows, cols, x, withBias ? b.baseAddress : nil, &y)
            case .bfloat16: kernels.gemv_bf16(rounded, rows, cols, x, withBias ? b.baseAddress : nil, &y)
            }
          }
          var (expected, magnitudes) = ([Double](), [Double]())
          for r in 0..<rows {
            var (sum, magnitude) = withBias ? (Double(bias[r]), abs(Double(bias[r]))) : (0, 0)
            for c in 0..<cols {
              sum += seen[r * cols + c] * Double(x[c])
              magnitude += abs(seen[r * cols + c] * Double(x[c]))
            }
            expected.append(sum)
            magnitudes.append(magnitude)
          }
          expectProductClose(
            y.map(Double.init), expected, magnitudes: magnitudes, depth: cols + (withBias ? 1 : 0),
            "\(isa) \(format) \(rows)x\(cols) bias \(withBias)")
        }
      }
    }
  }

  /// The kernels' recurrence step (`lck_kernels.channels`) against the recurrence in Double: channels of 1 ... 21 states
  /// (every tail of the vector loops), own and shared poles, with a skip.
  func recurrenceSteps(isa: String) throws {
    let kernels = try #require(Self.kernels(isa))
    var generator = SeededGenerator(seed: 8)
    let counts = [1, 3, 4, 5, 8, 9, 12, 21]
    let offsets = counts.reduce(into: [0]) { $0.append($0.last! + $1) }
    let total = offsets.last!
    func uniform() -> Double { Double(generator.nextUniform()) * 2 - 1 }
    let (poleRe, poleIm) = (
      (0..<total).map { _ in 0.9 * uniform() }, (0..<total).map { _ in 0.4 * uniform() }
    )
    let (resRe, resIm) = (
      (0..<total).map { _ in Float(uniform()) }, (0..<total).map { _ in Float(uniform()) }
    )
    let skip = counts.map { _ in Float(uniform()) }
    let inputs = (0..<5).map { _ in counts.map { _ in Float(uniform()) } }
    do {
      for shared in [false, true] {
        var (sRe, sIm) = ([Double](repeating: 0, count: total), [Double](repeating: 0, count: total))
        var (rRe, rIm) = (sRe, sIm)
        for x in inputs {
          var y = [Float](repeating: 0, count: counts.count)
          kernels.channels(
            0, counts.count, offsets, shared ? 1 : 0, poleRe, poleIm, resRe, resIm, skip, &sRe, &sIm, x, &y)
          for c in counts.indices {
            var expected = Double(skip[c] * x[c])
            for n in offsets[c]..<offsets[c + 1] {
              let p = shared ? n - offsets[c] : n
              let re = poleRe[p] * rRe[n] - poleIm[p] * rIm[n] + Double(x[c])
              let im = poleIm[p] * rRe[n] + poleRe[p] * rIm[n]
              (rRe[n], rIm[n]) = (re, im)
              expected += Double(resRe[n]) * re - Double(resIm[n]) * im
            }
            #expect(abs(Double(y[c]) - expected) < 1e-5 * max(1, abs(expected)), "\(isa) channel \(c)")
          }
        }
        #expect(zip(sRe + sIm, rRe + rIm).allSatisfy { abs($0 - $1) < 1e-12 }, "\(isa) shared \(shared)")
      }
    }
  }

  /// The kernels' folded ETSC step (`lck_kernels.folded`) against its formula in Double: grids
  /// of 1 ... 130 slots (every tail of the 16- and 64-wide loops), the input in the first, a
  /// middle and the last slot (so that both runs of the sum are empty in turn), with and
  /// without a rescaling and a skip, over a channel range that does not start at 0.
  func foldedSteps(isa: String) throws {
    let kernels = try #require(Self.kernels(isa))
    var generator = SeededGenerator(seed: 13)
    func uniform() -> Float { generator.nextUniform() * 2 - 1 }
    for m in [1, 2, 5, 16, 17, 33, 64, 70, 130] {
      let channels = 3
      let window = (0..<channels * m).map { _ in uniform() }
      let skip = (0..<channels).map { _ in uniform() }
      let x = (0..<channels).map { _ in uniform() }
      for q in Set([0, m / 2, m - 1]) {
        for (rescale, withSkip) in [(Float(1), false), (0.75, true)] {
          var slots = (0..<channels * m).map { _ in uniform() }
          var expectedSlots = slots.map(Double.init)
          var y = [Float](repeating: .nan, count: channels)
          let (inputScale, outputScale): (Float, Double) = (1.5, 0.625)
          skip.withUnsafeBufferPointer { skip in
            kernels.folded(
              1, channels, m, q, rescale, inputScale, outputScale, window, withSkip ? skip.baseAddress : nil,
              &slots, x, &y)
          }
          #expect(y[0].isNaN, "\(isa): channel 0 is outside the range")
          for c in 1..<channels {
            var (sum, magnitude) = (0.0, 0.0)
            for p in 0..<m {
              var a = Double(Float(expectedSlots[c * m + p]) * rescale)
              if p == q { a = Double(Float(a) + inputScale * x[c]) }
              expectedSlots[c * m + p] = a
              let weight = Double(window[c * m + (p <= q ? m - 1 - q + p : p - q - 1)])
              sum += weight * a
              magnitude += Swift.abs(weight * a)
            }
            let expected = outputScale * sum + (withSkip ? Double(skip[c] * x[c]) : 0)
            let bound =
              Double(m + 2) * 0x1p-24 * outputScale * magnitude + 0x1p-24 * Swift.abs(expected) + 1e-30
            #expect(
              Swift.abs(Double(y[c]) - expected) <= bound,
              "\(isa) m \(m) q \(q) rescale \(rescale) channel \(c)")
            // Every slot rescaled exactly as Float32 does; the input's slot within the rounding
            // of its product (fused into the sum or not).
            let product = Double(Swift.abs(inputScale * x[c]))
            for p in 0..<m {
              let (got, want) = (slots[c * m + p], expectedSlots[c * m + p])
              let slack = p == q ? 0x1p-23 * max(product, Swift.abs(want)) : 0
              #expect(Swift.abs(Double(got) - want) <= slack, "\(isa) m \(m) slot \(p)")
            }
          }
        }
      }
    }
  }

  @Test(.enabled(if: hasAVX512, "this CPU has no AVX-512: the AVX-512 kernels are not tested here"))
  func kernelsAVX512() throws {
    try matrixVectorProduct(isa: "avx512")
    try recurrenceSteps(isa: "avx512")
    try foldedSteps(isa: "avx512")
  }

  @Test(.enabled(if: hasAVX2, "this CPU has no AVX2 with FMA: the AVX2 kernels are not tested here"))
  func kernelsAVX2() throws {
    try matrixVectorProduct(isa: "avx2")
    try recurrenceSteps(isa: "avx2")
    try foldedSteps(isa: "avx2")
  }

  @Test func kernelsPortable() throws {
    try matrixVectorProduct(isa: "portable")
    try recurrenceSteps(isa: "portable")
    try foldedSteps(isa: "portable")
  }

  /// The team runs a body on every member at once and its barrier orders their writes.
  @Test func teamBarrierOrdersWrites() throws {
    for size in [1, 2, 3] {
      let team = try #require(lck_team_create(Int32(size)))
      defer { lck_team_destroy(team) }
      final class Box: @unchecked Sendable {
        let slots: UnsafeMutablePointer<Int>
        let sums: UnsafeMutablePointer<Int>
        let (size, team): (Int, OpaquePointer)
        init(_ size: Int, _ team: OpaquePointer) {
          (slots, sums) = (.allocate(capacity: size), .allocate(capacity: size))
          slots.initialize(repeating: 0, count: size)
          sums.initialize(repeating: 0, count: size)
          (self.size, self.team) = (size, team)
        }
        deinit {
          slots.deallocate()
          sums.deallocate()
        }
      }
      let box = Box(size, team)
      for round in 1...50 {
        lck_team_run(
          team,
          { context, member in
            let box = Unmanaged<Box>.fromOpaque(context!).takeUnretainedValue()
            box.slots[Int(member)] += 1
            lck_team_barrier(box.team)
            // After the barrier every member sees every member's increment.
            let total = (0..<box.size).reduce(0) { $0 + box.slots[$1] }
            lck_team_barrier(box.team)
            box.sums[Int(member)] = total
          }, Unmanaged.passUnretained(box).toOpaque())
        #expect((0..<size).allSatisfy { box.sums[$0] == round * size }, "team of \(size), round \(round)")
      }
    }
  }

  /// A team is ready once its threads have started; idle members fall asleep after a while
  /// (not ready); `lck_team_wake` wakes them without a run (they spin again), and a run after
  /// either works.
  @Test func teamSleepsAndWakesWithoutARun() throws {
    let team = try #require(lck_team_create(2))
    defer { lck_team_destroy(team) }
    let single = try #require(lck_team_create(1))
    defer { lck_team_destroy(single) }
    #expect(lck_team_ready(single) == 1, "a team of the caller alone is always ready")
    /// Runs per member, each written by its own member only (plain memory: no exclusivity
    /// checks between the two threads).
    final class Counter: @unchecked Sendable {
      let counts = UnsafeMutablePointer<Int>.allocate(capacity: 2)
      init() { counts.initialize(repeating: 0, count: 2) }
      deinit { counts.deallocate() }
      var runs: [Int] { [counts[0], counts[1]] }
    }
    let counter = Counter()
    func run() {
      lck_team_run(
        team,
        { context, member in
          Unmanaged<Counter>.fromOpaque(context!).takeUnretainedValue().counts[Int(member)] += 1
        },
        Unmanaged.passUnretained(counter).toOpaque())
    }
    run()
    /// Polls `condition` for up to 5 seconds.
    func eventually(_ condition: () -> Bool) -> Bool {
      let deadline = DispatchTime.now().uptimeNanoseconds + 5_000_000_000
      while DispatchTime.now().uptimeNanoseconds < deadline {
        if condition() { return true }
      }
      return condition()
    }
    #expect(eventually { lck_team_ready(team) == 0 }, "the idle member never slept")
    #expect(lck_team_nudged_wakeups(team) == 0)
    lck_team_wake(team)
    // Woken, it spins 2 ms and may be asleep again before this thread looks: count wake-ups.
    #expect(eventually { lck_team_nudged_wakeups(team) == 1 }, "the member did not wake")
    #expect(counter.runs == [1, 1], "a wake-up is not a run")
    run()
    #expect(counter.runs == [2, 2])
    #expect(eventually { lck_team_ready(team) == 0 }, "the member did not sleep again")
    run()
    #expect(counter.runs == [3, 3])
  }
}

/// `max(x, 0)^2`: an activation the toolkit does not ship.
enum SquaredReLU: ElementwiseFunction {
  static let name = "test_squared_relu"
  static func value(_ x: Float) -> Float { x > 0 ? x * x : 0 }
  static func derivative(_ x: Float, _ y: Float) -> Float { x > 0 ? 2 * x : 0 }
}

/// `W3 (GELU(W1 x) * (W2 x))`: a channel mixer the toolkit does not ship, fusable in one line.
final class GELUGatedUnit: ConfigurableChannelMixer, FusableChannelMixer {
  static let typeName = "test_gelu_glu"
  let l1: Linear, l2: Linear, l3: Linear

  init(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator) throws {
    let hidden = try config.int("hidden_dim")
    l1 = Linear(context.width, hidden, generator: &generator)
    l2 = Linear(context.width, hidden, generator: &generator)
    l3 = Linear(hidden, context.width, generator: &generator)
  }

  var width: Int { l1.inputCount }
  func callAsFunction(_ x: Tensor) -> Tensor { l3(l1(x).gelu() * l2(x)) }
  var fusedStep: FusedChannelStep { .gated(first: l1, gate: l2, out: l3, activation: .gelu) }
}
