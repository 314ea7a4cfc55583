import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConvTraining

/// Gives `parameter` exactly `values` as its gradient (through `backward()` of `sum(p * values)`).
func setGradient(_ parameter: Tensor, _ values: [Float]) {
  parameter.zeroGradient()
  (parameter * Tensor(values)).sum().backward()
}

/// Gradients for three steps of a two-parameter problem, deliberately different each step.
let gradientsA: [[Float]] = [[0.5, -1.0, 2.0], [0.25, 0.75, -0.5], [-1.5, 0.1, 0.3]]
let gradientsB: [[Float]] = [[1.0, -2.0], [0.5, 0.5], [-0.25, 3.0]]

@Suite struct AdamWTests {
  /// PyTorch's AdamW in Double, one parameter.
  static func reference(
    start: [Double], gradients: [[Float]], lr: Double, wd: Double, b1: Double, b2: Double, eps: Double
  ) -> [Double] {
    var p = start
    var m = [Double](repeating: 0, count: p.count)
    var v = m
    for (t, g) in gradients.enumerated() {
      let step = Double(t + 1)
      for j in p.indices {
        let gj = Double(g[j])
        p[j] *= 1 - lr * wd
        m[j] = b1 * m[j] + (1 - b1) * gj
        v[j] = b2 * v[j] + (1 - b2) * gj * gj
        let mHat = m[j] / (1 - pow(b1, step))
        let denom = v[j].squareRoot() / (1 - pow(b2, step)).squareRoot() + eps
        p[j] -= lr * mHat / denom
      }
    }
    return p
  }

  @Test func threeStepsMatchTheReferenceWithDecayAndScaledGroups() {
    let a = Tensor([1.0, -2.0, 0.5]).requiringGradient()
    let b = Tensor([0.3, 4.0]).requiringGradient()
    let groups = [
      ParameterGroup(name: "decay", parameters: [a], learningRateScale: 1, weightDecay: 0.1),
      ParameterGroup(name: "ssm", parameters: [b], learningRateScale: 0.5, weightDecay: 0),
    ]
    let optimizer = AdamW(groups: groups, learningRate: 0.05, beta1: 0.9, beta2: 0.98, epsilon: 1e-6)
    for t in 0..<3 {
      setGradient(a, gradientsA[t])
      setGradient(b, gradientsB[t])
      optimizer.step()
    }
    expectClose(
      a.scalars,
      Self.reference(
        start: [1, -2, 0.5], gradients: gradientsA, lr: 0.05, wd: 0.1, b1: 0.9, b2: 0.98, eps: 1e-6),
      "a")
    expectClose(
      b.scalars,
      Self.reference(start: [0.3, 4], gradients: gradientsB, lr: 0.025, wd: 0, b1: 0.9, b2: 0.98, eps: 1e-6),
      "b")
    #expect(optimizer.state["decay.0.step"] == [3])
    #expect(optimizer.state["decay.0.exp_avg"]?.count == 3)
    #expect(optimizer.state["ssm.0.exp_avg_sq"]?.count == 2)
  }

  @Test func aLargeParameterSplitOverThreadsMatchesTheReference() {
    // 200 K scalars: the update runs in ranges on several threads.
    let n = 200_000
    let start: [Float] = (0..<n).map { i in Float(i % 97) / 50 - 1 }
    let gradients: [[Float]] = (0..<2).map { t in
      (0..<n).map { i -> Float in Float((i * 7 + t * 13) % 101) / 50 - 1 }
    }
    let p = Tensor(start).requiringGradient()
    let optimizer = AdamW(
      groups: [ParameterGroup(name: "g", parameters: [p], weightDecay: 0.1)], learningRate: 0.01)
    for g in gradients {
      setGradient(p, g)
      optimizer.step()
    }
    let expected = Self.reference(
      start: start.map(Double.init), gradients: gradients, lr: 0.01, wd: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8)
    let worst = zip(p.scalars, expected).map { abs(Double($0) - $1) }.max()!
    #expect(worst < 1e-5, "largest deviation \(worst)")
  }

  @Test func firstStepIsSignTimesLearningRate() {
    // Bias-corrected first step: m_hat / sqrt(v_hat) = sign(g), so p moves by lr (eps aside).
    let p = Tensor([1.0, 1.0]).requiringGradient()
    let optimizer = AdamW(groups: [ParameterGroup(name: "g", parameters: [p])], learningRate: 0.1)
    setGradient(p, [3, -0.01])
    optimizer.step()
    expectClose(p.scalars, [0.9, 1.1], tolerance: 1e-5, "p")
  }

  @Test func parametersWithoutGradientAreSkipped() {
    let a = Tensor([1.0]).requiringGradient()
    let b = Tensor([2.0]).requiringGradient()
    let optimizer = AdamW(
      groups: [ParameterGroup(name: "g", parameters: [a, b], weightDecay: 0.5)], learningRate: 0.1)
    setGradient(a, [1])
    optimizer.step()
    #expect(b.scalars == [2])
    #expect(optimizer.state["g.1.step"] == nil)
    #expect(optimizer.state["g.0.step"] == [1])
  }

