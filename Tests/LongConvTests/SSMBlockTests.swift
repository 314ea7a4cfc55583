import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Testing

@Suite("SSM block")
struct SSMBlockTests {
  /// `conv + skip` by the Double recurrence of the kernel's state space, then GELU, the
  /// linear layer and the GLU, all in Double.
  func reference<K: LongConvKernel>(_ block: SSMBlock<K>, _ x: Tensor) throws -> [Double] {
    let (batch, length, d) = (x.shape[0], x.shape[1], x.shape[2])
    let system = try #require(block.kernel.stateSpace())
    let u = SSMReference.recurrence(system, x.doubles, batch: batch, length: length, channels: d)
    let h = u.map { $0 * 0.5 * (1 + erf($0 / 2.0.squareRoot())) }
    let (w, bias) = (block.output.weight.doubles, block.output.bias!.doubles)
    var y: [Double] = []
    for row in 0..<batch * length {
      let z = (0..<2 * d).map { o in
        (0..<d).reduce(bias[o]) { $0 + w[o * d + $1] * h[row * d + $1] }
      }
      for c in 0..<d { y.append(z[c] / (1 + exp(-z[d + c]))) }
    }
    return y
  }

  @Test("output matches conv + skip, GELU, Linear(D, 2D), GLU in Double")
  func matchesReference() throws {
    var rng = SeededGenerator(seed: 1)
    let s4d = SSMBlock(
      kernel: S4DKernel(channels: 2, stateSize: 4, dtMin: 0.05, dtMax: 0.3, generator: &rng), generator: &rng)
    let x = uniformTensor([2, 7, 2], seed: 2)
    // Measured: 1.1e-7 (s4d) and 1.5e-7 (ema) of the outputs' largest value.
    let y = try s4d(x)
    #expect(y.shape == [2, 7, 2] && s4d.width == 2)
    expectClose(y, try reference(s4d, x), tolerance: 2e-6, "ssm block (s4d)")

    let ema = SSMBlock(kernel: EMAKernel(channels: 3, ndim: 2, generator: &rng), generator: &rng)
    let x3 = uniformTensor([1, 6, 3], seed: 3)
    expectClose(try ema(x3), try reference(ema, x3), tolerance: 2e-6, "ssm block (ema)")
  }

  @Test("gradients reach the input, the kernel and the projection")
  func gradients() throws {
    var rng = SeededGenerator(seed: 4)
    let block = SSMBlock(kernel: S4DKernel(channels: 2, stateSize: 4, generator: &rng), generator: &rng)
    // h = 3e-2: the error measured falls from 6.1e-4 (h = 1e-2, Float32 rounding of the
    // outputs dominates) to 1.1e-4.
    checkGradients("ssm block input", inputs: [uniformTensor([1, 5, 2], seed: 5)], step: 3e-2) { p in
      try! block(p[0])
    }
    block.zeroGradients()
    try block(uniformTensor([1, 5, 2], seed: 6)).sum().backward()
    let names = block.namedParameters().map(\.name)
    #expect(
      names == [
        "kernel.logDt", "kernel.logAReal", "kernel.aImag", "kernel.cReal", "kernel.cImag", "kernel.D",
        "output.weight", "output.bias",
      ])
    for (name, p) in block.namedParameters() {
      #expect(p.gradient != nil, "no gradient for \(name)")
    }
  }

  @Test("built from JSON through the registry, kernel type picked by the config")
  func fromConfig() throws {
    func build(_ json: String, direction: ConvolutionDirection = .causal) throws -> any SequenceMixer {
      var rng = SeededGenerator(seed: 1)
      let config = try ConfigReader(JSONValue.parse(Data(json.utf8), source: "test.json"))
      let mixer = try Registry.makeMixer(
        config, context: MixerContext(width: 4, direction: direction, maxLength: 16), generator: &rng)
      try config.rejectUnknownKeys()
      return mixer
    }
    #expect(Registry.kernelTypes.contains("s4d") && Registry.kernelTypes.contains("ema"))
    #expect(Registry.mixerTypes.contains("ssm"))
    let s4d = try #require(
      try build(#"{"type": "ssm", "kernel": {"type": "s4d", "state_size": 4}}"#) as? SSMBlock<S4DKernel>)
    #expect(s4d.width == 4 && s4d.kernel.modes == 2 && s4d.output.outputCount == 8)
    let ema = try #require(
      try build(#"{"type": "ssm", "kernel": {"type": "ema"}}"#, direction: .bidirectional)
        as? SSMBlock<EMAKernel>)
    #expect(ema.kernel.direction == .bidirectional && ema.kernel.channels == 4)
    #expect(try ema(uniformTensor([1, 5, 4], seed: 1)).shape == [1, 5, 4])
    #expect(throws: ConfigError.self) { try build(#"{"type": "ssm"}"#) }
    #expect(throws: ConfigError.self) { try build(#"{"type": "ssm", "kernel": {"type": "s5"}}"#) }
    #expect(throws: ConfigError.self) { try build(#"{"type": "ssm", "kernel": {"type": "s4d", "n": 4}}"#) }
  }

  @Test("whole models with SSM layers: an S4D language model and an EMA classifier")
  func models() throws {
    // (channel_mixer is given: ModelBuilder does not yet apply its documented default "glu".)
    let lm = try #require(
      try ModelBuilder.build(
        JSONValue.parse(
          Data(
            #"{"vocab_size": 11, "dim": 4, "num_layers": 2, "max_length": 8, "layers": {"channel_mixer": {"type": "glu"}, "mixer": {"type": "ssm", "kernel": {"type": "s4d", "state_size": 4}}}}"#
              .utf8), source: "lm.json")) as? CausalLanguageModel)
    let loss = try lm.loss(inputs: [1, 2, 3, 4, 5, 6], targets: [2, 3, 4, 5, 6, 7], batch: 2, length: 3)
    #expect(loss.scalar.isFinite)
    loss.backward()
    #expect(lm.namedParameters().allSatisfy { $0.tensor.gradient != nil })
    // The resolved config records the kernel's defaults.
    guard case .object(let top) = lm.config, case .object(let layers)? = top["layers"],
      case .object(let mixer)? = layers["mixer"], case .object(let kernel)? = mixer["kernel"]
    else {
      Issue.record("resolved config has no layers.mixer.kernel: \(lm.config)")
      return
    }
    #expect(kernel["init"] == .string("lin") && kernel["dt_min"] == .number(1e-3))

    let classifier = try ModelBuilder.build(
      JSONValue.parse(
        Data(
          #"{"model": "classifier", "num_classes": 3, "vocab_size": 11, "dim": 4, "num_layers": 1, "layers": {"channel_mixer": {"type": "mlp"}, "mixer": {"type": "ssm", "kernel": {"type": "ema", "ndim": 2}}}}"#
            .utf8), source: "cls.json"))
    let logits = try #require(classifier as? SequenceClassifier).logits(
      [1, 2, 3, 4, 5, 6], batch: 2, length: 3)
    #expect(logits.shape == [2, 3])
  }
}
