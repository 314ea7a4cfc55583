import LongConvTensors
import LongConvTestSupport
import Testing

/// NumPy broadcasting rules, `sum(toShape:)` (the pullback of broadcasting) and `broadcast(to:)`.
@Suite struct BroadcastingTests {
  struct Case: Sendable, CustomTestStringConvertible {
    var a: [Int], b: [Int], result: [Int]?
    var testDescription: String { "\(a) with \(b)" }
  }

  static let cases: [Case] = [
    .init(a: [2, 3, 4], b: [2, 3, 4], result: [2, 3, 4]),
    .init(a: [2, 3, 4], b: [4], result: [2, 3, 4]),
    .init(a: [2, 3, 4], b: [3, 1], result: [2, 3, 4]),
    .init(a: [2, 1, 4], b: [3, 1], result: [2, 3, 4]),
    .init(a: [5, 1], b: [1, 6], result: [5, 6]),
    .init(a: [], b: [5], result: [5]),
    .init(a: [], b: [], result: []),
    .init(a: [1], b: [], result: [1]),
    .init(a: [1, 1], b: [3], result: [1, 3]),
    .init(a: [7], b: [1, 1, 1], result: [1, 1, 7]),
    // Zero extents broadcast like any other extent; only 1 stretches.
    .init(a: [0], b: [1], result: [0]),
    .init(a: [2, 0], b: [2, 1], result: [2, 0]),
    .init(a: [1, 0], b: [3, 1], result: [3, 0]),
    // Incompatible pairs.
    .init(a: [3], b: [4], result: nil),
    .init(a: [2, 3], b: [3, 2], result: nil),
    .init(a: [2, 3, 4], b: [3, 4, 4], result: nil),
    .init(a: [2, 3, 4], b: [2, 3], result: nil),
    .init(a: [0], b: [2], result: nil),
  ]

  @Test(arguments: cases)
  func broadcastShape(c: Case) {
    #expect(Broadcasting.shape(c.a, c.b) == c.result)
    #expect(Broadcasting.shape(c.b, c.a) == c.result, "broadcasting is symmetric")
  }

  static let reductions: [(source: [Int], target: [Int])] = [
    ([2, 3, 4], [4]), ([2, 3, 4], [3, 1]), ([2, 3, 4], [1]), ([2, 3, 4], []), ([2, 3, 4], [2, 1, 4]),
    ([2, 3, 4], [1, 3, 1]), ([2, 3, 4], [2, 3, 1]), ([2, 3, 4], [1, 1, 1]), ([2, 3, 4], [2, 3, 4]),
    ([5], [1]), ([3, 1, 2], [1, 2]), ([2, 3, 4], [1, 4]), ([2, 3, 4], [3, 4]), ([2, 3, 4], [1, 3, 4]),
  ]

  @Test(arguments: reductions)
  func sumToShapeMatchesDouble(source: [Int], target: [Int]) {
    let x = uniformTensor(source, seed: 41)
    let y = x.sum(toShape: target)
    #expect(y.shape == target)
    var expected = [Double](repeating: 0, count: Tensor.elementCount(target))
    for (flat, v) in x.doubles.enumerated() {
      expected[Dense.broadcastOffset(Dense.unravel(flat, source), into: target)] += v
    }
    expectClose(y, expected, "sum \(source) to \(target)")
    checkGradients("sum(toShape: \(target)) of \(source)", inputs: [x]) { $0[0].sum(toShape: target) }
  }

  @Test(arguments: reductions)
  func broadcastToMatchesDouble(source: [Int], target: [Int]) {
    // The reverse direction: `target` read as the smaller shape, broadcast up to `source`.
    let (small, large) = (target, source)
    let x = uniformTensor(small, seed: 42)
    let y = x.broadcast(to: large)
    #expect(y.shape == large)
    let xd = x.doubles
    let expected = (0..<Tensor.elementCount(large)).map {
      xd[Dense.broadcastOffset(Dense.unravel($0, large), into: small)]
    }
    expectClose(y, expected, "broadcast \(small) to \(large)")
    checkGradients("broadcast(to: \(large)) of \(small)", inputs: [x]) { $0[0].broadcast(to: large) }
  }

