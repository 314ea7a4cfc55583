import CFFTW
import Foundation

/// Batched real DFTs in Double through FFTW's double-precision library (conversion math is
/// done in Double). FFTW's planner is not thread-safe, so planning and plan destruction take
/// a lock; execution does not.
public enum DoubleFFT {
  private static let planner = NSLock()

  /// Half spectra of `rows` real rows of length `m` (row-major in `x`):
  /// `X[row][s] = sum_k x[row][k] exp(-2 pi i s k / m)` for `s = 0 ... m / 2`.
  public static func forward(_ x: [Double], rows: Int, length m: Int) -> (re: [Double], im: [Double]) {
    precondition(x.count == rows * m && m >= 1)
    let half = m / 2 + 1
    return transform(
      rows: rows, length: m,
      plan: { real, complex, size in
        fftw_plan_many_dft_r2c(
          1, size, Int32(rows), real, nil, 1, Int32(m), complex, nil, 1, Int32(half), UInt32(FFTW_ESTIMATE))
      },
      fill: { real, _ in x.withUnsafeBufferPointer { real.update(from: $0.baseAddress!, count: rows * m) } },
      read: { _, complex in
        var re = [Double](repeating: 0, count: rows * half)
        var im = re
        for i in 0..<rows * half { (re[i], im[i]) = complex[i] }
        return (re, im)
      })
  }

  /// The real rows of length `m` whose half spectra are given, unnormalised:
  /// `x[row][k] = sum over the full Hermitian spectrum X[row][s] exp(+2 pi i s k / m)`.
  public static func inverse(re: [Double], im: [Double], rows: Int, length m: Int) -> [Double] {
    let half = m / 2 + 1
    precondition(re.count == rows * half && im.count == rows * half)
    return transform(
      rows: rows, length: m,
      plan: { real, complex, size in
        fftw_plan_many_dft_c2r(
          1, size, Int32(rows), complex, nil, 1, Int32(half), real, nil, 1, Int32(m), UInt32(FFTW_ESTIMATE))
      },
      fill: { _, complex in for i in 0..<rows * half { complex[i] = (re[i], im[i]) } },
      read: { real, _ in Array(UnsafeBufferPointer(start: real, count: rows * m)) })
  }

  /// One batched transform between `rows` real rows of length `m` and their half spectra: FFTW
  /// buffers, a plan made under the lock before `fill` (FFTW_ESTIMATE leaves the arrays alone,
  /// but a c2r plan's execution overwrites its input), executed once, then `read`.
  private static func transform<Result>(
    rows: Int, length m: Int,
    plan makePlan: (
      UnsafeMutablePointer<Double>, UnsafeMutablePointer<fftw_complex>, UnsafeMutablePointer<Int32>
    ) -> fftw_plan?,
    fill: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<fftw_complex>) -> Void,
    read: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<fftw_complex>) -> Result
  ) -> Result {
    let real = fftw_alloc_real(rows * m)!
    let complex = fftw_alloc_complex(rows * (m / 2 + 1))!
    defer {
      fftw_free(real)
      fftw_free(complex)
    }
    let plan = planner.withLock {
      var size = Int32(m)
      return makePlan(real, complex, &size)
    }
    fill(real, complex)
    fftw_execute(plan)
    planner.withLock { fftw_destroy_plan(plan) }
    return read(real, complex)
  }
}
