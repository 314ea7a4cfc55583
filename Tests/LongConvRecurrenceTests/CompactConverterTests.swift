import Foundation
import LongConv
import LongConvRecurrence
import LongConvTensors
import LongConvTestSupport
import Testing

/// The compact converter: smaller states, its tolerance met (measured here independently),
/// its certified bound holding on real outputs, and the fallback to exact.
@Suite struct CompactConverterTests {
  /// `||t - t'||_1 / ||t||_1` per channel, the impulse response computed here by stepping
  /// the recurrence on a unit impulse (independent of the converter's own measurement).
  func measuredErrors(_ samples: CausalKernelSamples, _ system: DiagonalStateSpace) -> [Double] {
    let (d, n) = (samples.channels, samples.length)
    var impulse = [Float](repeating: 0, count: n * d)
    for c in 0..<d { impulse[c] = 1 }
    let response = runRecurrence(RecurrentConvolution(system), impulse, length: n)
    return (0..<d).map { c in
      var (error, norm) = (0.0, 0.0)
      for k in 0..<n {
        let truth = samples.values[c * n + k] + (k == 0 ? samples.skip?[c] ?? 0 : 0)
        error += Swift.abs(Double(response[k * d + c]) - truth)
        norm += Swift.abs(truth)
      }
      return error / norm
    }
  }

  @Test(arguments: [1e-2, 1e-3, 1e-4])
  func tnnKernelMeetsTolerance(_ tolerance: Double) throws {
    let kernel = try makeKernel(
      #"{"type": "tnn", "rpe_width": 16, "rpe_layers": 2, "gamma": 0.95}"#, channels: 4)
    let samples = try CausalKernelSamples(kernel: kernel, length: 256, name: "tnn")
    let conversion = try CompactConverter(tolerance: tolerance, maxStates: 64).convert(samples)
    let report = conversion.report
    #expect(report.mode == .compact && report.exactChannels == 0, "\(report)")
    #expect(report.maxStates < 128, "compact should beat exact's 128 states: \(report.maxStates)")
    #expect(report.relativeError <= tolerance)
    // Float32 outputs add their own rounding (1e-6 of the kernel's scale) to the measurement.
    for (c, error) in measuredErrors(samples, conversion.stateSpace).enumerated() {
      #expect(error <= tolerance + 1e-6, "channel \(c): relative error \(error) > \(tolerance)")
    }

    // The certified bound holds on an arbitrary input: |y - y'| <= bound * max|x|.
    let x = randomInputs(length: 256, channels: 4, seed: 3)
    let y = runRecurrence(RecurrentConvolution(conversion.stateSpace), x, length: 256)
    let exact = Dense.longConvolution(
      x.map(Double.init), batch: 1, length: 256, channels: 4, kernel: samples.values, direction: .causal,
      skip: samples.skip)
    let worst = zip(y, exact).map { Swift.abs(Double($0) - $1) }.max()!
    #expect(
      worst <= report.errorBound * 1 + 1e-5, "output error \(worst) above the bound \(report.errorBound)")
  }

