import Foundation
import LongConv
import LongConvInterop
import LongConvRecurrence
import LongConvTensors
import Testing

/// Whole models in recurrent form against the FFT model they came from.
@Suite struct RecurrentLanguageModelTests {
  static let mixers: [(String, String)] = [
    (
      "tnn",
      #"{"type": "gtu", "expand_ratio": 2, "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}"#
    ),
    ("hyena", #"{"type": "hyena", "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5}}"#),
    ("s4d", #"{"type": "ssm", "kernel": {"type": "s4d", "state_size": 4}}"#),
    (
      "hyena order 3",
      #"{"type": "hyena", "order": 3, "post_order_ffn": true, "activation": "gelu", "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5, "shift": 0.2}}"#
    ),
    (
      "hyena order 4, outer mixing",
      #"{"type": "hyena", "order": 4, "outer_mixing": true, "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 3, "normalized": true}}"#
    ),
    (
      "s4d shared poles, linear output",
      #"{"type": "ssm", "output": "linear", "activation": "silu", "kernel": {"type": "s4d", "state_size": 6, "pole_groups": 2}}"#
    ),
  ]

  func model(_ mixer: String, prenorm: Bool = true) throws -> CausalLanguageModel {
    let json = """
      {"model": "causal_lm", "vocab_size": 256, "dim": 16, "num_layers": 2, "max_length": 64, "seed": 3,
       "layers": {"prenorm": \(prenorm), "mixer": \(mixer), "channel_mixer": {"type": "glu"}}}
      """
    return try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "test")) as? CausalLanguageModel)
  }

  func tokens(_ count: Int, seed: UInt64) -> [Int] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Int(generator.nextUniform() * 256) % 256 }
  }

  func fftLogits(_ model: CausalLanguageModel, _ tokens: [Int]) throws -> [[Float]] {
    let logits = try Tensor.withoutRecording { try model.logits(tokens, batch: 1, length: tokens.count) }
      .scalars
    return (0..<tokens.count).map { Array(logits[$0 * 256..<($0 + 1) * 256]) }
  }

  static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { Swift.abs($0 - $1) }.max()!
  }

  /// Stepping every token reproduces the FFT logits at every position within `n`.
  @Test(arguments: mixers)
  func stepsMatchTheFFTModel(_ name: String, _ mixer: String) throws {
    for prenorm in [true, false] {
      let model = try model(mixer, prenorm: prenorm)
      let recurrent = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: 40)
      let sequence = tokens(40, seed: 9)
      let reference = try fftLogits(model, sequence)
      var state = recurrent.makeState()
      for (i, token) in sequence.enumerated() {
        let logits = recurrent.step(token, state: &state)
        let difference = Self.maxDifference(logits, reference[i])
        #expect(
          difference < 1e-4, "\(name) prenorm \(prenorm) position \(i): max logit difference \(difference)")
      }
    }
  }

  /// Prefill (FFT, one pass) then steps equals stepping every token from the start.
  @Test(arguments: mixers)
  func prefillThenStepEqualsStepping(_ name: String, _ mixer: String) throws {
    let model = try model(mixer)
    let recurrent = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: 48)
    let sequence = tokens(30, seed: 4)
    var stepped = recurrent.makeState()
    var steppedLogits: [[Float]] = []
    for token in sequence { steppedLogits.append(recurrent.step(token, state: &stepped)) }

    for split in [1, 2, 17] {
      var state = recurrent.makeState()
      let first = try recurrent.prefill(Array(sequence[..<split]), state: &state)
      #expect(Self.maxDifference(first, steppedLogits[split - 1]) < 1e-4, "\(name): prefill of \(split)")
      for i in split..<sequence.count {
        let logits = recurrent.step(sequence[i], state: &state)
        let difference = Self.maxDifference(logits, steppedLogits[i])
        #expect(difference < 1e-4, "\(name) split \(split) position \(i): \(difference)")
      }
      #expect(state.position == sequence.count)
    }
  }

  /// Greedy generation from an exactly converted model picks the same tokens as recomputing
  /// the whole prefix by FFT for every token.
  @Test(arguments: mixers.prefix(2))
  func greedyGenerationMatchesRecomputation(_ name: String, _ mixer: String) throws {
    let model = try model(mixer)
    let n = 48
    let recurrent = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: n)
    let prompt = tokens(8, seed: 21)

    var state = recurrent.makeState()
    var logits = try recurrent.prefill(prompt, state: &state)
    var fast = prompt
    while fast.count < n {
      fast.append(logits.indices.max { logits[$0] < logits[$1] }!)
      if fast.count < n { logits = recurrent.step(fast.last!, state: &state) }
    }

    var slow = prompt
    while slow.count < n {
      let last = try fftLogits(model, slow).last!
      slow.append(last.indices.max { last[$0] < last[$1] }!)
    }
    #expect(fast == slow, "\(name): recurrent \(fast.suffix(8)) vs FFT \(slow.suffix(8))")
    #expect(!recurrent.passedConversionLength(state))
  }

  /// A model converted compactly stays close, and native S4D stays exact past `n`.
  @Test func compactAndNativeModels() throws {
    let tnn = try model(Self.mixers[0].1)
    let compact = try RecurrentLanguageModel(
      model: tnn, converter: CompactConverter(tolerance: 1e-5), length: 40)
    #expect(compact.reports.allSatisfy { $0.relativeError <= 1e-5 })
    let s4d = try model(Self.mixers[2].1)
    let native = try RecurrentLanguageModel(model: s4d, converter: NativeConverter(), length: 8)
    #expect(!native.isLimitedToConversionLength)
    let sequence = tokens(40, seed: 2)
    let reference = try fftLogits(s4d, sequence)
    var state = native.makeState()
    for (i, token) in sequence.enumerated() {
      let difference = Self.maxDifference(native.step(token, state: &state), reference[i])
      #expect(difference < 1e-4, "native s4d position \(i) (converted at 8): \(difference)")
    }
  }

  @Test func exactModelsWarnPastTheirLength() throws {
    let recurrent = try RecurrentLanguageModel(
      model: model(Self.mixers[0].1), converter: ExactConverter(), length: 4)
    var state = recurrent.makeState()
    for token in tokens(4, seed: 1) { _ = recurrent.step(token, state: &state) }
    #expect(!recurrent.passedConversionLength(state))
    _ = recurrent.step(1, state: &state)
    #expect(recurrent.passedConversionLength(state))
  }

  /// A compact model whose channels fell back to ETSC is limited to its length too.
  @Test func compactFallbackChannelsAreLimitedToTheLength() throws {
    let model = try model(Self.mixers[0].1)
    let strict = try RecurrentLanguageModel(
      model: model, converter: CompactConverter(tolerance: 1e-12, maxStates: 1), length: 24)
    #expect(strict.reports.allSatisfy { ($0.exactChannels ?? 0) > 0 })
    #expect(strict.isLimitedToConversionLength)
    #expect(strict.kernels.count == 2)
  }
}