  @Test func sumToShapeAndBroadcastAreAdjoint() {
    // <broadcast(u), v> == <u, sum(toShape:)(v)> for any u and v.
    let u = uniformTensor([3, 1], seed: 43)
    let v = uniformTensor([2, 3, 4], seed: 44)
    let lhs = zip(u.broadcast(to: [2, 3, 4]).doubles, v.doubles).map { $0 * $1 }.reduce(0, +)
    let rhs = zip(u.doubles, v.sum(toShape: [3, 1]).doubles).map { $0 * $1 }.reduce(0, +)
    #expect(Swift.abs(lhs - rhs) <= 1e-5 * Swift.max(1, Swift.abs(lhs)))
  }

  @Test func sumOverLeadingAxesOfALargeTensor() {
    // The threaded column-sum path: [64, 700, 3] -> [3] in partial rows per thread.
    let x = uniformTensor([64, 700, 3], seed: 46)
    var expected = [Double](repeating: 0, count: 3)
    for (flat, v) in x.doubles.enumerated() { expected[flat % 3] += v }
    expectClose(x.sum(toShape: [3]), expected, tolerance: 1e-4, "sum [64, 700, 3] to [3]")
  }

  @Test func sameShapeIsTheIdentity() {
    let x = uniformTensor([2, 3], seed: 45)
    #expect(x.sum(toShape: [2, 3]).scalars == x.scalars)
    #expect(x.broadcast(to: [2, 3]).scalars == x.scalars)
  }

  /// The four arithmetic ops with broadcasting, value by value against the broadcasting rule
  /// computed in Double (each output element reads the operand elements its index maps to):
  /// a row repeated along leading axes on either side (the threaded row path, large enough to
  /// be split), a scalar, and a general case (the strided path).
  @Test(arguments: [
    ([64, 300, 6], [6]), ([6], [64, 300, 6]), ([8, 5, 6], [1, 1, 6]), ([5, 6], [8, 5, 6]),
    ([8, 5, 6], [5, 6]),
    ([4, 5], [1]), ([4, 1, 6], [5, 1]),
  ])
  func arithmeticMatchesTheBroadcastingRule(a aShape: [Int], b bShape: [Int]) throws {
    let shape = try #require(Broadcasting.shape(aShape, bShape))
    let a = uniformTensor(aShape, seed: 70)
    // Away from zero, for the division.
    let b = uniformTensor(bShape, seed: 71, low: 1, high: 3)
    let (ad, bd) = (a.doubles, b.doubles)
    func index(of flat: Int, in source: [Int]) -> Int {
      // The source element that output element `flat` reads: the trailing axes aligned, axes of
      // extent 1 held at 0.
      var (rest, offset, stride) = (flat, 0, 1)
      for axis in (0..<shape.count).reversed() {
        let coordinate = rest % shape[axis]
        rest /= shape[axis]
        let sourceAxis = axis - (shape.count - source.count)
        if sourceAxis >= 0 {
          offset += (source[sourceAxis] == 1 ? 0 : coordinate) * stride
          stride *= source[sourceAxis]
        }
      }
      return offset
    }
    let count = shape.reduce(1, *)
    let pairs = (0..<count).map { (ad[index(of: $0, in: aShape)], bd[index(of: $0, in: bShape)]) }
    let ops: [(String, (Tensor, Tensor) -> Tensor, (Double, Double) -> Double)] = [
      ("+", { $0 + $1 }, { $0 + $1 }), ("-", { $0 - $1 }, { $0 - $1 }),
      ("*", { $0 * $1 }, { $0 * $1 }), ("/", { $0 / $1 }, { $0 / $1 }),
    ]
    for (name, op, reference) in ops {
      let y = op(a, b)
      #expect(y.shape == shape, "\(aShape) \(name) \(bShape): shape \(y.shape)")
      expectClose(y, pairs.map(reference), tolerance: 1e-6, "\(aShape) \(name) \(bShape)")
    }
  }
}
