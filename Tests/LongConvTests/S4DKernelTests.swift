import Foundation
import LongConv
import LongConvTensors
import LongConvTestSupport
import Testing

/// Float32 against the Double references, relative to each array's largest value: the errors
/// measured over this suite are at most 4.3e-7 (S4D-Inv coefficients at 24 lags, whose modes
/// run through complex powers); 5e-6 leaves ten times that.
let s4dTolerance = 5e-6

@Suite("S4D kernel")
struct S4DKernelTests {
  /// A causal kernel with a wider step range than the default, so the modes visibly oscillate
  /// and decay within a short length.
  func makeKernel(
    channels: Int = 3, stateSize: Int = 8, direction: ConvolutionDirection = .causal,
    initialization: S4DKernel.Initialization = .lin, poleGroups: Int? = nil, seed: UInt64 = 1
  ) -> S4DKernel {
    var rng = SeededGenerator(seed: seed)
    let k = S4DKernel(
      channels: channels, stateSize: stateSize, direction: direction, initialization: initialization,
      dtMin: 0.01, dtMax: 0.3, poleGroups: poleGroups, generator: &rng)
    if poleGroups != nil {
      // Distinct poles per group, so that a wrong group assignment shows.
      k.logAReal.withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] += 0.15 * Float(i % 5) - 0.3 }
      }
      k.aImag.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] += 0.7 * Float(i) } }
    }
    return k
  }

  /// `dA_n = exp(dt A_n)` and `C'_n = C_n (exp(dt A_n) - 1) / A_n` of channel `c`, in Double
  /// from the parameter values; `backward` picks the backward `C`.
  func discretized(_ k: S4DKernel, channel c: Int, backward: Bool = false) -> [(
    dA: ComplexDouble, c: ComplexDouble
  )] {
    let h = k.modes
    let dt = exp(k.logDt.doubles[c])
    let (cr, ci) =
      backward ? (k.cRealBackward!.doubles, k.cImagBackward!.doubles) : (k.cReal.doubles, k.cImag.doubles)
    return (0..<h).map { n in
      let i = c * h + n
      let pole = c % k.poleGroups * h + n  // channel c uses group c mod G
      let a = ComplexDouble(-exp(k.logAReal.doubles[pole]), k.aImag.doubles[pole])
      let dA = ComplexDouble.exp(ComplexDouble(dt) * a)
      return (dA, ComplexDouble(cr[i], ci[i]) * (dA - ComplexDouble(1)) / a)
    }
  }

  /// `K[c][l] = 2 Re sum_n C'_n dA_n^l`, directly.
  func directKernel(_ k: S4DKernel, length: Int, backward: Bool = false) -> [[Double]] {
    (0..<k.channels).map { c in
      let modes = discretized(k, channel: c, backward: backward)
      return (0..<length).map { l in
        var acc = 0.0
        for m in modes {
          var power = ComplexDouble(1)
          for _ in 0..<l { power = power * m.dA }
          acc += 2 * (m.c * power).re
        }
        return acc
      }
    }
  }

  @Test(
    "coefficients match 2 Re sum C' dA^l in Double, for both inits",
    arguments: S4DKernel.Initialization.allCases)
  func coefficientsMatchDirectFormula(initialization: S4DKernel.Initialization) throws {
    let k = makeKernel(initialization: initialization)
    let length = 24
    let t = try k.coefficients(length: length)
    #expect(t.shape == [3, length])
    expectClose(
      t, directKernel(k, length: length).flatMap { $0 }, tolerance: s4dTolerance, "s4d \(initialization)")
    #expect(throws: KernelError.self) { try k.coefficients(length: 0) }
  }

  @Test("poles shared in groups (safari's n_ssm): kernel, state space and gradients", arguments: [1, 2, 3])
  func sharedPoles(groups: Int) throws {
    let k = makeKernel(channels: 6, stateSize: 6, poleGroups: groups, seed: 9)
    #expect(k.logAReal.shape == [groups, 3] && k.aImag.shape == [groups, 3] && k.cReal.shape == [6, 3])
    let length = 16
    expectClose(
      try k.coefficients(length: length), directKernel(k, length: length).flatMap { $0 },
      tolerance: s4dTolerance,
      "s4d with \(groups) pole groups")
    let system = try #require(k.stateSpace())
    expectClose(
      try k.coefficients(length: length), SSMReference.kernel(of: system, length: length).flatMap { $0 },
      tolerance: s4dTolerance, "state space with \(groups) pole groups")
    // h = 3e-2: the outputs' Float32 rounding put logAReal's numeric gradient 8.4e-4 off with
    // h = 1e-2; 1.1e-4 with this step.
    checkGradients("s4d shared poles", inputs: [k.logDt, k.logAReal, k.aImag, k.cReal, k.cImag], step: 3e-2) {
      p in
      try! S4DKernel(
        logDt: p[0], logAReal: p[1], aImag: p[2], cReal: p[3], cImag: p[4], skipWeight: k.skipWeight
      )
      .coefficients(length: 5)
    }
  }

  @Test("S4D-Lin and S4D-Inv initial values")
  func initializations() {
    let (n, channels) = (8, 2)
    let lin = makeKernel(channels: channels, stateSize: n, initialization: .lin)
    let inv = makeKernel(channels: channels, stateSize: n, initialization: .inv)
    for c in 0..<channels {
      for m in 0..<n / 2 {
        #expect(abs(lin.aImag[c, m] - Float(Double.pi * Double(m))) < 1e-5)
        let expected = Double(n) / Double.pi * (Double(n) / Double(2 * m + 1) - 1)
        #expect(abs(Double(inv.aImag[c, m]) - expected) <= 1e-6 * abs(expected))
        #expect(abs(lin.logAReal[c, m] - Float(log(0.5))) < 1e-6)
        #expect(abs(inv.logAReal[c, m] - Float(log(0.5))) < 1e-6)
      }
    }
    var rng = SeededGenerator(seed: 9)
    let k = S4DKernel(channels: 64, generator: &rng)
    #expect(k.modes == 32)
    #expect(k.logDt.scalars.allSatisfy { $0 >= Float(log(1e-3)) - 1e-5 && $0 <= Float(log(1e-1)) + 1e-5 })
    #expect(
      k.namedParameters().map(\.name) == ["logDt", "logAReal", "aImag", "cReal", "cImag", "D"])
    // C has variance 1/2 per part: the sample variance of 64 x 32 values is close to it.
    let c = k.cReal.doubles
    let variance = c.map { $0 * $0 }.reduce(0, +) / Double(c.count)
    #expect(abs(variance - 0.5) < 0.05)
  }

  @Test("gradients of the coefficients by finite differences")
  func coefficientGradients() {
    let k = makeKernel(channels: 2, stateSize: 4, seed: 3)
    checkGradients(
      "s4d coefficients", inputs: [k.logDt, k.logAReal, k.aImag, k.cReal, k.cImag]
    ) { p in
      try! S4DKernel(
        logDt: p[0], logAReal: p[1], aImag: p[2], cReal: p[3], cImag: p[4], skipWeight: k.skipWeight
      )
      .coefficients(length: 6)
    }
  }

  @Test("gradients through the convolution, skip and bidirectional kernel included")
  func convolutionGradients() {
    let k = makeKernel(channels: 2, stateSize: 4, direction: .bidirectional, seed: 4)
    let x = uniformTensor([1, 5, 2], seed: 5)
    // logDt's gradient is 2e-3 of the loss terms' size: with h = 1e-2 the Float32 rounding of
    // the outputs puts its numeric gradient 9.4e-4 off; h = 3e-2 gives 6.2e-4 (every other input
    // below 1.5e-4) at a truncation error still far below.
    checkGradients(
      "s4d bidirectional convolve",
      inputs: [
        x, k.logDt, k.logAReal, k.aImag, k.cReal, k.cImag, k.skipWeight, k.cRealBackward!, k.cImagBackward!,
      ], step: 3e-2
    ) { p in
      try! S4DKernel(
        logDt: p[1], logAReal: p[2], aImag: p[3], cReal: p[4], cImag: p[5], skipWeight: p[6],
        cRealBackward: p[7],
        cImagBackward: p[8]
      ).convolve(p[0])
    }
  }

  @Test("the FFT convolution matches the step-by-step recurrence s = dA s + u, y = 2 Re(C' s) + D u")
  func convolutionMatchesRecurrence() throws {
    let k = makeKernel()
    let (batch, length, channels) = (2, 16, 3)
    let x = uniformTensor([batch, length, channels], seed: 11)
    let y = try k.convolve(x)
    let xs = x.doubles
    let skip = k.skipWeight.doubles
    var expected = [Double](repeating: 0, count: xs.count)
    for b in 0..<batch {
      for c in 0..<channels {
        let modes = discretized(k, channel: c)
        var s = modes.map { _ in ComplexDouble(0) }
        for i in 0..<length {
          let u = xs[(b * length + i) * channels + c]
          var out = skip[c] * u
          for n in modes.indices {
            s[n] = modes[n].dA * s[n] + ComplexDouble(u)
            out += 2 * (modes[n].c * s[n]).re
          }
          expected[(b * length + i) * channels + c] = out
        }
      }
    }
    expectClose(y, expected, tolerance: s4dTolerance, "s4d convolve vs recurrence")
  }

  @Test("stateSpace() reproduces the kernel and the convolution")
  func stateSpaceReproducesKernel() throws {
    let k = makeKernel(initialization: .inv, seed: 7)
    let system = try #require(k.stateSpace())
    #expect(system.skip == k.skipWeight.doubles)
    for c in 0..<k.channels {
      for n in 0..<k.modes {
        #expect(hypot(system.polesReal[c][n], system.polesImaginary[c][n]) < 1)
      }
    }
    let length = 20
    let t = try k.coefficients(length: length)
    expectClose(
      t, SSMReference.kernel(of: system, length: length).flatMap { $0 }, tolerance: s4dTolerance, "kernel")
    let x = uniformTensor([1, length, 3], seed: 8)
    expectClose(
      try k.convolve(x), SSMReference.recurrence(system, x.doubles, batch: 1, length: length, channels: 3),
      tolerance: s4dTolerance, "recurrence")
    #expect(makeKernel(direction: .bidirectional).stateSpace() == nil)
  }

  @Test("bidirectional layout: negative lags hold the backward kernel shifted by one")
  func bidirectionalLayout() throws {
    let k = makeKernel(direction: .bidirectional, seed: 12)
    let length = 10
    let t = try k.coefficients(length: length)
    #expect(t.shape == [3, 2 * length - 1])
    let forward = directKernel(k, length: length)
    let backward = directKernel(k, length: length, backward: true)
    var expected: [Double] = []
    for c in 0..<3 {
      for j in 0..<length - 1 { expected.append(backward[c][length - 2 - j]) }
      expected += forward[c]
    }
    expectClose(t, expected, tolerance: s4dTolerance, "bidirectional s4d")
    let x = uniformTensor([2, length, 3], seed: 13)
    expectClose(
      try k.convolve(x),
      Dense.longConvolution(
        x.doubles, batch: 2, length: length, channels: 3, kernel: t.doubles, direction: .bidirectional,
        skip: k.skipWeight.doubles), tolerance: s4dTolerance, "bidirectional convolve")
    #expect(try k.coefficients(length: 1).shape == [3, 1])
  }

  @Test("built from JSON through the registry, with errors for bad keys")
  func fromConfig() throws {
    func build(_ json: String, direction: ConvolutionDirection = .causal) throws -> any LongConvKernel {
      var rng = SeededGenerator(seed: 1)
      let config = try ConfigReader(JSONValue.parse(Data(json.utf8), source: "test.json"))
      let kernel = try Registry.makeKernel(
        config, context: KernelContext(channels: 4, direction: direction, maxLength: 32), generator: &rng)
      try config.rejectUnknownKeys()
      return kernel
    }
    let k = try #require(
      try build(#"{"type": "s4d", "state_size": 6, "init": "inv", "dt_min": 0.01, "dt_max": 0.02}"#)
        as? S4DKernel)
    #expect(k.channels == 4 && k.modes == 3 && k.direction == .causal)
    #expect(k.logDt.scalars.allSatisfy { $0 >= Float(log(0.01)) - 1e-5 && $0 <= Float(log(0.02)) + 1e-5 })
    #expect(abs(Double(k.aImag[0, 1]) - 6 / Double.pi * (6.0 / 3 - 1)) <= 1e-6 * 6 / Double.pi)
    let d = try #require(try build(#"{"type": "s4d"}"#) as? S4DKernel)
    #expect(d.modes == 32)
    let b = try #require(
      try build(#"{"type": "s4d", "state_size": 4}"#, direction: .bidirectional) as? S4DKernel)
    #expect(b.direction == .bidirectional && b.namedParameters().count == 8)
    #expect(throws: ConfigError.self) { try build(#"{"type": "s4d", "state_size": 5}"#) }
    #expect(throws: ConfigError.self) { try build(#"{"type": "s4d", "init": "legs"}"#) }
    #expect(throws: ConfigError.self) { try build(#"{"type": "s4d", "dt_min": 0.5, "dt_max": 0.1}"#) }
    #expect(throws: ConfigError.self) { try build(#"{"type": "s4d", "stat_size": 8}"#) }
  }
}
