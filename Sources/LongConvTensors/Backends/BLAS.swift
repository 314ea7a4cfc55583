import COpenBLAS
import Glibc
import Synchronization

/// Thin wrappers over cblas, row-major.
enum BLAS {
  /// Products with fewer multiply-adds than this run on one OpenBLAS thread. Split across
  /// threads they finish too fast to pay for the hand-off, and OpenBLAS's idle workers then
  /// spin against the toolkit's own FFT workers (measured: TNN operator fwd+bwd at L = 512
  /// went from about 12.5 ms to 9 ms).
  static let smallProduct = 1 << 22
  /// The thread count last given to OpenBLAS, so it is set only on a change.
  static let threads = Atomic<Int>(0)

  static func useThreads(_ n: Int) {
    _ = idleWorkersSleep
    if threads.exchange(n, ordering: .relaxed) != n { openblas_set_num_threads(Int32(n)) }
  }

  /// How long OpenBLAS's idle workers spin before they sleep, as `2^x` CPU cycles (its
  /// `OPENBLAS_THREAD_TIMEOUT`; OpenBLAS's own default is 28, about a tenth of a second).
  static let idleSpinCycles = 16

  /// Makes OpenBLAS's idle workers sleep after about `2^idleSpinCycles` cycles instead of
  /// spinning in `sched_yield` for ~0.1 s after every threaded product. Between products the
  /// toolkit runs its own workers (element-wise ops, FFTs); on few cores the spinning workers
  /// took their time slices (a quarter of a training step's CPU time was `sched_yield`;
  /// measured: step 940 -> 866 ms). Runs once, before the first product.
  ///
  /// OpenBLAS reads the timeout only when it starts its workers, so this sets the variable
  /// and stops the workers; the next threaded product starts them again with the new value.
  /// A timeout the user set in the environment is kept. Both functions are looked up at run
  /// time: a build of OpenBLAS without them (OpenMP) is left as it is.
  static let idleWorkersSleep: Void = {
    guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil,
      let shutdown = dlsym(nil, "blas_thread_shutdown_")
    else { return }
    setenv("OPENBLAS_THREAD_TIMEOUT", "\(idleSpinCycles)", 0)
    if let readEnvironment = dlsym(nil, "openblas_read_env") {
      unsafeBitCast(readEnvironment, to: (@convention(c) () -> Void).self)()
    }
    _ = unsafeBitCast(shutdown, to: (@convention(c) () -> Int32).self)()
  }()

  /// `C = alpha * op(A) op(B) + beta * C` with `op(A)` of shape `[m, k]` and `op(B)` of shape `[k, n]`.
  static func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, beta: Float = 0, c: UnsafeMutablePointer<Float>
  ) {
    if m == 0 || n == 0 { return }
    if k == 0 {
      if beta == 0 { c.update(repeating: 0, count: m * n) }
      return
    }
    useThreads(m * n * k < smallProduct ? 1 : ComputeThreads.count)
    if m == 1 {
      // A row vector (one token at a time): sgemv reads B once, where sgemm first packs all
      // of it (the packing took 60% of a recurrent decoding step's products). op(A) is `k`
      // contiguous values whether A is transposed or not.
      cblas_sgemv(
        CblasRowMajor, transposeB ? CblasNoTrans : CblasTrans, Int32(transposeB ? n : k),
        Int32(transposeB ? k : n), alpha, b, Int32(transposeB ? k : n), a, 1, beta, c, 1)
      return
    }
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
      Int32(m), Int32(n), Int32(k), alpha, a, Int32(transposeA ? m : k), b, Int32(transposeB ? k : n),
      beta, c, Int32(n))
  }
}
