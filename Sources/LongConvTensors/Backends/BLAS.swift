import CMatrixKernels
import COpenBLAS
import Dispatch
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

  /// `C = alpha * op(A) op(B) + beta * C` with `op(A)` of shape `[m, k]` and `op(B)` of shape
  /// `[k, n]`, plus `bias` (`n` values, or `nil`) in every row of `C`; `rowSumsOfA` (`m`
  /// values, or `nil`) receives the sums of op(A)'s rows (for a weight gradient `g^T x`, the
  /// bias gradient: the own kernels add each block up while it is in cache).
  ///
  /// The own kernels add the bias as they store each tile; for OpenBLAS it is written into `C`
  /// first and the product added onto it (`beta = 1`, so `bias` requires `beta == 0`).
  static func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, beta: Float = 0, c: UnsafeMutablePointer<Float>,
    bias: UnsafePointer<Float>? = nil, rowSumsOfA: UnsafeMutablePointer<Float>? = nil
  ) {
    precondition(bias == nil || beta == 0, "BLAS.sgemm: a bias with beta \(beta)")
    if m == 0 { return }
    if n == 0 || k == 0, let rowSumsOfA {
      rowSums(transposeA: transposeA, m: m, k: k, a: a, into: rowSumsOfA)
    }
    if n == 0 { return }
    if k == 0 {
      if let bias {
        Tensor.fillRows(c, rows: m, with: bias, columns: n)
      } else if beta == 0 {
        c.update(repeating: 0, count: m * n)
      }
      return
    }
    if m > 1 && m * n * k >= ownKernelProduct
      && (usesOwnKernels || (usesOwnKernelsForFusedProducts && (bias != nil || transposeA)))
    {
      ownProduct(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, b: b,
        beta: beta, c: c, bias: bias, rowSumsOfA: rowSumsOfA)
      return
    }
    if let rowSumsOfA { rowSums(transposeA: transposeA, m: m, k: k, a: a, into: rowSumsOfA) }
    if let bias { Tensor.fillRows(c, rows: m, with: bias, columns: n) }
    openBLASProduct(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, b: b,
      beta: bias == nil ? beta : 1, c: c)
  }

  /// The product in OpenBLAS: on one of its threads when small, split over the toolkit's
  /// threads when thin (``splitOperandLimit``), on all of its threads otherwise; `sgemv` for a
  /// single row.
  static func openBLASProduct(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>
  ) {
    if m > 1, m * n * k >= smallProduct, ComputeThreads.count > 1,
      (m >= n ? n : m) * k <= splitOperandLimit
    {
      // A thin product: OpenBLAS's threads would share the packing of a small operand and
      // synchronise for it; each part of C on one OpenBLAS thread instead (packing the small
      // operand twice) is faster (Hyena recall step, products of depth 64: 65.2-66.4 -> 60.9-61.1
      // ms in three interleaved pairs; TNN and S4D steps unchanged).
      useThreads(1)
      splitOverThreads(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, b: b, c: c) {
        rows, columns, a, lda, b, ldb, c, _, _ in
        cblas_sgemm(
          CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
          Int32(rows), Int32(columns), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(n))
      }
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

  /// The `m` sums over the depth of op(A)'s rows into `sums` (column sums of a transposed A).
  static func rowSums(
    transposeA: Bool, m: Int, k: Int, a: UnsafePointer<Float>, into sums: UnsafeMutablePointer<Float>
  ) {
    if transposeA {
      let columnSums = Tensor.columnSums(a, rows: k, columns: m)
      sums.update(from: columnSums.base, count: m)
    } else {
      for i in 0..<m { sums[i] = (0..<k).reduce(0) { $0 + a[i * k + $1] } }
    }
  }

  /// The vector width in bits of the widest own product kernels the CPU runs: 512 (AVX-512F),
  /// 256 (AVX2 with FMA), or 0 (none).
  static let ownKernelBits: Int = bits(of: lck_sgemm_widest_isa())

  /// Whether the CPU runs any of the toolkit's own product kernels.
  static var ownKernelsAvailable: Bool { ownKernelBits > 0 }

  static func bits(of isa: lck_isa) -> Int {
    switch isa {
    case LCK_ISA_AVX512: 512
    case LCK_ISA_AVX2: 256
    default: 0
    }
  }

  /// Products with at least this many multiply-adds run in the toolkit's own kernels when
  /// ``usesOwnKernels``; smaller ones gain nothing from them.
  static let ownKernelProduct = 1 << 20

  /// Whether large products run in the toolkit's own kernels (`lck_sgemm`) rather than
  /// OpenBLAS: decided by
  /// ``prefersOwnKernels(openBLASCore:ownKernelBits:override:cpuVendor:productClass:)`` from the
  /// kernel set OpenBLAS really runs (`openblas_get_corename()`), whatever made it choose that
  /// set (its CPU detection, which falls back to SSE3 "Prescott" kernels on CPUs it does not
  /// know, or `OPENBLAS_CORETYPE`).
  static let usesOwnKernels: Bool = prefersOwnKernels(
    openBLASCore: openBLASCore, ownKernelBits: ownKernelBits, override: gemmOverride)

  /// Whether the large products that the own kernels run with one pass over memory fewer than
  /// OpenBLAS run in them: those with a bias (added as each tile is stored, where OpenBLAS
  /// reads back a C filled with it first) or a transposed A (read in place, where OpenBLAS
  /// packs it). Decided by
  /// ``prefersOwnKernels(openBLASCore:ownKernelBits:override:cpuVendor:productClass:)`` for
  /// ``ProductClass/fused``.
  static let usesOwnKernelsForFusedProducts: Bool = prefersOwnKernels(
    openBLASCore: openBLASCore, ownKernelBits: ownKernelBits, override: gemmOverride, productClass: .fused)

  /// The kernel set OpenBLAS runs, as it names it.
  static let openBLASCore = openblas_get_corename().map { String(cString: $0) } ?? "unknown"

  /// The two classes of products the choice is made for.
  enum ProductClass {
    /// One the own kernels run as OpenBLAS does.
    case plain
    /// One the own kernels run with one pass over memory fewer (a bias, a transposed A).
    case fused
  }

  /// `LONGCONV_GEMM`, read once.
  static let gemmOverride = getenv("LONGCONV_GEMM").map { String(cString: $0) }

  /// OpenBLAS core names whose SGEMM uses AVX-512 (as fast as ours: SGEMM 1024^3 on one
  /// thread, OpenBLAS's Cooperlake kernels 192 GFLOP/s, ours 200, its Haswell (AVX2) kernels
  /// 110, its Prescott (SSE3) kernels about 37).
  static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]
  /// OpenBLAS core names whose SGEMM uses AVX2 with FMA.
  static let avx2Cores: Set<String> = ["haswell", "zen"]

  /// The vector width in bits of the SGEMM kernels of an OpenBLAS core: 512, 256, or 128 for
  /// every other name (SSE kernels; Sandybridge's AVX without FMA; names it does not list).
  static func openBLASBits(core: String) -> Int {
    let name = core.lowercased()
    return avx512Cores.contains(name) ? 512 : avx2Cores.contains(name) ? 256 : 128
  }

  /// Our kernels when they are wider than the ones OpenBLAS runs; when as wide, for a
  /// ``ProductClass/fused`` product, and for every product when OpenBLAS's kernels were written
  /// for another vendor's cores (its AVX-512 kernels are Intel's: Skylake-X, Cooper Lake,
  /// Sapphire Rapids); OpenBLAS otherwise. Measured on an AMD Zen 4 beside OpenBLAS's Cooperlake
  /// kernels, four interleaved rounds (Benchmarks/RESULTS.md, sixth session): TNN step 813 ms
  /// all OpenBLAS, 810 with the fused products ours, 776 with every product ours; Hyena step
  /// 69 / 59.0 / 59.3 (noisy; 59.4 / 57.7 all OpenBLAS / all ours in another four).
  ///
  /// `override` is `LONGCONV_GEMM`: `openblas` keeps every product in OpenBLAS; `own` uses our
  /// widest kernels, `own-avx512` or `own-avx2` those, whenever the CPU runs them (a width it
  /// does not run leaves the choice to the rule).
  static func prefersOwnKernels(
    openBLASCore: String, ownKernelBits: Int, override: String?, cpuVendor: String = cpuVendor,
    productClass: ProductClass = .plain
  ) -> Bool {
    guard ownKernelBits > 0, override != "openblas" else { return false }
    if let bits = requestedBits(override, ownKernelBits: ownKernelBits), bits <= ownKernelBits { return true }
    let theirs = openBLASBits(core: openBLASCore)
    if ownKernelBits != theirs { return ownKernelBits > theirs }
    return productClass == .fused || (theirs == 512 && cpuVendor != "GenuineIntel")
  }

  /// `cpuid`'s vendor string of this CPU.
  static let cpuVendor = String(cString: lck_cpu_vendor())

  /// The width `LONGCONV_GEMM` asks the own kernels for (`nil` for other values).
  static func requestedBits(_ override: String?, ownKernelBits: Int) -> Int? {
    switch override {
    case "own": ownKernelBits
    case "own-avx512": 512
    case "own-avx2": 256
    default: nil
    }
  }

  /// The width of the own kernels large products run in when ``usesOwnKernels``: the widest the
  /// CPU runs, or a narrower one `LONGCONV_GEMM` asks for.
  static let ownKernelBitsInUse: Int = {
    let asked = requestedBits(
      gemmOverride, ownKernelBits: ownKernelBits)
    return asked.map { $0 <= ownKernelBits ? $0 : ownKernelBits } ?? ownKernelBits
  }()

  /// Products in which the operand that every thread packs whole when C is split over threads
  /// (op(B) for a split of the rows, op(A) for a split of the columns) has at most this many
  /// values run as one single-threaded OpenBLAS product per part of C.
  static let splitOperandLimit = 1 << 18

  /// `lck_sgemm` split over threads (``splitOverThreads``).
  /// `bits` picks the kernels (512: AVX-512, 256: AVX2), the widest the CPU has by default.
  static func ownProduct(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>,
    bias: UnsafePointer<Float>? = nil, rowSumsOfA: UnsafeMutablePointer<Float>? = nil,
    bits: Int = ownKernelBitsInUse
  ) {
    precondition(bits == 512 || bits == 256, "BLAS.ownProduct: no \(bits)-bit kernels")
    let isa = bits == 512 ? LCK_ISA_AVX512 : LCK_ISA_AVX2
    let sharedBias = bias.map { UncheckedBox($0) }
    let sums = rowSumsOfA.map { SendablePointer($0) }
    splitOverThreads(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, b: b, c: c) {
      rows, columns, a, lda, b, ldb, c, firstRow, firstColumn in
      // Split by columns, every part has all of A's rows: the first one sums them.
      lck_sgemm(
        isa, transposeA ? 1 : 0, transposeB ? 1 : 0, rows, columns, k, alpha, a, lda, b, ldb, beta, c, n,
        sharedBias.map { $0.value + firstColumn }, firstColumn == 0 ? sums.map { $0.base + firstRow } : nil)
    }
  }

  /// Runs `part(rows, columns, a, lda, b, ldb, c, firstRow, firstColumn)` for the parts of C
  /// split over up to ``ComputeThreads/count`` threads: its rows (or its columns, when there are
  /// more), at least 64 per part, with the matching rows of op(A) (or columns of op(B)), C's row
  /// stride `n`, and the indices of the part's first row and column in C.
  static func splitOverThreads(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>,
    b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>,
    _ part:
      @Sendable (
        _ rows: Int, _ columns: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>,
        _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ firstRow: Int, _ firstColumn: Int
      ) -> Void
  ) {
    let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
    let splitRows = m >= n
    let tasks = max(1, min(ComputeThreads.count, (splitRows ? m : n) / 64))
    let (pa, pb, pc) = (UncheckedBox(a), UncheckedBox(b), SendablePointer(c))
    DispatchQueue.concurrentPerform(iterations: tasks) { t in
      if splitRows {
        let (lower, upper) = (m * t / tasks, m * (t + 1) / tasks)
        part(
          upper - lower, n, transposeA ? pa.value + lower : pa.value + lower * lda, lda, pb.value, ldb,
          pc.base + lower * n, lower, 0)
      } else {
        let (lower, upper) = (n * t / tasks, n * (t + 1) / tasks)
        part(
          m, upper - lower, pa.value, lda, transposeB ? pb.value + lower * ldb : pb.value + lower, ldb,
          pc.base + lower, 0, lower)
      }
    }
  }
}

/// Which code runs the large matrix products (see `BLAS.usesOwnKernels`).
public enum MatrixProductBackend {
  /// `"own-avx512"` or `"own-avx2"` (the toolkit's kernels), `"openblas"`, or
  /// `"openblas+own-avx512"` (`"openblas+own-avx2"`): OpenBLAS, but for the products with a bias
  /// or a transposed left operand, which the own kernels run with one pass over memory fewer.
  public static var name: String {
    let own = BLAS.ownKernelBitsInUse == 512 ? "own-avx512" : "own-avx2"
    if BLAS.usesOwnKernels { return own }
    return BLAS.usesOwnKernelsForFusedProducts ? "openblas+" + own : "openblas"
  }
}
