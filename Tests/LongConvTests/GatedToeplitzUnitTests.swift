import Foundation
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConv

/// The gated Toeplitz unit against a dense Double computation, its gradients, and its config.
@Suite struct GatedToeplitzUnitTests {
  /// `y = W_o (SiLU(W_u x + b_u) * T SiLU(W_v x + b_v)) + b_o` with `T` the dense Toeplitz
  /// matrix of the kernel's coefficients, all in Double.
  static func reference(_ gtu: GatedToeplitzUnit<TNNKernel>, _ x: Tensor) throws -> [Double] {
    let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2])
    let d1 = gtu.innerWidth
    let t = try gtu.kernel.coefficients(length: l).doubles
    func linear(_ layer: Linear, _ v: ArraySlice<Double>) -> [Double] {
      let (w, bias) = (layer.weight.doubles, layer.bias!.doubles)
      let v = Array(v)
      return (0..<layer.outputCount).map { o in
        bias[o] + (0..<layer.inputCount).reduce(0.0) { $0 + w[o * layer.inputCount + $1] * v[$1] }
      }
    }
    func silu(_ z: Double) -> Double { z / (1 + Foundation.exp(-z)) }
    let xs = x.doubles
    let rows = (0..<b * l).map { xs[$0 * d..<($0 + 1) * d] }
    let u = rows.flatMap { linear(gtu.uProj, $0).map(silu) }
    let v = rows.flatMap { linear(gtu.vProj, $0).map(silu) }
    let mixed = zip(
      u,
      Dense.longConvolution(v, batch: b, length: l, channels: d1, kernel: t, direction: gtu.kernel.direction)
    ).map { $0 * $1 }
    return (0..<b * l).flatMap { linear(gtu.out, mixed[$0 * d1..<($0 + 1) * d1]) }
  }

  @Test(arguments: [ConvolutionDirection.causal, .bidirectional])
  func matchesADenseComputation(direction: ConvolutionDirection) throws {
    var rng = SeededGenerator(seed: 31)
    let kernel = TNNKernel(
      channels: 6, direction: direction, rpeWidth: 5, rpeLayers: 2, gamma: 0.9, generator: &rng)
    let gtu = GatedToeplitzUnit(width: 3, kernel: kernel, generator: &rng)
    let x = uniformTensor([2, 7, 3], seed: 2)
    let y = try gtu(x)
    #expect(y.shape == [2, 7, 3])
    expectClose(y, try Self.reference(gtu, x), tolerance: 2e-5, "GTU \(direction)")
  }

  @Test func gradientsMatchFiniteDifferences() {
    var rng = SeededGenerator(seed: 41)
    let kernel = TNNKernel(
      channels: 4, direction: .bidirectional, rpeWidth: 3, rpeLayers: 1, gamma: 0.9, generator: &rng)
    let gtu = GatedToeplitzUnit(width: 2, kernel: kernel, generator: &rng)
    checkGradients("GTU", inputs: [signedTensor([1, 5, 2], seed: 6)]) { try! gtu($0[0]) }
  }

  @Test func parametersAreNamedForImport() {
    var rng = SeededGenerator(seed: 1)
    let kernel = TNNKernel(channels: 6, direction: .causal, rpeWidth: 4, rpeLayers: 1, generator: &rng)
    let gtu = GatedToeplitzUnit(width: 2, kernel: kernel, generator: &rng)
    #expect(
      gtu.namedParameters().map(\.name) == [
        "uProj.weight", "uProj.bias", "vProj.weight", "vProj.bias", "out.weight", "out.bias",
        "kernel.posProj.weight", "kernel.posProj.bias", "kernel.layers.0.linear.weight",
        "kernel.layers.0.linear.bias", "kernel.out.linear.weight", "kernel.out.linear.bias",
      ])
  }

  static func mixerConfig(_ text: String) throws -> ConfigReader {
    try ConfigReader(
      JSONValue.parse(Data(text.utf8), source: "test.json"), path: "layers.mixer", file: "test.json")
  }

  @Test func buildsFromTheRegistry() throws {
    let config = try Self.mixerConfig(
      #"{"type": "gtu", "expand_ratio": 2, "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}"#)
    var rng = SeededGenerator(seed: 1)
    let mixer = try Registry.makeMixer(
      config, context: MixerContext(width: 4, direction: .causal, maxLength: 32), generator: &rng)
    let gtu = try #require(mixer as? GatedToeplitzUnit<TNNKernel>)
    #expect(gtu.width == 4 && gtu.innerWidth == 8 && gtu.kernel.rpeWidth == 8 && gtu.kernel.layers.count == 1)
    #expect(try gtu(uniformTensor([1, 9, 4], seed: 3)).shape == [1, 9, 4])
    try config.rejectUnknownKeys()
    #expect(Registry.mixerTypes.contains("gtu") && Registry.kernelTypes.contains("tnn"))
  }

  @Test func defaultsFillTheResolvedConfig() throws {
    let config = try Self.mixerConfig(#"{"type": "gtu", "kernel": {"type": "tnn"}}"#)
    var rng = SeededGenerator(seed: 1)
    let mixer = try Registry.makeMixer(
      config, context: MixerContext(width: 2, direction: .bidirectional, maxLength: 32), generator: &rng)
    #expect((mixer as? GatedToeplitzUnit<TNNKernel>)?.innerWidth == 6)
    let expected = try JSONValue.parse(
      Data(
        #"""
        {"type": "gtu", "expand_ratio": 3,
         "kernel": {"type": "tnn", "rpe_width": 64, "rpe_layers": 3, "gamma": 0.99, "decay": "fixed"}}
        """#.utf8), source: "e")
    #expect(config.resolved == expected)
  }

  @Test(arguments: [
    (#"{"type": "gtu", "kernel": {"type": "tnn", "rpe_layers": "three"}}"#, "layers.mixer.kernel.rpe_layers"),
    (#"{"type": "gtu", "kernel": {"type": "nope"}}"#, "layers.mixer.kernel.type"),
    (#"{"type": "gtu"}"#, "layers.mixer.kernel"),
    (#"{"type": "gtu", "expand_ratio": 0, "kernel": {"type": "tnn"}}"#, "layers.mixer.expand_ratio"),
  ])
  func badConfigsNameTheirKey(text: String, path: String) throws {
    let config = try Self.mixerConfig(text)
    var rng = SeededGenerator(seed: 1)
    let error = #expect(throws: ConfigError.self) {
      _ = try Registry.makeMixer(
        config, context: MixerContext(width: 2, direction: .causal, maxLength: 8), generator: &rng)
    }
    #expect(error?.path == path)
    #expect(error?.file == "test.json")
    #expect(error?.path.hasSuffix(path.split(separator: ".").suffix(2).joined(separator: ".")) == true)
  }

  @Test func aWholeModelBuildsAndTrainsAStep() throws {
    let json = try JSONValue.parse(
      Data(
        #"""
        {"vocab_size": 16, "dim": 4, "num_layers": 2, "max_length": 16,
         "layers": {"mixer": {"type": "gtu", "kernel": {"type": "tnn", "rpe_width": 4, "rpe_layers": 1}},
                    "channel_mixer": {"type": "glu"}}}
        """#.utf8), source: "model.json")
    let model = try #require(try ModelBuilder.build(json) as? CausalLanguageModel)
    let tokens = (0..<12).map { $0 % 16 }
    let loss = try model.loss(inputs: tokens, targets: tokens.map { ($0 + 1) % 16 }, batch: 2, length: 6)
    #expect(loss.scalar.isFinite)
    loss.backward()
    let names = model.namedParameters().map(\.name)
    #expect(names.contains("blocks.1.mixer.kernel.layers.0.linear.weight"))
    #expect(model.parameters.allSatisfy { $0.gradient != nil })
  }
}
