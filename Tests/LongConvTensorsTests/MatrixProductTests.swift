import LongConvTensors
import LongConvTestSupport
import Testing

/// `matmul` against a dense product in Double: both transposes, folded leading axes, batches.
@Suite struct MatrixProductTests {
  /// `op(A) op(B)` per batch entry in Double, where `A` is stored `[batch, m, k]` (or
  /// `[batch, k, m]` transposed) and `B` `[batch, k, n]` (or `[batch, n, k]`); a batch
  /// of `B` of 1 is shared by every entry of `A`.
  func reference(
    _ ad: [Double], _ bd: [Double], batch: Int, bBatch: Int, m: Int, k: Int, n: Int, transposeA: Bool,
    transposeB: Bool
  ) -> [Double] {
    var out: [Double] = []
    for i in 0..<batch {
      let aBlock = Array(ad[i * m * k..<(i + 1) * m * k])
      let j = bBatch == 1 ? 0 : i
      let bBlock = Array(bd[j * k * n..<(j + 1) * k * n])
      let opA = transposeA ? Dense.transpose(aBlock, rows: k, columns: m) : aBlock
      let opB = transposeB ? Dense.transpose(bBlock, rows: n, columns: k) : bBlock
      out += Dense.matmul(opA, opB, m: m, k: k, n: n)
    }
    return out
  }

  /// Expects `y` to be the product within rounding: each entry within `4 sqrt(k) sum_p |a_ip||b_pj| u`
  /// of the Double product (see `expectProductClose`).
  func expectProduct(
    _ y: Tensor, _ a: Tensor, _ b: Tensor, batch: Int, bBatch: Int, m: Int, k: Int, n: Int,
    transposeA: Bool = false, transposeB: Bool = false, _ label: String,
    sourceLocation: SourceLocation = #_sourceLocation
  ) {
    func product(_ a: [Double], _ b: [Double]) -> [Double] {
      reference(
        a, b, batch: batch, bBatch: bBatch, m: m, k: k, n: n, transposeA: transposeA, transposeB: transposeB)
    }
    expectProductClose(
      y.doubles, product(a.doubles, b.doubles), magnitudes: product(a.doubles.map(abs), b.doubles.map(abs)),
      depth: k, label, sourceLocation: sourceLocation)
  }

  static let transposes: [(Bool, Bool)] = [(false, false), (true, false), (false, true), (true, true)]

  @Test(arguments: transposes)
  func matrixTimesMatrix(transposeA: Bool, transposeB: Bool) {
    let (m, k, n) = (3, 4, 5)
    let a = uniformTensor(transposeA ? [k, m] : [m, k], seed: 51)
    let b = uniformTensor(transposeB ? [n, k] : [k, n], seed: 52)
    let y = a.matmul(b, transposeA: transposeA, transposeB: transposeB)
    #expect(y.shape == [m, n])
    let label = "[\(m),\(k)]x[\(k),\(n)] transposeA=\(transposeA) transposeB=\(transposeB)"
    expectProduct(
      y, a, b, batch: 1, bBatch: 1, m: m, k: k, n: n, transposeA: transposeA, transposeB: transposeB, label)
    checkGradients("matmul \(label)", inputs: [a, b]) {
      $0[0].matmul($0[1], transposeA: transposeA, transposeB: transposeB)
    }
  }

  @Test(arguments: [false, true])
  func leadingAxesFoldIntoRows(transposeB: Bool) {
    // [2, 3, 4] x [4, 5] -> [2, 3, 5], as a linear layer applies to every position.
    let (m, k, n) = (3, 4, 5)
    let a = uniformTensor([2, m, k], seed: 53)
    let b = uniformTensor(transposeB ? [n, k] : [k, n], seed: 54)
    let y = a.matmul(b, transposeB: transposeB)
    #expect(y.shape == [2, m, n])
    let label = "[2,\(m),\(k)]x[\(k),\(n)] transposeB=\(transposeB)"
    expectProduct(y, a, b, batch: 2, bBatch: 1, m: m, k: k, n: n, transposeB: transposeB, label)
    checkGradients("matmul \(label)", inputs: [a, b]) { $0[0].matmul($0[1], transposeB: transposeB) }
  }

