import LongConvTensors
import LongConvTestSupport
import Testing

/// Reshapes, permutations, slices, concatenation, flips and row gathers: values by index
/// arithmetic, gradients by finite differences.
@Suite struct ShapeOpsTests {
  static let shape = [2, 3, 4]

  @Test func reshapedKeepsScalarsAndInfersOneExtent() {
    let x = uniformTensor(Self.shape, seed: 81)
    for (target, resolved) in [
      ([6, -1], [6, 4]), ([-1], [24]), ([4, -1, 2], [4, 3, 2]), ([24, 1], [24, 1]),
    ] {
      let y = x.reshaped(target)
      #expect(y.shape == resolved, "reshaped(\(target))")
      #expect(y.scalars == x.scalars, "reshaped(\(target))")
      #expect(y.storage === x.storage, "a reshape is a view")
    }
    checkGradients("reshaped([6, -1])", inputs: [x]) { $0[0].reshaped([6, -1]) }
    checkGradients("reshaped to scalar and back", inputs: [uniformTensor([1], seed: 82)]) {
      $0[0].reshaped([]).reshaped([1, 1])
    }
  }

  /// `out[i_0, ..., i_r] = x[j]` with `j[order[a]] = i_a`.
  func permutedReference(_ x: Tensor, _ order: [Int]) -> [Double] {
    let xd = x.doubles
    let outShape = order.map { x.shape[$0] }
    return (0..<x.count).map { flat in
      let out = Dense.unravel(flat, outShape)
      var source = [Int](repeating: 0, count: x.rank)
      for (a, o) in order.enumerated() { source[o] = out[a] }
      return xd[Dense.ravel(source, x.shape)]
    }
  }

