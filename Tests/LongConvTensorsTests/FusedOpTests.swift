import Foundation
import LongConvTestSupport
import Testing

@testable import LongConvTensors

/// The fused ops (`linear`, `siluGate`) against dense references in Double and against
/// finite differences, and the SiLU built on the vectorisable exponential.
@Suite struct FusedOpTests {
  /// `x W^T + b` in Double for `x` `[rows, in]`, `W` `[out, in]`.
  func affine(_ x: Tensor, _ w: Tensor, _ b: Tensor?) -> [Double] {
    let (inputs, outputs) = (w.shape[1], w.shape[0])
    let rows = x.count / inputs
    var y = Dense.matmul(
      x.doubles, Dense.transpose(w.doubles, rows: outputs, columns: inputs), m: rows, k: inputs, n: outputs)
    if let b {
      let bd = b.doubles
      for i in y.indices { y[i] += bd[i % outputs] }
    }
    return y
  }

  @Test(arguments: [true, false])
  func linearMatchesDoubleAndFiniteDifferences(withBias: Bool) {
    // Leading axes [2, 3] fold into the rows.
    let x = uniformTensor([2, 3, 4], seed: 301)
    let w = uniformTensor([5, 4], seed: 302)
    let b = withBias ? uniformTensor([5], seed: 303) : nil
    let y = x.linear(weight: w, bias: b)
    #expect(y.shape == [2, 3, 5])
    expectClose(y, affine(x, w, b), "linear bias=\(withBias)")
    checkGradients("linear bias=\(withBias)", inputs: [x, w] + (b.map { [$0] } ?? [])) {
      $0[0].linear(weight: $0[1], bias: withBias ? $0[2] : nil)
    }
  }

  @Test func linearGradientsMatchTheUnfusedOpsOnALargeInput() {
    // Large enough for threaded bias filling, threaded column sums and threaded products.
    let x = uniformTensor([3, 700, 48], seed: 304).requiringGradient()
    let w = uniformTensor([40, 48], seed: 305).requiringGradient()
    let b = uniformTensor([40], seed: 306).requiringGradient()
    let r = uniformTensor([3, 700, 40], seed: 307)
    let fused = x.linear(weight: w, bias: b)
    (fused * r).sum().backward()
    let (xc, wc, bc) = (
      x.detached().requiringGradient(), w.detached().requiringGradient(), b.detached().requiringGradient()
    )
    let unfused = xc.matmul(wc, transposeB: true) + bc
    (unfused * r).sum().backward()
    expectClose(fused, unfused.doubles, "linear value")
    expectClose(x.gradient!, xc.gradient!.doubles, "dx")
    expectClose(w.gradient!, wc.gradient!.doubles, tolerance: 1e-4, "dW (sums of 2100 products)")
    expectClose(b.gradient!, bc.gradient!.doubles, tolerance: 1e-4, "db (sums of 2100 values)")
  }

  @Test func linearWithoutInputGradientSkipsIt() {
    let x = uniformTensor([3, 4], seed: 308)
    let w = uniformTensor([2, 4], seed: 309).requiringGradient()
    x.linear(weight: w).sum().backward()
    // d sum(x W^T) / dW[o, i] = sum_r x[r, i].
    let column = (0..<4).map { i in (0..<3).map { x[$0, i] }.reduce(0, +) }
    expectClose(w.gradient!, (0..<2).flatMap { _ in column.map(Double.init) }, "dW")
  }

  @Test func siluGateMatchesDoubleAndFiniteDifferences() {
    let a = uniformTensor([3, 5], seed: 311, low: -4, high: 4)
    let b = uniformTensor([3, 5], seed: 312, low: -2, high: 2)
    let expected = zip(a.doubles, b.doubles).map { x, v in x / (1 + Foundation.exp(-x)) * v }
    expectClose(a.siluGate(b), expected, tolerance: 2e-6, "siluGate")
    checkGradients("siluGate", inputs: [a, b]) { $0[0].siluGate($0[1]) }
    checkGradients("siluGate wrt the gate", inputs: [a, b], wrt: [0]) { $0[0].siluGate($0[1]) }
    checkGradients("siluGate wrt the value", inputs: [a, b], wrt: [1]) { $0[0].siluGate($0[1]) }
  }

  @Test func siluGateEqualsTheUnfusedOpsOnALargeInput() {
    let a = uniformTensor([70_000], seed: 313, low: -6, high: 6).requiringGradient()
    let b = uniformTensor([70_000], seed: 314).requiringGradient()
    let r = uniformTensor([70_000], seed: 315)
    let fused = a.siluGate(b)
    (fused * r).sum().backward()
    let (ac, bc) = (a.detached().requiringGradient(), b.detached().requiringGradient())
    let unfused = ac.silu() * bc
    (unfused * r).sum().backward()
    expectClose(fused, unfused.doubles, "value")
    expectClose(a.gradient!, ac.gradient!.doubles, "da")
    expectClose(b.gradient!, bc.gradient!.doubles, "db")
  }

  @Test func fastExponentialIsWithinAnUlp() {
    // Every 1/1024 over the unclamped range, against Double.
    var worst = 0.0
    for i in -87 * 1024...88 * 1024 {
      let x = Float(i) / 1024
      let exact = Foundation.exp(Double(x))
      worst = Swift.max(worst, Swift.abs(Double(FastMath.exp(x)) - exact) / exact)
    }
    #expect(worst < 1.2e-7, "largest relative error \(worst)")
    #expect(FastMath.exp(-1000) > 0 && FastMath.exp(-1000) < 1e-37)
    #expect(FastMath.exp(1000).isFinite && FastMath.exp(1000) > 1e38)
    #expect(FastMath.exp(.nan).isNaN)
  }

  @Test func siluIsAccurateOverItsRangeAndKeepsNaN() {
    // Every 1/64 over [-90, 90] (through the clamps of the exponential) against Double.
    let values = (-90 * 64...90 * 64).map { Float($0) / 64 }
    let x = Tensor(values)
    let expected = values.map { v -> Double in
      let z = Double(v)
      return z / (1 + Foundation.exp(-z))
    }
    expectClose(x.silu(), expected, tolerance: 1e-6, "silu on [-90, 90]")
    #expect(Tensor([.nan]).silu().scalar.isNaN)
    #expect(Tensor([.nan]).siluGate(Tensor([1])).scalar.isNaN)
  }
}
