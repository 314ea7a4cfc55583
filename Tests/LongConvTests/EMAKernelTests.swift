import Foundation
import LongConv
import LongConvTensors
import LongConvTestSupport
import Testing

/// Float32 against the Double references, relative to each array's largest value: the errors
/// measured over this suite are at most 1.3e-7 (the bidirectional convolution); 2e-6 leaves
/// room for another FFT size or summation order, and catches an error of 0.1% in any one lag.
let emaTolerance = 2e-6

@Suite("EMA kernel")
struct EMAKernelTests {
  func makeKernel(
    channels: Int = 3, ndim: Int = 4, skip: Bool = true, direction: ConvolutionDirection = .causal,
    seed: UInt64 = 1
  ) -> EMAKernel {
    var rng = SeededGenerator(seed: seed)
    return EMAKernel(channels: channels, ndim: ndim, skip: skip, direction: direction, generator: &rng)
  }

  func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

  /// `(q_n, sqrt(1/ndim) gamma_n p_n beta_n)` of parameter row `r`, in Double.
  func modes(_ k: EMAKernel, row r: Int) -> [(q: Double, w: Double)] {
    let n = k.ndim
    let (delta, alpha, beta, gamma) = (k.delta.doubles, k.alpha.doubles, k.beta.doubles, k.gamma.doubles)
    return (0..<n).map { m in
      let i = r * n + m
      let p = sigmoid(delta[i])
      return (1 - p * sigmoid(alpha[i]), (1 / Double(n)).squareRoot() * gamma[i] * p * beta[i])
    }
  }

  /// `K[r][l] = sum_n w_n q_n^l` for every parameter row, directly.
  func directKernel(_ k: EMAKernel, length: Int) -> [[Double]] {
    (0..<k.delta.shape[0]).map { r in
      let m = modes(k, row: r)
      return (0..<length).map { l in m.reduce(0) { $0 + $1.w * pow($1.q, Double(l)) } }
    }
  }

  @Test("coefficients match sum gamma p beta q^l in Double")
  func coefficientsMatchDirectFormula() throws {
    let k = makeKernel()
    let t = try k.coefficients(length: 30)
    #expect(t.shape == [3, 30])
    expectClose(t, directKernel(k, length: 30).flatMap { $0 }, tolerance: emaTolerance, "ema")
    #expect(throws: KernelError.self) { try k.coefficients(length: -1) }
  }

  @Test("Mega's initial values and parameter names")
  func initialization() {
    let k = makeKernel(channels: 32, ndim: 16)
    #expect(k.namedParameters().map(\.name) == ["delta", "alpha", "beta", "gamma", "omega"])
    #expect(k.delta.shape == [32, 16] && k.omega?.shape == [32])
    // beta: alternating signs plus noise of std 0.02.
    for r in 0..<32 {
      for n in 0..<16 {
        #expect(abs(k.beta[r, n] - (n % 2 == 0 ? 1 : -1)) < 0.1)
      }
    }
    let delta = k.delta.doubles
    let std = (delta.map { $0 * $0 }.reduce(0, +) / Double(delta.count)).squareRoot()
    #expect(abs(std - 0.2) < 0.03)
    #expect(makeKernel(skip: false).namedParameters().count == 4)
    #expect(makeKernel(skip: false).skip == nil)
  }

  @Test("gradients of the coefficients and the convolution by finite differences")
  func gradients() {
    let k = makeKernel(channels: 2, ndim: 3, seed: 2)
    checkGradients("ema coefficients", inputs: [k.delta, k.alpha, k.beta, k.gamma]) { p in
      try! EMAKernel(delta: p[0], alpha: p[1], beta: p[2], gamma: p[3], omega: nil).coefficients(length: 7)
    }
    let b = makeKernel(channels: 2, ndim: 2, direction: .bidirectional, seed: 3)
    let x = uniformTensor([1, 5, 2], seed: 4)
    checkGradients("ema bidirectional convolve", inputs: [x, b.delta, b.alpha, b.beta, b.gamma, b.omega!]) {
      p in
      try! EMAKernel(
        delta: p[1], alpha: p[2], beta: p[3], gamma: p[4], omega: p[5], direction: .bidirectional
      ).convolve(p[0])
    }
  }

