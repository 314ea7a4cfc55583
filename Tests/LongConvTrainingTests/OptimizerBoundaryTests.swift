import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConvTraining

/// Where the optimizer and the clipping are easiest to get subtly wrong: the clipping threshold
/// itself (a norm just above the maximum is scaled down to it, one at or below it is left
/// alone), and AdamW's `eps` where it matters (large, with a fast-moving second moment), both
/// against closed forms in Double.
@Suite struct OptimizerBoundaryTests {
  @Test(arguments: [1.01, 1.5, 1.99, 3.0])
  func aNormAboveTheMaximumIsScaledDownToIt(ratio: Double) {
    let maxNorm: Float = 2
    let a = Tensor([0, 0, 0]).requiringGradient()
    // Direction (2, -3, 6) / 7, norm ratio * maxNorm.
    let norm = ratio * Double(maxNorm)
    let g = [2.0, -3.0, 6.0].map { $0 / 7 * norm }
    setGradient(a, g.map { Float($0) })
    let reported = clipGradientNorm([a], maxNorm: maxNorm)
    #expect(abs(Double(reported) - norm) <= 1e-6 * norm, "reported norm \(reported) vs \(norm)")
    let scale = Double(maxNorm) / (norm + 1e-6)
    expectClose(a.gradient!.scalars, g.map { $0 * scale }, tolerance: 1e-6, "ratio \(ratio)")
    let after = a.gradient!.scalars.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
    #expect(abs(after - Double(maxNorm)) <= 1e-5, "norm after clipping \(after)")
  }

  @Test(arguments: [0.5, 0.999, 1.0])
  func aNormAtOrBelowTheMaximumIsLeftAlone(ratio: Double) {
    let a = Tensor([0, 0]).requiringGradient()
    // (0.6, 0.8) has norm 1 exactly in Double; times a power of two stays exact.
    let g: [Float] = ratio == 1 ? [1.5, 2] : [Float(0.6 * 2.5 * ratio), Float(0.8 * 2.5 * ratio)]
    setGradient(a, g)
    clipGradientNorm([a], maxNorm: 2.5)
    #expect(a.gradient!.scalars == g, "ratio \(ratio)")
  }

  /// Large `eps` against a second moment that still carries most of its bias correction
  /// (`beta2 = 0.9`): where `eps` sits relative to `sqrt(1 - beta2^t)` changes every step.
  @Test(arguments: [0.3, 1.0])
  func adamWWithALargeEpsilonMatchesPyTorchsFormula(epsilon: Double) {
    let start = [1.0, -2.0, 0.5]
    let a = Tensor(start.map { Float($0) }).requiringGradient()
    let groups = [ParameterGroup(name: "all", parameters: [a], learningRateScale: 1, weightDecay: 0.05)]
    let optimizer = AdamW(
      groups: groups, learningRate: 0.1, beta1: 0.8, beta2: 0.9, epsilon: Float(epsilon))
    for g in gradientsA {
      setGradient(a, g)
      optimizer.step()
    }
    let expected = AdamWTests.reference(
      start: start, gradients: gradientsA, lr: 0.1, wd: 0.05, b1: 0.8, b2: 0.9, eps: epsilon)
    expectClose(a.scalars, expected, tolerance: 1e-6, "eps \(epsilon)")
  }
}
