import Foundation
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConv

/// The TNN kernel against its formula (MODELS.md section 2) evaluated in Double from the
/// kernel's own parameter values, its gradients against finite differences, and its config.
@Suite struct TNNKernelTests {
  /// `RPE(k)` for every lag of `length` and the decayed coefficients, `[D, n]` row-major.
  static func reference(_ kernel: TNNKernel, length: Int) -> (undecayed: [Double], coefficients: [Double]) {
    let lags = kernel.direction == .causal ? Array(0..<length) : Array(1 - length..<length)
    let (d, r) = (kernel.channels, kernel.rpeWidth)
    func linear(_ layer: Linear, _ x: [Double]) -> [Double] {
      let (w, b) = (layer.weight.doubles, layer.bias!.doubles)
      return (0..<layer.outputCount).map { o in
        b[o] + (0..<layer.inputCount).reduce(0.0) { $0 + w[o * layer.inputCount + $1] * x[$1] }
      }
    }
    func normRelu(_ x: [Double]) -> [Double] {
      let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
      return x.map { Swift.max(0, $0 / (norm / Double(x.count).squareRoot() + 1e-8)) }
    }
    let lambda: [Double] = {
      let g = Double(kernel.decayLowerBound)
      switch kernel.decay {
      case .fixed: return kernel.fixedDecay!.doubles
      case .learned: return kernel.decayLogit!.doubles.map { g + (1 - g) / (1 + Foundation.exp(-$0)) }
      }
    }()
    var undecayed = [Double](repeating: 0, count: d * lags.count)
    var coefficients = undecayed
    for (column, k) in lags.enumerated() {
      var h = linear(kernel.posProj, [Double(k)])
      #expect(h.count == r)
      for layer in kernel.layers { h = linear(layer.linear, normRelu(h)) }
      let t = linear(kernel.out.linear, normRelu(h))
      for c in 0..<d {
        undecayed[c * lags.count + column] = t[c]
        coefficients[c * lags.count + column] = Foundation.pow(lambda[c], Double(Swift.abs(k))) * t[c]
      }
    }
    return (undecayed, coefficients)
  }

  @Test(arguments: [ConvolutionDirection.causal, .bidirectional], [TNNKernel.Decay.fixed, .learned])
  func coefficientsMatchTheFormula(direction: ConvolutionDirection, decay: TNNKernel.Decay) throws {
    var rng = SeededGenerator(seed: 11)
    let kernel = TNNKernel(
      channels: 5, direction: direction, rpeWidth: 7, rpeLayers: 2, gamma: 0.9, decay: decay, generator: &rng)
    for length in [1, 6, 40] {
      let t = try kernel.coefficients(length: length)
      let n = direction == .causal ? length : 2 * length - 1
      #expect(t.shape == [5, n])
      let expected = Self.reference(kernel, length: length)
      expectClose(
        try kernel.undecayed(length: length), expected.undecayed, tolerance: 2e-5, "RPE L=\(length)")
      expectClose(t, expected.coefficients, tolerance: 2e-5, "coefficients L=\(length)")
    }
  }

  @Test func lagZeroIsTheRPEAndDecayIsSymmetric() throws {
    var rng = SeededGenerator(seed: 3)
    let kernel = TNNKernel(channels: 2, direction: .bidirectional, rpeWidth: 4, rpeLayers: 1, generator: &rng)
    let t = try kernel.coefficients(length: 5)  // lags -4 ... 4, lag 0 at column 4
    let r = try kernel.undecayed(length: 5)
    let powers = kernel.decayPowers(length: 5)
    for c in 0..<2 {
      #expect(t[c, 4] == r[c, 4])
      for k in 1...4 {
        #expect(powers[c, 4 + k] == powers[c, 4 - k])
        #expect(Swift.abs(Double(powers[c, 4 + k]) - Foundation.pow(0.99, Double(k))) < 1e-6)
      }
    }
  }

