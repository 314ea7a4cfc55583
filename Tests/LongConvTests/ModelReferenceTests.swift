import Foundation
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConv

/// Blocks, channel mixers and whole models against dense Double forward passes written from
/// the formulas (``DenseModel``), with every kernel materialised in Double from its own
/// parameters (the kernels' references in TNNKernelTests, HyenaFilterTests, S4DKernelTests).
@Suite struct ModelReferenceTests {
  static func build(_ json: String) throws -> any SequenceModel {
    try ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "model-reference"))
  }

  /// Moves every norm's weight and bias away from ones and zeros, so that a norm applied in the
  /// wrong place (or its parameters ignored) shows.
  static func perturbNorms(_ module: some Module, seed: UInt64) {
    var rng = SeededGenerator(seed: seed)
    for (_, m) in module.namedModules() {
      guard let norm = m as? Normalization else { continue }
      norm.weight?.withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] = 1 + 0.4 * (rng.nextUniform() * 2 - 1) }
      }
      norm.bias?.withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] = 0.3 * (rng.nextUniform() * 2 - 1) }
      }
    }
  }

  /// Layer `i`'s kernel in Double from its parameters, by the kernel's own reference.
  static func denseKernel(_ mixer: any SequenceMixer, length: Int) throws -> DenseKernel {
    switch mixer.longConvKernel {
    case let k as TNNKernel:
      return DenseKernel(coefficients: TNNKernelTests.reference(k, length: length).coefficients, skip: nil)
    case let k as HyenaFilter:
      let e = k.positionalFeatures.shape[1]
      // The configs here keep the window's default constants.
      let decay: (fast: Double, slow: Double, target: Double)? = k.modulate ? (0.3, 1.5, 1e-2) : nil
      #expect(k.shift == 0 && !k.normalized)
      return DenseKernel(
        coefficients: HyenaFilterTests.reference(k, length: length, embeddingDimension: e, decay: decay),
        skip: k.skip?.doubles)
    case let k as S4DKernel:
      return DenseKernel(
        coefficients: S4DKernelTests().directKernel(k, length: length).flatMap { $0 }, skip: k.skip?.doubles)
    default:
      Issue.record("no Double reference for the kernel of \(type(of: mixer))")
      return try DenseModel.kernel(of: mixer, length: length)
    }
  }

  static func sequence(_ x: Tensor, row b: Int) -> [Double] {
    let n = x.shape[1] * x.shape[2]
    return Array(x.doubles[b * n..<(b + 1) * n])
  }

  // MARK: - Blocks

  /// Pre-norm and post-norm blocks with every norm kind (weights and biases perturbed), a GTU
  /// around a TNN kernel and a GLU or MLP, against the dense block, both directions.
  @Test(arguments: [
    (NormalizationKind.layerNorm, false), (.rmsNorm, false), (.simpleRMSNorm, false), (.layerNorm, true),
    (.rmsNorm, true),
  ])
  func blockMatchesTheDenseBlock(norm: NormalizationKind, prenorm: Bool) throws {
    for direction in ConvolutionDirection.allCases {
      var rng = SeededGenerator(seed: 7)
      let kernel = TNNKernel(
        channels: 8, direction: direction, rpeWidth: 4, rpeLayers: 1, gamma: 0.9, generator: &rng)
      let mixer = GatedToeplitzUnit(width: 4, kernel: kernel, generator: &rng)
      let channelMixer: any ChannelMixer =
        prenorm
        ? MLP(width: 4, hidden: 6, activation: .geluTanh, generator: &rng)
        : GLU(width: 4, hidden: 5, generator: &rng)
      let block = Block(
        mixer: mixer, channelMixer: channelMixer, norm: norm, normEpsilon: 1e-3, prenorm: prenorm)
      Self.perturbNorms(block, seed: 8)
      let (batch, length) = (2, 7)
      let x = uniformTensor([batch, length, 4], seed: 9, low: -2, high: 2)
      let y = try block(x)
      let t = try Self.denseKernel(mixer, length: length)
      let expected = try (0..<batch).flatMap {
        try DenseModel.block(block, Self.sequence(x, row: $0), length: length, kernel: t)
      }
      expectClose(
        y, expected, tolerance: 3e-6, "\(prenorm ? "pre" : "post")-norm \(norm) block, \(direction)")
    }
  }

  // MARK: - Channel mixers

  /// `W2 act(W1 x + b1) + b2` for every activation, pre-activations of several units (both tails
  /// of each), and the GLU. (Measured: at most 1e-7 relative.)
  @Test(arguments: ["id", "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"])
  func mlpMatchesTheDenseFormula(activation: String) throws {
    var rng = SeededGenerator(seed: 11)
    let mlp = MLP(
      width: 5, hidden: 9, activation: try #require(Activation(rawValue: activation)), generator: &rng)
    // Larger first-layer weights: pre-activations reach well into both tails.
    mlp.l1.weight.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] *= 4 } }
    let x = uniformTensor([2, 3, 5], seed: 12, low: -1, high: 1)
    expectClose(
      mlp(x), DenseModel.channelMixer(mlp, x.doubles, rows: 6), tolerance: 1e-6, "mlp \(activation)")
    let glu = GLU(width: 5, hidden: 7, generator: &rng)
    expectClose(glu(x), DenseModel.channelMixer(glu, x.doubles, rows: 6), tolerance: 1e-6, "glu")
  }

  /// The MLP's activations at points where the formulas differ most (checks the reference's
  /// formulas against values known independently).
  @Test func activationReferenceValues() {
    // Phi(1) = 0.841344746..., so gelu(1) = 0.841344746; gelu_tanh(1) = 0.841191990...
    #expect(abs(DenseModel.activation("gelu", 1) - 0.841_344_746_068_542_9) < 1e-12)
    #expect(abs(DenseModel.activation("gelu_tanh", 1) - 0.841_191_990_607_477_3) < 1e-12)
    #expect(abs(DenseModel.activation("silu", 2) - 2 / (1 + exp(-2.0))) < 1e-15)
  }

  // MARK: - Classifier

  /// `W mean_i(norm(h_i)) + b` over every position of each row (mean pooling, the classifier's only
  /// mode), a bidirectional TNN encoder with pre- or post-norm layers and perturbed norms.
  @Test(arguments: [true, false])
  func classifierMatchesTheDenseModel(prenorm: Bool) throws {
    let model = try #require(
      try Self.build(
        """
        {"model": "classifier", "num_classes": 3, "vocab_size": 9, "dim": 4, "num_layers": 2, "max_length": 16,
         "seed": 3, "final_norm": "layer_norm",
         "layers": {"norm": "rms_norm", "prenorm": \(prenorm),
                    "mixer": {"type": "gtu", "expand_ratio": 2, "kernel": {"type": "tnn", "rpe_width": 4, "rpe_layers": 1, "gamma": 0.9}},
                    "channel_mixer": {"type": "mlp", "hidden_dim": 6, "activation": "relu"}}}
        """) as? SequenceClassifier)
    Self.perturbNorms(model, seed: 4)
    let (batch, length) = (2, 6)
    let tokens = [1, 5, 2, 8, 0, 3, 4, 4, 7, 6, 2, 1]
    let logits = try model.logits(tokens, batch: batch, length: length)
    #expect(logits.shape == [batch, 3])
    let expected = try (0..<batch).flatMap { b in
      try DenseModel.logits(model, tokens: Array(tokens[b * length..<(b + 1) * length])) {
        try Self.denseKernel(model.blocks[$0].mixer, length: length)
      }
    }
    expectClose(logits, expected, tolerance: 2e-6, "classifier, prenorm \(prenorm)")
  }

  // MARK: - Whole language models

  /// A Hyena language model (order 2 and 3, safari's options on the second) and an S4D one,
  /// end to end against the dense Double model, norms perturbed.
  @Test(arguments: [
    #"{"type": "hyena", "kernel": {"type": "hyena", "emb_dim": 5, "filter_width": 4, "num_inner_layers": 1}}"#,
    #"{"type": "hyena", "order": 3, "post_order_ffn": true, "activation": "gelu_tanh", "kernel": {"type": "hyena", "emb_dim": 3, "filter_width": 4, "modulate": false}}"#,
    #"{"type": "ssm", "kernel": {"type": "s4d", "state_size": 4, "dt_min": 0.05, "dt_max": 0.5}}"#,
    #"{"type": "ssm", "output": "linear", "activation": "silu", "kernel": {"type": "s4d", "state_size": 6, "init": "inv", "dt_min": 0.05, "dt_max": 0.5}}"#,
  ])
  func languageModelMatchesTheDenseModel(mixer: String) throws {
    let length = 10
    for prenorm in [true, false] {
      let model = try #require(
        try Self.build(
          """
          {"vocab_size": 11, "dim": 4, "num_layers": 2, "max_length": \(length), "seed": 5,
           "final_norm": "layer_norm",
           "layers": {"norm": "layer_norm", "prenorm": \(prenorm), "mixer": \(mixer),
                      "channel_mixer": {"type": "mlp", "hidden_dim": 8}}}
          """) as? CausalLanguageModel)
      Self.perturbNorms(model, seed: 6)
      let tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]
      let logits = try model.logits(tokens, batch: 2, length: length)
      let expected = try (0..<2).flatMap { b in
        try DenseModel.logits(model, tokens: Array(tokens[b * length..<(b + 1) * length])) {
          try Self.denseKernel(model.blocks[$0].mixer, length: length)
        }
      }
      expectClose(logits, expected, tolerance: 3e-5, "LM \(mixer), prenorm \(prenorm)")
    }
  }

  /// A TNN language model with its default simple RMS norms and GLUs, the dense model too.
  @Test func tnnLanguageModelMatchesTheDenseModel() throws {
    let model = try #require(
      try Self.build(
        """
        {"vocab_size": 13, "dim": 6, "num_layers": 2, "max_length": 12,
         "layers": {"mixer": {"type": "gtu", "expand_ratio": 2, "kernel": {"type": "tnn", "rpe_width": 4, "rpe_layers": 2, "gamma": 0.95}},
                    "channel_mixer": {"type": "glu"}}}
        """) as? CausalLanguageModel)
    Self.perturbNorms(model, seed: 1)
    let tokens = (0..<12).map { ($0 * 7 + 3) % 13 }
    let logits = try model.logits(tokens, batch: 1, length: 12)
    let expected = try DenseModel.logits(model, tokens: tokens) {
      try Self.denseKernel(model.blocks[$0].mixer, length: 12)
    }
    expectClose(logits, expected, tolerance: 1e-5, "TNN LM")
  }
}