  @Test func fourLeadingAxesFold() {
    let a = uniformTensor([2, 2, 3, 4], seed: 55)
    let b = uniformTensor([4, 2], seed: 56)
    let y = a.matmul(b)
    #expect(y.shape == [2, 2, 3, 2])
    expectProduct(y, a, b, batch: 4, bBatch: 1, m: 3, k: 4, n: 2, "rank 4")
    checkGradients("matmul rank 4 x rank 2", inputs: [a, b]) { $0[0].matmul($0[1]) }
  }

  @Test(arguments: transposes)
  func batchedProduct(transposeA: Bool, transposeB: Bool) {
    let (batch, m, k, n) = (2, 3, 4, 2)
    let a = uniformTensor(transposeA ? [batch, k, m] : [batch, m, k], seed: 57)
    let b = uniformTensor(transposeB ? [batch, n, k] : [batch, k, n], seed: 58)
    let y = a.matmul(b, transposeA: transposeA, transposeB: transposeB)
    #expect(y.shape == [batch, m, n])
    let label = "batched transposeA=\(transposeA) transposeB=\(transposeB)"
    expectProduct(
      y, a, b, batch: batch, bBatch: batch, m: m, k: k, n: n, transposeA: transposeA, transposeB: transposeB,
      label)
    checkGradients("matmul \(label)", inputs: [a, b]) {
      $0[0].matmul($0[1], transposeA: transposeA, transposeB: transposeB)
    }
  }

  @Test func batchedWithTwoBatchAxes() {
    let a = uniformTensor([2, 2, 3, 2], seed: 59)
    let b = uniformTensor([2, 2, 2, 3], seed: 60)
    let y = a.matmul(b)
    #expect(y.shape == [2, 2, 3, 3])
    expectProduct(y, a, b, batch: 4, bBatch: 4, m: 3, k: 2, n: 3, "[2,2] batch")
    checkGradients("matmul [2,2] batch", inputs: [a, b]) { $0[0].matmul($0[1]) }
  }

  @Test func gradientWithOneConstantOperand() {
    let a = uniformTensor([2, 3, 4], seed: 61)
    let b = uniformTensor([4, 5], seed: 62)
    checkGradients("matmul wrt a only", inputs: [a, b], wrt: [0]) { $0[0].matmul($0[1]) }
    checkGradients("matmul wrt b only", inputs: [a, b], wrt: [1]) { $0[0].matmul($0[1]) }
  }

  /// Deep products, where a bound growing with `k` would hide a lost block of the sum.
  @Test(arguments: [(7, 300, 5), (3, 1000, 17), (33, 2049, 2)])
  func deepProducts(m: Int, k: Int, n: Int) {
    let a = uniformTensor([m, k], seed: 63)
    let b = uniformTensor([k, n], seed: 64)
    expectProduct(a.matmul(b), a, b, batch: 1, bBatch: 1, m: m, k: k, n: n, "[\(m),\(k)]x[\(k),\(n)]")
    let bt = uniformTensor([n, k], seed: 65)
    expectProduct(
      a.matmul(bt, transposeB: true), a, bt, batch: 1, bBatch: 1, m: m, k: k, n: n, transposeB: true,
      "[\(m),\(k)]x[\(n),\(k)]^T")
  }

  @Test func emptyInnerDimensionGivesZeros() {
    let a = Tensor.zeros([3, 0])
    let b = Tensor.zeros([0, 2])
    let y = a.matmul(b)
    #expect(y.shape == [3, 2])
    #expect(y.scalars == [Float](repeating: 0, count: 6))
  }
}
