import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConvTraining

@Suite struct GradientClippingTests {
  @Test func scalesAboveTheMaximum() {
    let a = Tensor([0, 0]).requiringGradient()
    let b = Tensor([0]).requiringGradient()
    let unused = Tensor([0]).requiringGradient()
    setGradient(a, [3, 4])
    setGradient(b, [12])
    // Global norm sqrt(9 + 16 + 144) = 13.
    let norm = clipGradientNorm([a, b, unused], maxNorm: 1)
    #expect(norm == 13)
    let scale = 1 / (13 + 1e-6)
    expectClose(a.gradient!, [3 * scale, 4 * scale], tolerance: 1e-6, "a")
    expectClose(b.gradient!, [12 * scale], tolerance: 1e-6, "b")
    #expect(unused.gradient == nil)
  }

  @Test func leavesGradientsBelowTheMaximum() {
    let a = Tensor([0, 0]).requiringGradient()
    setGradient(a, [0.3, 0.4])
    let norm = clipGradientNorm([a], maxNorm: 1)
    #expect(abs(norm - 0.5) < 1e-7)
    #expect(a.gradient!.scalars == [0.3, 0.4])
  }

  @Test func normIsAccumulatedInDouble() {
    // 1e20^2 overflows Float but not Double.
    let a = Tensor([0, 0]).requiringGradient()
    setGradient(a, [3e20, 4e20])
    let norm = clipGradientNorm([a], maxNorm: 1)
    #expect(abs(norm / 5e20 - 1) < 1e-6)
    expectClose(a.gradient!, [0.6, 0.8], tolerance: 1e-6, "a")
  }

  @Test func nonFiniteNormPassesThroughUnscaled() {
    let a = Tensor([0, 0]).requiringGradient()
    setGradient(a, [.nan, 4])
    #expect(clipGradientNorm([a], maxNorm: 1).isNaN)
    #expect(a.gradient!.scalars[1] == 4)
    setGradient(a, [.infinity, 4])
    #expect(clipGradientNorm([a], maxNorm: 1) == .infinity)
    #expect(a.gradient!.scalars[1] == 4)
  }

  @Test func sharedGradientIsCountedOnce() {
    let a = Tensor([0, 0]).requiringGradient()
    setGradient(a, [3, 4])
    #expect(clipGradientNorm([a, a], maxNorm: 10) == 5)
  }
}
