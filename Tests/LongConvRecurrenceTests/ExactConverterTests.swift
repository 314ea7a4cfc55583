import Foundation
import LongConv
import LongConvRecurrence
import LongConvTensors
import LongConvTestSupport
import Testing

/// ETSC against the convolution it replaces: the Float32 recurrence (token by token) vs a dense
/// Double product and vs the FFT engine, over the first `n` positions.
@Suite struct ExactConverterTests {
  static let lengths = [1, 2, 7, 256, 1000]
  static let kernels: [(String, String)] = [
    ("tnn", #"{"type": "tnn", "rpe_width": 16, "rpe_layers": 1, "gamma": 0.99}"#),
    ("tnn learned decay", #"{"type": "tnn", "rpe_width": 8, "rpe_layers": 1, "decay": "learned"}"#),
    ("hyena", #"{"type": "hyena", "filter_width": 16, "emb_dim": 5}"#),
    ("s4d", #"{"type": "s4d", "state_size": 8}"#),
    ("ema", #"{"type": "ema", "ndim": 4}"#),
    ("explicit", #"{"type": "explicit", "init_std": 0.1}"#),
  ]

  @Test(arguments: kernels)
  func reproducesRegisteredKernels(_ name: String, _ json: String) throws {
    let kernel = try makeKernel(json, channels: 3)
    for n in Self.lengths {
      let samples = try CausalKernelSamples(kernel: kernel, length: n, name: name)
      try check(samples, label: "\(name) n=\(n)", fft: kernel)
    }
  }

  @Test(arguments: [(1.0, 0.0), (1.0, 5.0)])
  func reproducesRandomKernels(_ std: Double, _ mean: Double) throws {
    for n in Self.lengths {
      var generator = SeededGenerator(seed: UInt64(n))
      let values = Tensor.normal([4 * n], generator: &generator).scalars.map { mean + std * Double($0) }
      let samples = try CausalKernelSamples(name: "random", channels: 4, length: n, values: values)
      try check(samples, label: "random mean \(mean) n=\(n)", fft: nil)
    }
  }

  func check(_ samples: CausalKernelSamples, label: String, fft kernel: (any LongConvKernel)?) throws {
    let (d, n) = (samples.channels, samples.length)
    let conversion = try ExactConverter().convert(samples)
    #expect(conversion.report.maxStates == (n + 1) / 2, "\(label): states")
    #expect(
      conversion.report.relativeError < 1e-12, "\(label): Double roundoff \(conversion.report.relativeError)")

    let x = randomInputs(length: n, channels: d, seed: 7)
    let y = runRecurrence(RecurrentConvolution(conversion.stateSpace), x, length: n)
    let dense = Dense.longConvolution(
      x.map(Double.init), batch: 1, length: n, channels: d, kernel: samples.values, direction: .causal,
      skip: samples.skip)
    let error = relativeError(y.map(Double.init), dense)
    #expect(error < 1e-5, "\(label): recurrence vs dense Double product, relative error \(error)")

    if let kernel {
      let fft = try Tensor.withoutRecording {
        try kernel.convolve(Tensor(x).reshaped([1, n, d]))
      }.scalars.map { Double($0) }
      let fftError = relativeError(y.map(Double.init), fft)
      #expect(fftError < 1e-5, "\(label): recurrence vs FFT convolution, relative error \(fftError)")
    }
  }

  /// The construction itself, in Double, for a kernel small enough to write down: every lag
  /// below `n` comes back, lag `n` is `-gamma^n sum r`, then the kernel repeats damped.
  @Test func periodicExtensionBeyondLength() throws {
    let r: [Double] = [0.5, -1.25, 2, 0.75, 0.1]
    let gamma = 0.9
    let t = r.enumerated().map { Foundation.pow(gamma, Double($0.offset)) * $0.element }
    let samples = try CausalKernelSamples(
      name: "five", channels: 1, length: 5, values: t, decay: [gamma], undecayed: r)
    let conversion = try ExactConverter().convert(samples)
    let response = conversion.stateSpace.impulseResponse(channel: 0, length: 12)
    let sum = r.reduce(0, +)
    var expected = t + [-Foundation.pow(gamma, 5) * sum]
    for j in 0..<5 { expected.append(Foundation.pow(gamma, Double(6 + j)) * r[j]) }
    for k in 0..<11 { #expect(Swift.abs(response[k] - expected[k]) < 1e-12, "lag \(k)") }
    #expect(Swift.abs(conversion.report.lagBeyondLength! - Foundation.pow(gamma, 5) * Swift.abs(sum)) < 1e-12)
    #expect(conversion.report.maxStates == 3)
  }
}