/// Models imported from safari, converted exactly, give the logits of their FFT forward pass
/// over the conversion length.
@Suite struct ImportedModelConversionTests {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../Fixtures")

  @Test(arguments: ["safari-hyena-o3", "safari-hyena-o4", "safari-s4d"])
  func exactConversionMatchesTheFFTModel(fixture: String) throws {
    let directory = Self.fixtures.appendingPathComponent(fixture)
    let model = try SafariImport.importModel(
      stateDict: directory.appendingPathComponent("model.safetensors"),
      config: directory.appendingPathComponent("config.json"))
    let length = 48
    let recurrent = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: length)
    var generator = SeededGenerator(seed: 4)
    let sequence = (0..<length).map { _ in Int(generator.nextUniform() * 250) % 250 }
    let vocabulary = model.vocabulary
    let reference = try Tensor.withoutRecording { try model.logits(sequence, batch: 1, length: length) }
      .scalars
    var state = recurrent.makeState()
    var worst: Float = 0
    for (i, token) in sequence.enumerated() {
      let logits = recurrent.step(token, state: &state)
      let expected = Array(reference[i * vocabulary..<(i + 1) * vocabulary])
      worst = max(worst, RecurrentLanguageModelTests.maxDifference(logits, expected))
    }
    #expect(worst <= 1e-5, "\(fixture): max logit difference \(worst)")
    // The prompt through the FFT path, then steps: the same logits.
    var prefilled = recurrent.makeState()
    _ = try recurrent.prefill(Array(sequence[..<20]), state: &prefilled)
    for i in 20..<length {
      let logits = recurrent.step(sequence[i], state: &prefilled)
      let expected = Array(reference[i * vocabulary..<(i + 1) * vocabulary])
      #expect(
        RecurrentLanguageModelTests.maxDifference(logits, expected) <= 1e-5, "\(fixture) after prefill, \(i)")
    }
  }
}
