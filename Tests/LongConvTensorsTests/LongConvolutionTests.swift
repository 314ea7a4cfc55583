import LongConvTestSupport
import Testing

@testable import LongConvTensors

/// The long convolution and its pullback against the dense Toeplitz product evaluated in Double
/// (MODELS.md §1).
@Suite struct LongConvolutionTests {
  func check(
    length l: Int, batch b: Int, channels d: Int, columns: Int, direction: ConvolutionDirection, skip: Bool,
    bias: Bool = false
  ) {
    var rng = SeededGenerator(seed: UInt64(l * 131 + columns * 7 + b))
    let x = Tensor.normal([b, l, d], generator: &rng).requiringGradient()
    let t = Tensor.normal([d, columns], generator: &rng).requiringGradient()
    let s = skip ? Tensor.normal([d], generator: &rng).requiringGradient() : nil
    let w = Tensor.normal([b, l, d], generator: &rng)
    let beta = bias ? Tensor.normal([d], generator: &rng).requiringGradient() : nil
    let y = x.longConvolution(kernel: t, direction: direction, skip: s, bias: beta)
    (y * w).sum().backward()
    var expected = Dense.longConvolution(
      x.doubles, batch: b, length: l, channels: d, kernel: t.doubles, direction: direction, skip: s?.doubles)
    // The bias: added to every output; its gradient the sum of the output's gradient `w`.
    if let beta {
      expected = expected.indices.map { expected[$0] + beta.doubles[$0 % d] }
    }
    let gradients = Dense.longConvolutionPullback(
      w.doubles, x: x.doubles, batch: b, length: l, channels: d, kernel: t.doubles, direction: direction,
      skip: s?.doubles)
    let label = "L=\(l) B=\(b) D=\(d) columns=\(columns) \(direction) skip=\(skip) bias=\(bias)"
    expectClose(y, expected, tolerance: 2e-6, "forward \(label)")
    expectClose(x.gradient!, gradients.input, tolerance: 2e-6, "d input \(label)")
    expectClose(t.gradient!, gradients.kernel, tolerance: 2e-6, "d kernel \(label)")
    if let s { expectClose(s.gradient!, gradients.skip!, tolerance: 2e-6, "d skip \(label)") }
    if let beta {
      let biasGradient = (0..<d).map { c in
        stride(from: c, to: b * l * d, by: d).reduce(0.0) { $0 + w.doubles[$1] }
      }
      expectClose(beta.gradient!, biasGradient, tolerance: 2e-6, "d bias \(label)")
    }
  }

  @Test(arguments: [1, 2, 7, 64, 257, 1000])
  func causalFullKernelMatchesDenseProduct(length: Int) {
    check(length: length, batch: 2, channels: 3, columns: length, direction: .causal, skip: false)
  }

  @Test(arguments: [1, 2, 7, 64, 257, 1000])
  func bidirectionalFullKernelMatchesDenseProduct(length: Int) {
    check(
      length: length, batch: 2, channels: 3, columns: 2 * length - 1, direction: .bidirectional, skip: false)
  }

  @Test func shortAndOverlongKernelsWithSkip() {
    check(length: 37, batch: 1, channels: 5, columns: 3, direction: .causal, skip: true)
    check(length: 37, batch: 2, channels: 5, columns: 60, direction: .causal, skip: true)
    check(length: 20, batch: 1, channels: 19, columns: 9, direction: .bidirectional, skip: true)
    check(length: 5, batch: 3, channels: 2, columns: 21, direction: .bidirectional, skip: true)
    check(length: 20, batch: 2, channels: 19, columns: 9, direction: .bidirectional, skip: true, bias: true)
  }

  @Test func manyChannelsSpanSeveralTasks() {
    // More channels than one FFT batch holds, and not a multiple of it.
    check(length: 31, batch: 2, channels: 37, columns: 31, direction: .causal, skip: true)
  }

  @Test func cachedSpectrumGivesTheSameOutput() {
    var rng = SeededGenerator(seed: 5)
    let x = Tensor.normal([2, 50, 4], generator: &rng)
    for direction in ConvolutionDirection.allCases {
      let t = Tensor.normal([4, direction == .causal ? 50 : 99], generator: &rng)
      let spectrum = KernelSpectrum(kernel: t, length: 50, direction: direction)
      let a = x.longConvolution(kernel: t, direction: direction).scalars
      let b = x.longConvolution(spectrum: spectrum).scalars
      #expect(a == b, "\(direction)")
    }
  }

  @Test func fastSizesAreSmoothAndLargeEnough() {
    for n in 1...3000 {
      let size = FFT.fastSize(atLeast: n)
      #expect(size >= n && size % 2 == 0)
      var m = size / 2
      for p in [2, 3, 5, 7] { while m % p == 0 { m /= p } }
      #expect(m == 1, "size \(size) for \(n)")
    }
  }
}