  @Test func decayIsAConstantWhenFixedAndAParameterWhenLearned() {
    var rng = SeededGenerator(seed: 5)
    let fixed = TNNKernel(channels: 3, direction: .causal, rpeWidth: 4, rpeLayers: 2, generator: &rng)
    let learned = TNNKernel(
      channels: 3, direction: .causal, rpeWidth: 4, rpeLayers: 2, gamma: 0.95, decay: .learned,
      generator: &rng)
    let names = [
      "posProj.weight", "posProj.bias", "layers.0.linear.weight", "layers.0.linear.bias",
      "layers.1.linear.weight", "layers.1.linear.bias", "out.linear.weight", "out.linear.bias",
    ]
    #expect(fixed.namedParameters().map(\.name) == names)
    #expect(learned.namedParameters().map(\.name) == names + ["gamma"])
    // The fixed decay is a buffer under the reference's name; the learned one has none.
    #expect(fixed.namedBuffers().map(\.name) == ["gamma"] && learned.namedBuffers().isEmpty)
    #expect(fixed.separableDecay?.scalars == [0.99, 0.99, 0.99])
    let lambda = learned.separableDecay!.doubles
    #expect(lambda.allSatisfy { $0 > 0.95 && $0 < 1 })
    #expect(learned.separableDecay?.requiresGradient == false)
  }

  @Test(arguments: [ConvolutionDirection.causal, .bidirectional], [TNNKernel.Decay.fixed, .learned])
  func gradientsMatchFiniteDifferences(direction: ConvolutionDirection, decay: TNNKernel.Decay) throws {
    var rng = SeededGenerator(seed: 21)
    let kernel = TNNKernel(
      channels: 3, direction: direction, rpeWidth: 4, rpeLayers: 1, gamma: 0.8, decay: decay, generator: &rng)
    try checkGradients(
      "TNN coefficients \(direction) \(decay)", parameters: kernel.namedParameters(), seed: 99
    ) {
      try kernel.coefficients(length: 4)
    }
  }

  @Test func gradientsFlowThroughTheConvolution() {
    var rng = SeededGenerator(seed: 8)
    let kernel = TNNKernel(
      channels: 2, direction: .causal, rpeWidth: 3, rpeLayers: 1, gamma: 0.9, generator: &rng)
    let x = signedTensor([1, 5, 2], seed: 4)
    checkGradients("TNN convolve", inputs: [x]) { try! kernel.convolve($0[0]) }
  }

  @Test func buildsFromConfigAndRecordsDefaults() throws {
    let json = try JSONValue.parse(
      Data(#"{"type": "tnn", "rpe_width": 8, "decay": "learned"}"#.utf8), source: "t")
    let config = try ConfigReader(json, path: "kernel")
    var rng = SeededGenerator(seed: 1)
    let kernel = try Registry.makeKernel(
      config, context: KernelContext(channels: 6, direction: .bidirectional, maxLength: 64), generator: &rng)
    let tnn = try #require(kernel as? TNNKernel)
    #expect(tnn.rpeWidth == 8 && tnn.layers.count == 3 && tnn.decay == .learned && tnn.channels == 6)
    #expect(try kernel.coefficients(length: 10).shape == [6, 19])
    try config.rejectUnknownKeys()
    let expected = try JSONValue.parse(
      Data(#"{"type": "tnn", "rpe_width": 8, "rpe_layers": 3, "gamma": 0.99, "decay": "learned"}"#.utf8),
      source: "e")
    #expect(config.resolved == expected)
  }

  @Test func invalidLengthThrows() throws {
    var rng = SeededGenerator(seed: 1)
    let kernel = TNNKernel(channels: 2, direction: .causal, rpeWidth: 3, rpeLayers: 0, generator: &rng)
    #expect(throws: KernelError.invalidLength(kernel: "tnn", requested: 0)) {
      try kernel.coefficients(length: 0)
    }
  }

  @Test(arguments: [
    (#"{"type": "tnn", "rpe_layers": "three"}"#, "kernel.rpe_layers"),
    (#"{"type": "tnn", "gamma": 1.5}"#, "kernel.gamma"),
    (#"{"type": "tnn", "gamma": 0}"#, "kernel.gamma"),
    (#"{"type": "tnn", "decay": "multi"}"#, "kernel.decay"),
    (#"{"type": "tnn", "rpe_width": 0}"#, "kernel.rpe_width"),
  ])
  func badConfigsNameTheirKey(text: String, path: String) throws {
    let config = try ConfigReader(JSONValue.parse(Data(text.utf8), source: "t"), path: "kernel")
    var rng = SeededGenerator(seed: 1)
    let error = #expect(throws: ConfigError.self) {
      _ = try Registry.makeKernel(
        config, context: KernelContext(channels: 2, direction: .causal, maxLength: 8), generator: &rng)
    }
    #expect(error?.path == path)
  }
}