  @Test func statesGrowAsToleranceTightens() throws {
    let kernel = try makeKernel(
      #"{"type": "tnn", "rpe_width": 16, "rpe_layers": 2, "gamma": 0.95}"#, channels: 3)
    let samples = try CausalKernelSamples(kernel: kernel, length: 200, name: "tnn")
    let sizes = try [1e-2, 1e-4].map {
      try CompactConverter(tolerance: $0).convert(samples).report.totalStates
    }
    #expect(sizes[0] <= sizes[1])
  }

  /// A kernel that is exactly a sum of three damped modes is found with three states.
  @Test func recoversAKnownSystem() throws {
    let n = 128
    let t = (0..<n).map { k -> Double in
      let k = Double(k)
      return 0.8 * Foundation.pow(0.9, k) + Foundation.pow(0.97, k) * Foundation.cos(0.3 * k)
    }
    let samples = try CausalKernelSamples(name: "modes", channels: 1, length: n, values: t)
    let conversion = try CompactConverter(tolerance: 1e-8).convert(samples)
    #expect(conversion.report.maxStates == 2, "one real pole and one conjugate pair: \(conversion.report)")
    #expect(conversion.report.relativeError < 1e-8)
    let poles = zip(conversion.stateSpace.polesReal[0], conversion.stateSpace.polesImaginary[0])
      .map { ($0 * $0 + $1 * $1).squareRoot() }.sorted()
    #expect(Swift.abs(poles[0] - 0.9) < 1e-6 && Swift.abs(poles[1] - 0.97) < 1e-6, "\(poles)")
  }

  /// White noise has a flat Hankel spectrum: no small state fits, the channel goes exact.
  @Test func fallsBackToExactUnderTheCap() throws {
    var generator = SeededGenerator(seed: 5)
    let n = 64
    let values = Tensor.normal([2 * n], generator: &generator).scalars.map { Double($0) }
    let samples = try CausalKernelSamples(name: "noise", channels: 2, length: n, values: values)
    let conversion = try CompactConverter(tolerance: 1e-6, maxStates: 8).convert(samples)
    #expect(conversion.report.mode == .exact)
    #expect(conversion.report.exactChannels == 2)
    #expect(conversion.report.note?.contains("converted exactly") == true)
    #expect(conversion.report.relativeError < 1e-10)
  }

  /// An S4D-like kernel computed here from its definition, in Double: per channel 8 modes
  /// `A_n = -0.5 + i pi n` (`n = 0 ... 7`), a step `dt` log-uniform in `[dtMin, 0.1]`, `C` complex
  /// Gaussian, `K[l] = 2 Re sum_n C'_n exp(dt A_n l)` with `C' = C (exp(dt A) - 1) / A`. As a
  /// recurrence it needs 8 states (the real mode `n = 0` and 7 folded conjugate pairs).
  static func s4dLikeKernel(channels: Int, length: Int, dtMin: Double, seed: UInt64) -> (
    values: [Double], dt: [Double]
  ) {
    var generator = SeededGenerator(seed: seed)
    func gaussian() -> Double {
      let u = Double.random(in: Double.ulpOfOne..<1, using: &generator)
      let v = Double.random(in: 0..<1, using: &generator)
      return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
    }
    var values = [Double](repeating: 0, count: channels * length)
    var steps: [Double] = []
    for c in 0..<channels {
      let dt = Foundation.exp(
        Double.random(in: Foundation.log(dtMin)...Foundation.log(0.1), using: &generator))
      steps.append(dt)
      for n in 0..<8 {
        let (ar, ai) = (-0.5, Double.pi * Double(n))
        let (cr, ci) = (gaussian() / 2.squareRoot(), gaussian() / 2.squareRoot())
        // exp(dt A) and C' = C (exp(dt A) - 1) / A.
        let (er, ei) = (
          Foundation.exp(dt * ar) * Foundation.cos(dt * ai), Foundation.exp(dt * ar) * Foundation.sin(dt * ai)
        )
        let (nr, ni) = (cr * (er - 1) - ci * ei, cr * ei + ci * (er - 1))
        let denominator = ar * ar + ai * ai
        let (pr, pi) = ((nr * ar + ni * ai) / denominator, (ni * ar - nr * ai) / denominator)
        for l in 0..<length {
          // exp(dt A l) directly (not by repeated products), as the kernel's definition.
          let magnitude = Foundation.exp(dt * ar * Double(l))
          let (zr, zi) = (
            magnitude * Foundation.cos(dt * ai * Double(l)), magnitude * Foundation.sin(dt * ai * Double(l))
          )
          values[c * length + l] += 2 * (pr * zr - pi * zi)
        }
      }
    }
    return (values, steps)
  }

  /// Checks a compact conversion against references computed here: every channel's relative
  /// error by stepping the recurrence on an impulse, the certified bound on a random input
  /// against the dense convolution in Double, and every compact channel's poles strictly inside
  /// the unit circle.
  func expectCertified(
    _ samples: CausalKernelSamples, _ conversion: KernelConversion, tolerance: Double, seed: UInt64,
    _ label: String
  ) {
    let (d, n) = (samples.channels, samples.length)
    for (c, error) in measuredErrors(samples, conversion.stateSpace).enumerated() {
      #expect(error <= tolerance + 1e-6, "\(label) channel \(c): relative error \(error) > \(tolerance)")
    }
    let x = randomInputs(length: n, channels: d, seed: seed)
    let y = runRecurrence(RecurrentConvolution(conversion.stateSpace), x, length: n)
    let exact = Dense.longConvolution(
      x.map(Double.init), batch: 1, length: n, channels: d, kernel: samples.values, direction: .causal,
      skip: samples.skip)
    let bound = conversion.report.errorBound
    for c in 0..<d {
      let worst = (0..<n).map { Swift.abs(Double(y[$0 * d + c]) - exact[$0 * d + c]) }.max()!
      // Float32 residues and outputs add rounding of about 1e-7 of ||t_c||_1 max|x| on top.
      let slack = 1e-6 * samples.channel(c).reduce(0) { $0 + Swift.abs($1) }
      #expect(worst <= bound + slack, "\(label) channel \(c): output error \(worst) above the bound \(bound)")
    }
    let system = conversion.stateSpace
    for c in 0..<d where system.states(c) < (n + 1) / 2 {
      for (re, im) in zip(system.polesReal[c], system.polesImaginary[c]) {
        let modulus = (re * re + im * im).squareRoot()
        #expect(modulus < 1, "\(label) channel \(c): pole of modulus \(modulus)")
      }
    }
  }

  /// S4D-like kernels with steps down to 1e-3 (poles clustered near 1 over 257 lags) need at
  /// most their 8 states at tolerance 1e-4, on every channel: no fallback to exact.
  @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
  func s4dLikeKernelsNeedAtMostTheirEightStates(_ seed: UInt64) throws {
    let (d, n) = (6, 257)
    let (values, dt) = Self.s4dLikeKernel(channels: d, length: n, dtMin: 1e-3, seed: seed)
    let samples = try CausalKernelSamples(name: "s4d", channels: d, length: n, values: values)
    let conversion = try CompactConverter(tolerance: 1e-4).convert(samples)
    let report = conversion.report
    #expect(report.mode == .compact && report.exactChannels == 0, "seed \(seed), dt \(dt): \(report)")
    for c in 0..<d {
      #expect(
        conversion.stateSpace.states(c) <= 8,
        "seed \(seed) channel \(c) (dt \(dt[c])): \(conversion.stateSpace.states(c)) states")
    }
    #expect(report.relativeError <= 1e-4)
    expectCertified(samples, conversion, tolerance: 1e-4, seed: seed + 100, "seed \(seed)")
  }

