import LongConvTestSupport
import Testing

@testable import LongConvTensors

/// The direct path of the causal convolution (kernels of at most 16 lags) against the dense
/// product and its exact pullback in Double: kernels of 1, 3, 4 and 16 lags, a kernel longer
/// than the sequence, several blocks of the kernel gradient's rows, with and without skip and
/// bias; and the first length past the direct path's limit, which takes the FFT.
@Suite struct ShortConvolutionTests {
  @Test(arguments: [
    (37, 2, 5, 1), (37, 2, 5, 3), (258, 3, 12, 4), (10, 2, 7, 16), (300, 2, 33, 16), (40, 2, 6, 17),
  ])
  func matchesTheDenseProduct(shape: (length: Int, batch: Int, channels: Int, lags: Int)) {
    // Skip and bias together or neither (the dense sums in Double dominate the suite's time;
    // each term alone is checked by ConvolutionKernelsTests and biasGradientWithAFrozenKernel).
    for (skip, bias) in [(false, false), (true, true)] {
      LongConvolutionTests().check(
        length: shape.length, batch: shape.batch, channels: shape.channels, columns: shape.lags,
        direction: .causal, skip: skip, bias: bias)
    }
  }

  /// Inference (no graph) gives the same values as a recorded forward pass.
  @Test func valuesWithoutAGraph() {
    var rng = SeededGenerator(seed: 8)
    let x = Tensor.normal([2, 20, 6], generator: &rng)
    let t = Tensor.normal([6, 3], generator: &rng).requiringGradient()
    let recorded = x.longConvolution(kernel: t).scalars
    let plain = Tensor.withoutRecording { x.longConvolution(kernel: t.detached()).scalars }
    #expect(recorded == plain)
  }

  /// Only the bias takes a gradient (the kernel frozen): it is still the sum of the output's
  /// gradient, from the same pass.
  @Test func biasGradientWithAFrozenKernel() {
    var rng = SeededGenerator(seed: 9)
    let x = Tensor.normal([3, 300, 5], generator: &rng)
    let t = Tensor.normal([5, 3], generator: &rng)
    let beta = Tensor.normal([5], generator: &rng).requiringGradient()
    let w = Tensor.normal([3, 300, 5], generator: &rng)
    (x.longConvolution(kernel: t, bias: beta) * w).sum().backward()
    let expected = (0..<5).map { c in stride(from: c, to: w.count, by: 5).reduce(0.0) { $0 + w.doubles[$1] } }
    expectClose(beta.gradient!, expected, tolerance: 2e-6, "d bias")
  }
}