  @Test(arguments: [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
  func permutedMatchesIndexArithmetic(order: [Int]) {
    let x = uniformTensor(Self.shape, seed: 83)
    let y = x.permuted(order)
    #expect(y.shape == order.map { Self.shape[$0] })
    expectClose(y, permutedReference(x, order), tolerance: 0, "permuted(\(order))")
    checkGradients("permuted(\(order))", inputs: [x]) { $0[0].permuted(order) }
  }

  @Test func permutedRankFour() {
    let x = uniformTensor([2, 1, 3, 2], seed: 84)
    let order = [3, 0, 2, 1]
    expectClose(x.permuted(order), permutedReference(x, order), tolerance: 0, "rank 4")
    checkGradients("permuted rank 4", inputs: [x]) { $0[0].permuted(order) }
  }

  @Test func transposedSwapsTwoAxes() {
    let x = uniformTensor(Self.shape, seed: 85)
    let last = x.transposed()
    #expect(last.shape == [2, 4, 3])
    expectClose(last, permutedReference(x, [0, 2, 1]), tolerance: 0, "transposed()")
    let outer = x.transposed(0, 2)
    #expect(outer.shape == [4, 3, 2])
    expectClose(outer, permutedReference(x, [2, 1, 0]), tolerance: 0, "transposed(0, 2)")
    expectClose(x.transposed(-3, -2), permutedReference(x, [1, 0, 2]), tolerance: 0, "transposed(-3, -2)")
    let matrix = uniformTensor([3, 5], seed: 86)
    expectClose(
      matrix.transposed(), Dense.transpose(matrix.doubles, rows: 3, columns: 5), tolerance: 0, "matrix")
    checkGradients("transposed()", inputs: [x]) { $0[0].transposed() }
    checkGradients("transposed(0, 2)", inputs: [x]) { $0[0].transposed(0, 2) }
  }

  static let slices: [(axis: Int, range: Range<Int>)] = [
    (0, 0..<1), (0, 1..<2), (0, 0..<2), (1, 1..<3), (1, 0..<1), (2, 1..<3), (2, 0..<4), (-1, 3..<4),
    (1, 2..<2),
  ]

  @Test(arguments: slices)
  func sliceMatchesIndexArithmetic(axis: Int, range: Range<Int>) {
    let x = uniformTensor(Self.shape, seed: 87)
    let a = axis < 0 ? axis + 3 : axis
    let y = x.slice(axis: axis, range)
    var outShape = Self.shape
    outShape[a] = range.count
    #expect(y.shape == outShape)
    let xd = x.doubles
    let expected = (0..<Tensor.elementCount(outShape)).map { flat -> Double in
      var index = Dense.unravel(flat, outShape)
      index[a] += range.lowerBound
      return xd[Dense.ravel(index, Self.shape)]
    }
    expectClose(y, expected, tolerance: 0, "slice(axis: \(axis), \(range))")
    // An empty slice reads nothing: its gradient is zero by design.
    checkGradients("slice(axis: \(axis), \(range))", inputs: [x], expectingZero: range.isEmpty ? [0] : []) {
      $0[0].slice(axis: axis, range)
    }
  }

  /// Several slices of one computed (not leaf) value: their gradients are put together when
  /// the value's own pullback runs (copied into place when they do not overlap, zeros around
  /// them; added onto zeros when they overlap or cut different axes; added onto the gradient of
  /// other uses of the value), against finite differences.
  @Test func slicesOfOneValueTakeTheirGradientsTogether() {
    let x = uniformTensor(Self.shape, seed: 89)
    func streams(_ u: Tensor) -> (Tensor, Tensor, Tensor) {
      (u.slice(axis: 2, 0..<1), u.slice(axis: 2, 1..<3), u.slice(axis: 2, 3..<4))
    }
    checkGradients("slices covering the last axis", inputs: [x]) {
      let (a, b, c) = streams($0[0] * $0[0])
      return a * c + b.sum(alongAxis: 2, keepingAxis: true)
    }
    checkGradients("covering slices and another use", inputs: [x]) {
      let u = $0[0] * $0[0]
      let (a, b, c) = streams(u)
      return a * c + b.sum(alongAxis: 2, keepingAxis: true) + u.sum(alongAxis: 2, keepingAxis: true)
    }
    checkGradients("slices with a gap", inputs: [x]) {
      let u = $0[0] * $0[0]
      return u.slice(axis: 2, 0..<1) * u.slice(axis: 2, 2..<3)
    }
    checkGradients("overlapping slices", inputs: [x]) {
      let u = $0[0] * $0[0]
      return u.slice(axis: 2, 0..<3).sum(alongAxis: 2, keepingAxis: true)
        * u.slice(axis: 2, 1..<4).sum(alongAxis: 2, keepingAxis: true)
    }
    checkGradients("slices of different axes", inputs: [x]) {
      let u = $0[0] * $0[0]
      return u.slice(axis: 1, 0..<2).sum(alongAxis: 1, keepingAxis: true)
        * u.slice(axis: 2, 1..<2).sum(alongAxis: 1, keepingAxis: true)
    }
  }

  @Test(arguments: [0, 1, 2, -1])
  func concatenateMatchesIndexArithmetic(axis: Int) {
    let a = axis < 0 ? axis + 3 : axis
    let extents = [1, 3, 2]
    let parts = extents.enumerated().map { i, e -> Tensor in
      var s = Self.shape
      s[a] = e
      return uniformTensor(s, seed: 88 + UInt64(i))
    }
    let y = Tensor.concatenate(parts, axis: axis)
    var outShape = Self.shape
    outShape[a] = extents.reduce(0, +)
    #expect(y.shape == outShape)
    let expected = (0..<Tensor.elementCount(outShape)).map { flat -> Double in
      var index = Dense.unravel(flat, outShape)
      var part = 0
      while index[a] >= extents[part] {
        index[a] -= extents[part]
        part += 1
      }
      return parts[part].doubles[Dense.ravel(index, parts[part].shape)]
    }
    expectClose(y, expected, tolerance: 0, "concatenate along \(axis)")
    checkGradients("concatenate along \(axis)", inputs: parts) { Tensor.concatenate($0, axis: axis) }
    checkGradients("concatenate along \(axis), middle part constant", inputs: parts, wrt: [0, 2]) {
      Tensor.concatenate($0, axis: axis)
    }
  }

  @Test func concatenateWithAConstantGivesItNoGradient() {
    let p = uniformTensor([2, 2], seed: 91).requiringGradient()
    let c = uniformTensor([1, 2], seed: 92)
    Tensor.concatenate([c, p], axis: 0).sum().backward()
    #expect(c.gradient == nil)
    #expect(p.gradient?.scalars == [1, 1, 1, 1])
  }

  @Test(arguments: [0, 1, 2, -1])
  func flippedReversesOneAxis(axis: Int) {
    let x = uniformTensor(Self.shape, seed: 93)
    let a = axis < 0 ? axis + 3 : axis
    let y = x.flipped(axis: axis)
    #expect(y.shape == Self.shape)
    let xd = x.doubles
    let expected = (0..<x.count).map { flat -> Double in
      var index = Dense.unravel(flat, Self.shape)
      index[a] = Self.shape[a] - 1 - index[a]
      return xd[Dense.ravel(index, Self.shape)]
    }
    expectClose(y, expected, tolerance: 0, "flipped(axis: \(axis))")
    expectClose(y.flipped(axis: axis), xd, tolerance: 0, "flipped twice")
    checkGradients("flipped(axis: \(axis))", inputs: [x]) { $0[0].flipped(axis: axis) }
  }

  @Test func gatherRowsWithRepeatedIndices() {
    let table = uniformTensor([5, 3], seed: 94)
    let indices = [4, 0, 4, 2, 4, 0]
    let y = table.gather(rows: indices, indexShape: [2, 3])
    #expect(y.shape == [2, 3, 3])
    let td = table.doubles
    let expected = indices.flatMap { row in (0..<3).map { td[row * 3 + $0] } }
    expectClose(y, expected, tolerance: 0, "gather(rows:)")
    #expect(table.gather(rows: indices).shape == [6, 3])

    // The scatter-add: each row's gradient is the sum of the output gradients that picked it.
    let p = table.requiringGradient()
    let w = uniformTensor([2, 3, 3], seed: 95)
    (p.gather(rows: indices, indexShape: [2, 3]) * w).sum().backward()
    var expectedGrad = [Double](repeating: 0, count: 15)
    let wd = w.doubles
    for (i, row) in indices.enumerated() {
      for j in 0..<3 { expectedGrad[row * 3 + j] += wd[i * 3 + j] }
    }
    expectClose(p.gradient!, expectedGrad, "gather(rows:) gradient")
    #expect(p.gradient!.scalars[3..<6].allSatisfy { $0 == 0 }, "row 1 is never picked")
    checkGradients("gather(rows:)", inputs: [table]) { $0[0].gather(rows: indices, indexShape: [2, 3]) }
  }
}