  /// Steps down to 1e-4: the poles are within 5e-5 of 1 and move by at most 2e-3 in angle over
  /// the whole window; the kernel is nearly a low-degree polynomial. Still at most 8 states.
  @Test(arguments: [1, 2, 3] as [UInt64])
  func s4dLikeKernelsWithTinyStepsStayCompact(_ seed: UInt64) throws {
    let (d, n) = (6, 257)
    let (values, dt) = Self.s4dLikeKernel(channels: d, length: n, dtMin: 1e-4, seed: seed)
    let samples = try CausalKernelSamples(name: "s4d", channels: d, length: n, values: values)
    let conversion = try CompactConverter(tolerance: 1e-4).convert(samples)
    #expect(conversion.report.exactChannels == 0, "seed \(seed), dt \(dt): \(conversion.report)")
    #expect(conversion.report.maxStates <= 8, "seed \(seed): \(conversion.report)")
    expectCertified(samples, conversion, tolerance: 1e-4, seed: seed + 200, "seed \(seed)")
  }

  /// Poles the realisation puts on or outside the unit circle are moved strictly inside: an
  /// undamped constant and an undamped cosine (poles exactly on the circle) convert with one
  /// state each, `|z| < 1`; a growing kernel either fits with poles inside or goes exact.
  @Test func compactPolesStayInsideTheUnitCircle() throws {
    let n = 200
    var values: [Double] = []
    values += [Double](repeating: 1, count: n)
    values += (0..<n).map { Foundation.cos(0.3 * Double($0)) }
    values += (0..<n).map { Foundation.pow(1.01, Double($0)) }
    let samples = try CausalKernelSamples(name: "edge", channels: 3, length: n, values: values)
    let conversion = try CompactConverter(tolerance: 1e-4).convert(samples)
    let system = conversion.stateSpace
    #expect(system.states(0) == 1 && system.states(1) == 1, "\(conversion.report)")
    for c in 0..<3 where system.states(c) < (n + 1) / 2 {
      for (re, im) in zip(system.polesReal[c], system.polesImaginary[c]) {
        #expect((re * re + im * im).squareRoot() <= CompactConverter.largestPoleModulus, "channel \(c)")
      }
    }
    expectCertified(samples, conversion, tolerance: 1e-4, seed: 9, "edge")
  }

