import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

/// Softmax, log-softmax and cross-entropy against Double, including huge logits.
@Suite struct SoftmaxTests {
  static let shape = [2, 3, 4]

  /// `x_i - log(sum_j exp(x_j))` along `axis` in Double, shifted by the lane maximum.
  func logSoftmaxReference(_ x: Tensor, axis: Int) -> [Double] {
    let xd = x.doubles
    let a = axis < 0 ? axis + x.rank : axis
    return (0..<x.count).map { flat in
      var index = Dense.unravel(flat, x.shape)
      let lane = (0..<x.shape[a]).map { e -> Double in
        index[a] = e
        return xd[Dense.ravel(index, x.shape)]
      }
      let m = lane.max()!
      return xd[flat] - m - Foundation.log(lane.map { Foundation.exp($0 - m) }.reduce(0, +))
    }
  }

  @Test(arguments: [-1, 1, 0, 2])
  func softmaxMatchesDouble(axis: Int) {
    let x = uniformTensor(Self.shape, seed: 101, low: -3, high: 3)
    let y = x.softmax(axis: axis)
    #expect(y.shape == Self.shape)
    expectClose(y, logSoftmaxReference(x, axis: axis).map { Foundation.exp($0) }, "softmax(axis: \(axis))")
    expectClose(
      y.sum(alongAxis: axis), [Double](repeating: 1, count: x.count / Self.shape[(axis + 3) % 3]),
      "softmax(axis: \(axis)) sums to 1")
    checkGradients("softmax(axis: \(axis))", inputs: [x]) { $0[0].softmax(axis: axis) }
  }

  @Test(arguments: [-1, 1, 0, 2])
  func logSoftmaxMatchesDouble(axis: Int) {
    let x = uniformTensor(Self.shape, seed: 102, low: -3, high: 3)
    let y = x.logSoftmax(axis: axis)
    #expect(y.shape == Self.shape)
    expectClose(y, logSoftmaxReference(x, axis: axis), "logSoftmax(axis: \(axis))")
    checkGradients("logSoftmax(axis: \(axis))", inputs: [x]) { $0[0].logSoftmax(axis: axis) }
  }

  /// `mean_r (log(sum_c exp(x_rc)) - x_r,target_r)` in Double.
  func crossEntropyReference(_ x: Tensor, _ targets: [Int]) -> Double {
    let classes = x.shape.last!
    let logProbabilities = logSoftmaxReference(x, axis: -1)
    let total = targets.enumerated().map { r, t in -logProbabilities[r * classes + t] }.reduce(0, +)
    return total / Double(targets.count)
  }

  @Test func crossEntropyMatchesDouble() {
    let cases: [(shape: [Int], targets: [Int])] = [
      ([4, 5], [0, 4, 2, 2]),
      ([2, 3, 5], [1, 0, 4, 3, 3, 2]),
      ([1, 2], [1]),
    ]
    for (shape, targets) in cases {
      let x = uniformTensor(shape, seed: 103, low: -3, high: 3)
      let loss = x.crossEntropy(targets: targets)
      #expect(loss.shape == [])
      expectClose(loss, [crossEntropyReference(x, targets)], "crossEntropy \(shape)")
      checkGradients("crossEntropy \(shape)", inputs: [x]) { $0[0].crossEntropy(targets: targets) }
    }
  }

  @Test func crossEntropyOverManyRowsMatchesDouble() {
    // 600 rows of 40 classes: loss and gradient computed on several threads.
    let x = uniformTensor([600, 40], seed: 105, low: -4, high: 4)
    let targets = (0..<600).map { ($0 * 17) % 40 }
    let p = x.requiringGradient()
    let loss = p.crossEntropy(targets: targets)
    expectClose(loss, [crossEntropyReference(x, targets)], "crossEntropy, many rows")
    loss.backward()
    // (softmax - onehot) / rows, in Double.
    let logp = logSoftmaxReference(x, axis: -1)
    var expected = logp.map { Foundation.exp($0) / 600 }
    for (r, t) in targets.enumerated() { expected[r * 40 + t] -= 1.0 / 600 }
    expectClose(p.gradient!, expected, "crossEntropy gradient, many rows")
  }

  @Test func crossEntropyEqualsMeanNegativeLogSoftmaxOfTheTargets() {
    let x = uniformTensor([3, 4], seed: 104, low: -2, high: 2)
    let targets = [3, 1, 0]
    let logp = x.logSoftmax()
    let picked = targets.enumerated().map { r, t in Double(logp[r, t]) }
    expectClose(x.crossEntropy(targets: targets), [-picked.reduce(0, +) / 3], "crossEntropy vs logSoftmax")
  }

  @Test func hugeLogitsStayFinite() {
    let values: [Float] = [1000, -1000, 0, 999, -1000, -999, 1000, 1000]
    let x = try! Tensor(shape: [2, 4], scalars: values)
    let targets = [1, 2]
    let softmax = x.softmax()
    let logSoftmax = x.logSoftmax()
    let loss = x.crossEntropy(targets: targets)
    #expect(softmax.scalars.allSatisfy { $0.isFinite }, "softmax \(softmax.scalars)")
    #expect(logSoftmax.scalars.allSatisfy { $0.isFinite }, "logSoftmax \(logSoftmax.scalars)")
    #expect(loss.scalar.isFinite, "crossEntropy \(loss.scalar)")
    // The log-sum-exp of logits near 1000 is a Float near 1000, rounded to half an ulp there
    // (3e-5): an error equivalent to perturbing the logits by one ulp, hence 1e-4.
    let reference = logSoftmaxReference(x, axis: -1)
    let tolerance = 1e-4
    expectClose(softmax, reference.map { Foundation.exp($0) }, tolerance: tolerance, "softmax of huge logits")
    expectClose(logSoftmax, reference, tolerance: tolerance, "logSoftmax of huge logits")
    expectClose(
      loss, [crossEntropyReference(x, targets)], tolerance: tolerance, "crossEntropy of huge logits")

    for (name, f) in [
      ("softmax", { (t: Tensor) in (t.softmax() * Tensor([1, 2, 3, 4])).sum() }),
      ("logSoftmax", { (t: Tensor) in (t.logSoftmax() * Tensor([1, 2, 3, 4])).sum() }),
      ("crossEntropy", { (t: Tensor) in t.crossEntropy(targets: targets) }),
    ] {
      let p = x.requiringGradient()
      f(p).backward()
      #expect(p.gradient!.scalars.allSatisfy { $0.isFinite }, "\(name) gradient \(p.gradient!.scalars)")
    }
    // Gradients of cross-entropy in Double: (softmax - onehot) / rows.
    let p = x.requiringGradient()
    p.crossEntropy(targets: targets).backward()
    var expected = reference.map { Foundation.exp($0) / 2 }
    for (r, t) in targets.enumerated() { expected[r * 4 + t] -= 0.5 }
    expectClose(p.gradient!, expected, tolerance: tolerance, "crossEntropy gradient of huge logits")
  }
}