  @Test("the FFT convolution matches the recurrence s = q s + u, y = sum w s + omega u")
  func convolutionMatchesRecurrence() throws {
    let k = makeKernel(seed: 5)
    let (batch, length, channels) = (2, 16, 3)
    let x = uniformTensor([batch, length, channels], seed: 6)
    let xs = x.doubles
    let omega = k.omega!.doubles
    var expected = [Double](repeating: 0, count: xs.count)
    for b in 0..<batch {
      for c in 0..<channels {
        let m = modes(k, row: c)
        var s = [Double](repeating: 0, count: m.count)
        for i in 0..<length {
          let u = xs[(b * length + i) * channels + c]
          var out = omega[c] * u
          for n in m.indices {
            s[n] = m[n].q * s[n] + u
            out += m[n].w * s[n]
          }
          expected[(b * length + i) * channels + c] = out
        }
      }
    }
    expectClose(try k.convolve(x), expected, tolerance: emaTolerance, "ema convolve vs recurrence")
  }

  @Test("stateSpace() reproduces the kernel and the convolution")
  func stateSpaceReproducesKernel() throws {
    let k = makeKernel(seed: 7)
    let system = try #require(k.stateSpace())
    #expect(system.polesImaginary.allSatisfy { $0.allSatisfy { $0 == 0 } })
    #expect(system.polesReal.allSatisfy { $0.allSatisfy { $0 > 0 && $0 < 1 } })
    #expect(system.skip == k.omega!.doubles)
    let length = 20
    expectClose(
      try k.coefficients(length: length), SSMReference.kernel(of: system, length: length).flatMap { $0 },
      tolerance: emaTolerance, "kernel")
    let x = uniformTensor([1, length, 3], seed: 8)
    expectClose(
      try k.convolve(x), SSMReference.recurrence(system, x.doubles, batch: 1, length: length, channels: 3),
      tolerance: emaTolerance, "recurrence")
    #expect(makeKernel(skip: false).stateSpace()?.skip == nil)
    #expect(makeKernel(direction: .bidirectional).stateSpace() == nil)
  }

  @Test("bidirectional layout: Mega's forward and flipped backward kernels, both at lag 0")
  func bidirectionalLayout() throws {
    let k = makeKernel(direction: .bidirectional, seed: 9)
    #expect(k.delta.shape == [6, 4] && k.channels == 3)
    let length = 9
    let t = try k.coefficients(length: length)
    #expect(t.shape == [3, 2 * length - 1])
    let rows = directKernel(k, length: length)
    var expected: [Double] = []
    for c in 0..<3 {
      let (forward, backward) = (rows[c], rows[3 + c])
      for lag in -(length - 1)..<length {
        expected.append(lag > 0 ? forward[lag] : lag < 0 ? backward[-lag] : forward[0] + backward[0])
      }
    }
    expectClose(t, expected, tolerance: emaTolerance, "bidirectional ema")
    let x = uniformTensor([2, length, 3], seed: 10)
    expectClose(
      try k.convolve(x),
      Dense.longConvolution(
        x.doubles, batch: 2, length: length, channels: 3, kernel: t.doubles, direction: .bidirectional,
        skip: k.omega!.doubles), tolerance: emaTolerance, "bidirectional convolve")
    #expect(try k.coefficients(length: 1).shape == [3, 1])
  }

  @Test("built from JSON through the registry")
  func fromConfig() throws {
    func build(_ json: String, direction: ConvolutionDirection = .causal) throws -> any LongConvKernel {
      var rng = SeededGenerator(seed: 1)
      let config = try ConfigReader(JSONValue.parse(Data(json.utf8), source: "test.json"))
      let kernel = try Registry.makeKernel(
        config, context: KernelContext(channels: 5, direction: direction, maxLength: 32), generator: &rng)
      try config.rejectUnknownKeys()
      return kernel
    }
    let k = try #require(try build(#"{"type": "ema", "ndim": 2, "skip": false}"#) as? EMAKernel)
    #expect(k.channels == 5 && k.ndim == 2 && k.omega == nil && k.direction == .causal)
    let d = try #require(try build(#"{"type": "ema"}"#, direction: .bidirectional) as? EMAKernel)
    #expect(d.ndim == 16 && d.omega != nil && d.delta.shape == [10, 16])
    #expect(throws: ConfigError.self) { try build(#"{"type": "ema", "ndim": 0}"#) }
    #expect(throws: ConfigError.self) { try build(#"{"type": "ema", "n_dim": 4}"#) }
  }
}