  /// Kernels whose first lags stand apart from a smooth tail (a spike at lag 1 or 2): no mode
  /// may fit them with a pole near 0 and a huge residue cancelled by the skip, which the Float32
  /// runtime would round by far more than the tolerance. Checked on the Float32 recurrence.
  @Test(arguments: [1e-3, 1e-4])
  func earlyLagsDoNotNeedHugeResidues(_ tolerance: Double) throws {
    let n = 64
    var values: [Double] = []
    for (spike, lag, decay) in [(0.3, 1, 0.95), (-0.5, 1, 0.8), (0.2, 2, 0.9), (1.0, 1, 0.99)] {
      values += (0..<n).map { k in
        Foundation.pow(decay, Double(k)) * Foundation.cos(0.1 * Double(k)) + (k == lag ? spike : 0)
      }
    }
    let samples = try CausalKernelSamples(name: "spikes", channels: 4, length: n, values: values)
    let conversion = try CompactConverter(tolerance: tolerance).convert(samples)
    expectCertified(samples, conversion, tolerance: tolerance, seed: 11, "spikes \(tolerance)")
  }

  @Test func refusesBadTolerances() {
    for bad in [0, -1e-3, .nan, .infinity] {
      #expect(throws: ConversionError.self) { try CompactConverter(tolerance: bad) }
    }
  }
}

/// Native forms (S4D, EMA): exact at every length, whatever the conversion length.
@Suite struct NativeConverterTests {
  @Test(arguments: [
    #"{"type": "s4d", "state_size": 8}"#, #"{"type": "s4d", "state_size": 6, "init": "inv"}"#,
    #"{"type": "ema", "ndim": 4}"#,
  ])
  func matchesTheConvolutionAtEveryLength(_ json: String) throws {
    let kernel = try makeKernel(json, channels: 3)
    // Converted at 16 positions, run far past them.
    let conversion = try NativeConverter().convert(CausalKernelSamples(kernel: kernel, length: 16, name: "k"))
    #expect(conversion.report.mode == .native)
    let recurrence = RecurrentConvolution(conversion.stateSpace)
    for length in [1, 7, 300] {
      let x = randomInputs(length: length, channels: 3, seed: UInt64(length))
      let y = runRecurrence(recurrence, x, length: length)
      let fft = try Tensor.withoutRecording { try kernel.convolve(Tensor(x).reshaped([1, length, 3])) }
        .scalars
      let error = relativeError(y.map(Double.init), fft.map { Double($0) })
      #expect(error < 1e-5, "\(json) L=\(length): relative error \(error)")
    }
  }

  @Test func kernelsWithoutANativeFormGoExact() throws {
    let kernel = try makeKernel(#"{"type": "tnn", "rpe_width": 8, "rpe_layers": 1}"#, channels: 2)
    let conversion = try NativeConverter().convert(
      CausalKernelSamples(kernel: kernel, length: 20, name: "tnn"))
    #expect(conversion.report.mode == .exact && conversion.report.requestedMode == .native)
    #expect(conversion.report.note != nil)
  }
}

/// Inputs that cannot be converted are errors that say why.
@Suite struct ConversionInputTests {
  @Test func badSamples() {
    #expect(throws: ConversionError.self) {
      try CausalKernelSamples(name: "k", channels: 1, length: 2, values: [1, .nan])
    }
    #expect(throws: ConversionError.self) {
      try CausalKernelSamples(name: "k", channels: 1, length: 0, values: [])
    }
    #expect(throws: ConversionError.self) {
      try CausalKernelSamples(name: "k", channels: 2, length: 2, values: [1, 2, 3])
    }
  }

  @Test func bidirectionalKernelsHaveNoCausalForm() throws {
    var generator = SeededGenerator(seed: 1)
    let config = try ConfigReader(JSONValue.parse(Data(#"{"type": "tnn"}"#.utf8), source: "t"))
    let kernel = try Registry.makeKernel(
      config, context: KernelContext(channels: 2, direction: .bidirectional, maxLength: 16),
      generator: &generator)
    do {
      _ = try CausalKernelSamples(kernel: kernel, length: 8, name: "enc")
      Issue.record("a bidirectional kernel converted")
    } catch let error as ConversionError {
      #expect(error.description.contains("bidirectional"))
    }
  }
}
