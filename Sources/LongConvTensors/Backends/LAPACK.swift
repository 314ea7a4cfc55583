import COpenBLAS

/// The few dense linear-algebra routines the compact converter needs, in Double, through
/// OpenBLAS's LAPACK (column-major, as Fortran). Matrices are passed column-major.
public enum LAPACK {
  /// Singular values and the leading left singular vectors of the `m x n` column-major `a`:
  /// returns `sigma` (descending, `min(m, n)` values) and `u` (`m x min(m, n)`, column-major).
  /// A wide `a` (`n > m`) is first reduced to its `m x m` triangle `L` (`a = L Q`, by a QR of
  /// `a^T`), which has the same singular values and left singular vectors; the right singular
  /// vectors are never formed (about half the time of a direct SVD at `m = 129, n = 383`).
  public static func svd(_ a: [Double], rows m: Int, columns n: Int) -> (sigma: [Double], u: [Double])? {
    guard n <= m else {
      // a^T (n x m) = Q R, so a = R^T Q^T and L = R^T.
      var transposed = [Double](repeating: 0, count: n * m)
      for j in 0..<n { for i in 0..<m { transposed[i * n + j] = a[j * m + i] } }
      var tau = [Double](repeating: 0, count: m)
      var (rr, cc, ld) = (Int32(n), Int32(m), Int32(n))
      var info: Int32 = 0
      var query = 0.0
      var lwork: Int32 = -1
      dgeqrf_(&rr, &cc, &transposed, &ld, &tau, &query, &lwork, &info)
      lwork = Int32(query)
      var work = [Double](repeating: 0, count: max(1, Int(lwork)))
      dgeqrf_(&rr, &cc, &transposed, &ld, &tau, &work, &lwork, &info)
      guard info == 0 else { return nil }
      var lower = [Double](repeating: 0, count: m * m)  // L = R^T, column-major
      for j in 0..<m { for i in j..<m { lower[j * m + i] = transposed[i * n + j] } }
      return svd(lower, rows: m, columns: m)
    }
    var a = a
    let k = min(m, n)
    var sigma = [Double](repeating: 0, count: k)
    var u = [Double](repeating: 0, count: m * k)
    var vt = [Double](repeating: 0, count: k * n)
    var iwork = [Int32](repeating: 0, count: 8 * k)
    var (mm, nn, lda, ldu, ldvt) = (Int32(m), Int32(n), Int32(m), Int32(m), Int32(k))
    var info: Int32 = 0
    var job = Int8(UInt8(ascii: "S"))
    var query = 0.0
    var lwork: Int32 = -1
    dgesdd_(&job, &mm, &nn, &a, &lda, &sigma, &u, &ldu, &vt, &ldvt, &query, &lwork, &iwork, &info)
    lwork = Int32(query)
    var work = [Double](repeating: 0, count: Int(lwork))
    dgesdd_(&job, &mm, &nn, &a, &lda, &sigma, &u, &ldu, &vt, &ldvt, &work, &lwork, &iwork, &info)
    return info == 0 ? (sigma, u) : nil
  }

  /// Least-squares solution `x` (`n x nrhs`, column-major) of `a x = b` for a full-rank
  /// `m x n` `a` with `m >= n` (QR), `b` being `m x nrhs`.
  public static func leastSquares(
    _ a: [Double], rows m: Int, columns n: Int, _ b: [Double], rightHandSides nrhs: Int
  )
    -> [Double]?
  {
    precondition(m >= n && a.count == m * n && b.count == m * nrhs)
    var a = a
    var b = b
    var (mm, nn, nr, lda, ldb) = (Int32(m), Int32(n), Int32(nrhs), Int32(m), Int32(m))
    var info: Int32 = 0
    var trans = Int8(UInt8(ascii: "N"))
    var query = 0.0
    var lwork: Int32 = -1
    dgels_(&trans, &mm, &nn, &nr, &a, &lda, &b, &ldb, &query, &lwork, &info)
    lwork = Int32(query)
    var work = [Double](repeating: 0, count: Int(lwork))
    dgels_(&trans, &mm, &nn, &nr, &a, &lda, &b, &ldb, &work, &lwork, &info)
    guard info == 0 else { return nil }
    var x = [Double](repeating: 0, count: n * nrhs)
    for j in 0..<nrhs { for i in 0..<n { x[j * n + i] = b[j * m + i] } }
    return x
  }

  /// Eigenvalues of the `n x n` column-major real `a`, as (real, imaginary) parts.
  public static func eigenvalues(_ a: [Double], order n: Int) -> (re: [Double], im: [Double])? {
    var a = a
    var wr = [Double](repeating: 0, count: n)
    var wi = wr
    var nn = Int32(n)
    var lda = Int32(n)
    var one: Int32 = 1
    var other: Int32 = 1
    var info: Int32 = 0
    var no = Int8(UInt8(ascii: "N"))
    var left = 0.0
    var right = 0.0
    var query = 0.0
    var lwork: Int32 = -1
    dgeev_(&no, &no, &nn, &a, &lda, &wr, &wi, &left, &one, &right, &other, &query, &lwork, &info)
    lwork = Int32(query)
    var work = [Double](repeating: 0, count: Int(lwork))
    dgeev_(&no, &no, &nn, &a, &lda, &wr, &wi, &left, &one, &right, &other, &work, &lwork, &info)
    return info == 0 ? (wr, wi) : nil
  }
}