  @Test func stateRoundTripsAndContinuesIdentically() throws {
    func make() -> (Tensor, AdamW) {
      let p = Tensor([1.0, -2.0, 0.5]).requiringGradient()
      return (
        p,
        AdamW(
          groups: [ParameterGroup(name: "g", parameters: [p], parameterNames: ["w"], weightDecay: 0.1)],
          learningRate: 0.05)
      )
    }
    let (p1, o1) = make()
    setGradient(p1, gradientsA[0])
    o1.step()
    let (p2, o2) = make()
    p2.withUnsafeMutableBufferPointer { v in for j in 0..<3 { v[j] = p1.scalars[j] } }
    try o2.loadState(o1.state)
    #expect(o2.state == o1.state)
    for t in 1..<3 {
      setGradient(p1, gradientsA[t])
      setGradient(p2, gradientsA[t])
      o1.step()
      o2.step()
    }
    #expect(p1.scalars == p2.scalars)
  }

  @Test func loadStateRejectsBadEntries() {
    let p = Tensor([1.0, 2.0]).requiringGradient()
    let optimizer = AdamW(
      groups: [ParameterGroup(name: "g", parameters: [p], parameterNames: ["w"])], learningRate: 1)
    #expect(throws: OptimizerStateError.self) { try optimizer.loadState(["v.exp_avg": [0, 0]]) }
    #expect(throws: OptimizerStateError.self) { try optimizer.loadState(["w.exp_avg": [0]]) }
    #expect(throws: OptimizerStateError.self) { try optimizer.loadState(["w.momentum": [0, 0]]) }
    #expect(throws: OptimizerStateError.self) { try optimizer.loadState(["w.step": [1.5]]) }
  }
}

@Suite struct SGDTests {
  /// PyTorch's SGD (dampening 0) in Double, one parameter.
  static func reference(
    start: [Double], gradients: [[Float]], lr: Double, momentum: Double, nesterov: Bool, wd: Double
  ) -> [Double] {
    var p = start
    var buffer: [Double]? = nil
    for g in gradients {
      var d = p.indices.map { Double(g[$0]) + wd * p[$0] }
      if momentum != 0 {
        if let old = buffer {
          buffer = p.indices.map { momentum * old[$0] + d[$0] }
        } else {
          buffer = d
        }
        d = nesterov ? p.indices.map { d[$0] + momentum * buffer![$0] } : buffer!
      }
      for j in p.indices { p[j] -= lr * d[j] }
    }
    return p
  }

  @Test(arguments: [
    (0.0, false, 0.0), (0.9, false, 0.0), (0.9, true, 0.0), (0.9, false, 0.01), (0.8, true, 0.05),
  ])
  func threeStepsMatchTheReference(momentum: Double, nesterov: Bool, wd: Double) {
    let a = Tensor([1.0, -2.0, 0.5]).requiringGradient()
    let b = Tensor([0.3, 4.0]).requiringGradient()
    let groups = [
      ParameterGroup(name: "a", parameters: [a], weightDecay: Float(wd)),
      ParameterGroup(name: "b", parameters: [b], learningRateScale: 0.1, weightDecay: 0),
    ]
    let optimizer = SGD(groups: groups, learningRate: 0.1, momentum: Float(momentum), nesterov: nesterov)
    for t in 0..<3 {
      setGradient(a, gradientsA[t])
      setGradient(b, gradientsB[t])
      optimizer.step()
    }
    expectClose(
      a.scalars,
      Self.reference(
        start: [1, -2, 0.5], gradients: gradientsA, lr: 0.1, momentum: momentum, nesterov: nesterov, wd: wd),
      "a")
    expectClose(
      b.scalars,
      Self.reference(
        start: [0.3, 4], gradients: gradientsB, lr: 0.01, momentum: momentum, nesterov: nesterov, wd: 0),
      "b")
    #expect((optimizer.state["a.0.momentum_buffer"] != nil) == (momentum != 0))
    // The gradient itself is not changed by weight decay or momentum.
    #expect(a.gradient?.scalars == gradientsA[2])
  }

  @Test func handComputedMomentumSteps() {
    // lr 0.1, momentum 0.9, g = 1, 1: buf 1 then 1.9; p = 0 - 0.1 - 0.19 = -0.29.
    let p = Tensor([0.0]).requiringGradient()
    let optimizer = SGD(
      groups: [ParameterGroup(name: "g", parameters: [p])], learningRate: 0.1, momentum: 0.9)
    setGradient(p, [1])
    optimizer.step()
    optimizer.step()
    expectClose(p.scalars, [-0.29], "p")
    #expect(
      optimizer.state["g.0.momentum_buffer"].map { $0.map(Double.init) }.map { abs($0[0] - 1.9) < 1e-6 }
        == true)
  }
}
