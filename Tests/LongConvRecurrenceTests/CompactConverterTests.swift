import Foundation
import LongConv
import LongConvRecurrence
import LongConvTensors
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
    let exact = denseConvolution(
      x, length: 256, kernel: samples.values, lags: 256, channels: 4, skip: samples.skip)
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
      let error = relativeMaxError(y, fft.map { Double($0) })
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
