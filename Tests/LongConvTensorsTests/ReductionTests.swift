import LongConvTensors
import LongConvTestSupport
import Testing

/// Sums, means and maxima, full and along an axis, against Double.
@Suite struct ReductionTests {
  static let shape = [2, 3, 4]

  enum Reduction: String, CaseIterable, Sendable {
    case sum, mean, max

    func callAsFunction(_ x: Tensor, axis: Int, keepingAxis: Bool) -> Tensor {
      switch self {
      case .sum: x.sum(alongAxis: axis, keepingAxis: keepingAxis)
      case .mean: x.mean(alongAxis: axis, keepingAxis: keepingAxis)
      case .max: x.max(alongAxis: axis, keepingAxis: keepingAxis)
      }
    }

    func callAsFunction(_ lane: [Double]) -> Double {
      switch self {
      case .sum: lane.reduce(0, +)
      case .mean: lane.reduce(0, +) / Double(lane.count)
      case .max: lane.max()!
      }
    }
  }

  /// Distinct values at least 0.1 apart in a shuffled order, so the maximum of every lane is
  /// unique and stays unique under finite-difference steps.
  static func distinctValues(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    let n = Tensor.elementCount(shape)
    let values = (0..<n).map { Float($0) * 0.1 - Float(n) * 0.05 }.shuffled(using: &rng)
    return try! Tensor(shape: shape, scalars: values)
  }

  @Test(arguments: Reduction.allCases, [0, 1, 2, -1, -3])
  func alongAxisMatchesDouble(reduction: Reduction, axis: Int) {
    let x = Self.distinctValues(Self.shape, seed: 71)
    let a = axis < 0 ? axis + Self.shape.count : axis
    // Expected values, one per position of the kept shape.
    var kept = Self.shape
    kept[a] = 1
    let xd = x.doubles
    let expected = (0..<Tensor.elementCount(kept)).map { flat -> Double in
      var index = Dense.unravel(flat, kept)
      let lane = (0..<Self.shape[a]).map { e -> Double in
        index[a] = e
        return xd[Dense.ravel(index, Self.shape)]
      }
      return reduction(lane)
    }
    var removed = Self.shape
    removed.remove(at: a)
    for keepingAxis in [true, false] {
      let y = reduction(x, axis: axis, keepingAxis: keepingAxis)
      let label = "\(reduction) along \(axis) keepingAxis=\(keepingAxis)"
      #expect(y.shape == (keepingAxis ? kept : removed), "\(label)")
      expectClose(y, expected, label)
      checkGradients(label, inputs: [x]) { reduction($0[0], axis: axis, keepingAxis: keepingAxis) }
    }
  }

  @Test func fullSumAndMean() {
    let x = uniformTensor(Self.shape, seed: 72)
    let total = x.doubles.reduce(0, +)
    let s = x.sum()
    let m = x.mean()
    #expect(s.shape == [] && m.shape == [])
    expectClose(s, [total], "sum")
    expectClose(m, [total / 24], "mean")
    checkGradients("sum", inputs: [x]) { $0[0].sum() }
    checkGradients("mean", inputs: [x]) { $0[0].mean() }
  }

  @Test func fullSumAccumulatesInDouble() {
    // 200,000 copies of Float(0.1): one Float accumulator over all of them ends 0.2% low
    // (19959.5); short Float runs added up in Double stay within a few ulps.
    let x = Tensor(repeating: 0.1, shape: [200_000])
    let expected = 200_000 * Double(Float(0.1))
    #expect(Swift.abs(Double(x.sum().scalar) - expected) <= 1e-5 * expected)
  }

  @Test func maxGradientGoesToTheFirstOfTiedMaxima() {
    let x = try! Tensor(shape: [2, 3], scalars: [1, 3, 3, 5, 5, 2]).requiringGradient()
    let y = x.max(alongAxis: 1)
    #expect(y.scalars == [3, 5])
    (y * Tensor([2, 7])).sum().backward()
    #expect(x.gradient?.scalars == [0, 2, 0, 7, 0, 0])
  }

  @Test func maxOfNegativeValues() {
    // The running maximum must start from the data, not from 0.
    let x = try! Tensor(shape: [2, 2], scalars: [-3, -1, -2, -4])
    #expect(x.max(alongAxis: 0).scalars == [-2, -1])
    #expect(x.max(alongAxis: 1).scalars == [-1, -2])
  }

  @Test func reductionsOfARankOneTensor() {
    let x = uniformTensor([6], seed: 73)
    let xd = x.doubles
    expectClose(x.sum(alongAxis: 0), [xd.reduce(0, +)], "sum of rank 1")
    #expect(x.sum(alongAxis: 0).shape == [])
    #expect(x.mean(alongAxis: 0, keepingAxis: true).shape == [1])
    expectClose(x.max(alongAxis: -1), [xd.max()!], "max of rank 1")
  }
}
