import Foundation
import LongConv
import LongConvTensors
import LongConvTestSupport
import Testing

@Suite("ExplicitKernel")
struct ExplicitKernelTests {
  /// A kernel whose weights sit away from the threshold kink at `|k| = lambda = 0.1`:
  /// magnitudes in `[0.2, 1]`, every third one at `0.03` (below the threshold), random signs.
  static func kernel(
    channels: Int = 2, direction: ConvolutionDirection, maxLength: Int = 5, lambda: Float = 0.1,
    skip: Bool = true
  ) -> ExplicitKernel {
    var generator = SeededGenerator(seed: 5)
    let k = ExplicitKernel(
      channels: channels, direction: direction, maxLength: maxLength, lambda: lambda, skip: skip,
      generator: &generator)
    let values = signedTensor(k.weight.shape, seed: 9, magnitudes: 0.2...1).scalars
    k.weight.withUnsafeMutableBufferPointer { p in
      for i in p.indices { p[i] = i % 3 == 2 ? (values[i] > 0 ? 0.03 : -0.03) : values[i] }
    }
    return k
  }

  /// `relu(|k| - lambda) sign(k)` of the columns `columns` of each row, in Double.
  static func reference(_ k: ExplicitKernel, columns: Range<Int>) -> [Double] {
    let (w, total, lambda) = (k.weight.doubles, k.weight.shape[1], Double(k.lambda))
    var out: [Double] = []
    for c in 0..<k.channels {
      for j in columns {
        let v = w[c * total + j]
        out.append(max(abs(v) - lambda, 0) * (v > 0 ? 1 : (v < 0 ? -1 : 0)))
      }
    }
    return out
  }

  @Test("causal coefficients: squashed leading lags")
  func causalCoefficients() throws {
    let k = Self.kernel(direction: .causal)
    #expect(k.weight.shape == [2, 5])
    for length in [5, 3, 1] {
      let c = try k.coefficients(length: length)
      #expect(c.shape == [2, length])
      expectClose(c, Self.reference(k, columns: 0..<length), "explicit causal L=\(length)")
    }
    // Entries below the threshold are exactly zero.
    #expect(try k.coefficients(length: 5)[0, 2] == 0)
  }

  @Test("bidirectional coefficients: lags -(L-1) ... L-1 around the centre of the parameter")
  func bidirectionalCoefficients() throws {
    let k = Self.kernel(direction: .bidirectional, maxLength: 4)
    #expect(k.weight.shape == [2, 7])
    for length in [4, 2, 1] {
      let c = try k.coefficients(length: length)
      #expect(c.shape == [2, 2 * length - 1])
      expectClose(
        c, Self.reference(k, columns: (4 - length)..<(4 + length - 1)), "explicit bidirectional L=\(length)")
    }
  }

  @Test("lambda 0 is the identity; default initialisation and parameters")
  func identityAndInitialisation() throws {
    var generator = SeededGenerator(seed: 2)
    let k = ExplicitKernel(
      channels: 3, direction: .causal, maxLength: 400, lambda: 0, initStd: 0.5, generator: &generator)
    expectClose(try k.coefficients(length: 400), k.weight.doubles, "lambda 0")
    let std = (k.weight.doubles.map { $0 * $0 }.reduce(0, +) / Double(k.weight.count)).squareRoot()
    #expect(abs(std - 0.5) < 0.05)
    #expect(k.namedParameters().map(\.name) == ["weight", "skip"])
    let plain = ExplicitKernel(
      channels: 3, direction: .causal, maxLength: 4, skip: false, generator: &generator)
    #expect(plain.skip == nil && plain.namedParameters().map(\.name) == ["weight"])
    #expect(plain.lambda == 0.003)
    #expect(plain.weight.scalars.allSatisfy { abs($0) < 0.02 })
  }

  @Test("gradients through the convolution by finite differences, both directions")
  func gradients() throws {
    for direction in ConvolutionDirection.allCases {
      let k = Self.kernel(direction: direction, maxLength: 5)
      let x = uniformTensor([2, 5, 2], seed: 13)
      let names = try checkGradients("explicit \(direction)", parameters: k.namedParameters()) {
        try k.convolve(x)
      }.names
      #expect(names == ["weight", "skip"])
      // A shorter length: the unused lags get no gradient.
      try checkGradients("explicit \(direction) L=3", parameters: k.namedParameters()) {
        try k.convolve(x.slice(axis: 1, 0..<3))
      }
    }
  }

  @Test("a length beyond max_length is refused, both directions")
  func lengthRefusal() {
    for direction in ConvolutionDirection.allCases {
      let k = Self.kernel(direction: direction, maxLength: 5)
      let error = KernelError.lengthBeyondMaximum(kernel: "explicit", requested: 6, maximum: 5)
      #expect(throws: error) { try k.coefficients(length: 6) }
      #expect(throws: error) { try k.convolve(Tensor.zeros([1, 6, 2])) }
      #expect(throws: KernelError.invalidLength(kernel: "explicit", requested: 0)) {
        try k.coefficients(length: 0)
      }
    }
    #expect(
      KernelError.lengthBeyondMaximum(kernel: "explicit", requested: 6, maximum: 5).description
        == "explicit kernel: cannot produce length 6; it is defined up to max_length 5 (raise max_length in its config)"
    )
  }

  @Test("built from a JSON config through the registry")
  func registry() throws {
    #expect(Registry.kernelTypes.contains("explicit"))
    let config = try configReader(#"{"type": "explicit", "lambda": 0.01, "skip": false}"#)
    var generator = SeededGenerator(seed: 0)
    let built = try Registry.makeKernel(
      config, context: KernelContext(channels: 3, direction: .bidirectional, maxLength: 6),
      generator: &generator)
    let k = try #require(built as? ExplicitKernel)
    #expect(k.direction == .bidirectional && k.weight.shape == [3, 11] && k.lambda == 0.01 && k.skip == nil)
    try config.rejectUnknownKeys()
    guard case .object(let resolved) = config.resolved else {
      Issue.record("resolved config is not an object")
      return
    }
    #expect(Set(resolved.keys) == ["type", "lambda", "init_std", "skip", "max_length"])
    #expect(
      throws: ConfigError(file: "test.json", path: "lambda", problem: "must be at least 0, got -1.0")
    ) {
      try Registry.makeKernel(
        try configReader(#"{"type": "explicit", "lambda": -1}"#),
        context: KernelContext(channels: 3, direction: .causal, maxLength: 6), generator: &generator)
    }
  }
}
