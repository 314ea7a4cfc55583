import COpenBLAS
import Glibc
import LongConvTestSupport
import Testing

@testable import LongConvTensors

/// Every branch of the matrix-product backend choice, the process's own choice, and both
/// backends on products large enough to reach the choice, each within a rounding bound of the
/// product in Double.
@Suite struct MatrixProductBackendTests {
  /// Every decision: without own kernels on the CPU, OpenBLAS whatever else is said; with them,
  /// `LONGCONV_GEMM=openblas` or `own` decides, and any other value (or none) leaves the choice to
  /// the width of the core OpenBLAS runs (case-insensitive): the own kernels when they are wider
  /// (cores it does not name count as SSE).
  @Test(
    arguments: [
      // (core, own kernel bits, override, own kernels)
      ("SkylakeX", 512, nil, false), ("COOPERLAKE", 512, nil, false), ("sapphirerapids", 512, nil, false),
      ("Haswell", 512, nil, true), ("Prescott", 512, nil, true), ("Zen", 512, nil, true),
      ("skylake", 512, nil, true),  // not an OpenBLAS core with AVX2 kernels (SkylakeX is)
      ("Sandybridge", 512, nil, true), ("", 512, nil, true),
      ("Haswell", 512, "openblas", false), ("SkylakeX", 512, "own", true),
      ("Haswell", 512, "", true), ("SkylakeX", 512, "", false),
      ("Haswell", 512, "OWN", true), ("SkylakeX", 512, "OWN", false),  // not a recognised value
      ("Haswell", 512, "blas", true), ("SkylakeX", 512, "yes", false),
      // An AVX2 CPU: the own kernels only over OpenBLAS's SSE (or AVX without FMA) ones.
      ("Prescott", 256, nil, true), ("Sandybridge", 256, nil, true), ("Nehalem", 256, nil, true),
      ("unknown", 256, nil, true), ("Haswell", 256, nil, false), ("ZEN", 256, nil, false),
      ("SkylakeX", 256, nil, false), ("Haswell", 256, "own", true), ("Prescott", 256, "openblas", false),
      // A width asked for by name: taken when the CPU runs it, the rule otherwise.
      ("SkylakeX", 512, "own-avx2", true), ("SkylakeX", 512, "own-avx512", true),
      ("Haswell", 256, "own-avx512", false), ("Prescott", 256, "own-avx512", true),
      // No own kernels.
      ("Haswell", 0, nil, false), ("Prescott", 0, "own", false), ("SkylakeX", 0, "openblas", false),
    ] as [(String, Int, String?, Bool)])
  func decision(core: String, bits: Int, override: String?, own: Bool) {
    #expect(
      BLAS.prefersOwnKernels(openBLASCore: core, ownKernelBits: bits, override: override) == own,
      "core \(core), own kernels \(bits) bits, LONGCONV_GEMM \(override ?? "unset")")
  }

  /// The process's choice is the rule applied to this machine: OpenBLAS's reported core, the
  /// CPU's widest own kernels (from its `cpuid` flags as Linux lists them), and the environment.
  @Test func theProcessAppliesTheRule() throws {
    let core = try #require(openblas_get_corename().map { String(cString: $0) })
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    if let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) {
      let set = Set(flags.split(separator: " ").map(String.init))
      let expectedBits = set.contains("avx512f") ? 512 : set.contains("avx2") && set.contains("fma") ? 256 : 0
      #expect(BLAS.ownKernelBits == expectedBits, "lck_sgemm_widest_isa vs /proc/cpuinfo")
    }
    let override = getenv("LONGCONV_GEMM").map { String(cString: $0) }
    let expected = BLAS.prefersOwnKernels(
      openBLASCore: core, ownKernelBits: BLAS.ownKernelBits, override: override)
    #expect(BLAS.usesOwnKernels == expected)
    let asked = BLAS.requestedBits(override, ownKernelBits: BLAS.ownKernelBits)
    let bitsInUse = asked.map { $0 <= BLAS.ownKernelBits ? $0 : BLAS.ownKernelBits } ?? BLAS.ownKernelBits
    #expect(BLAS.ownKernelBitsInUse == bitsInUse)
    let name = expected ? (bitsInUse == 512 ? "own-avx512" : "own-avx2") : "openblas"
    #expect(MatrixProductBackend.name == name)
  }

  func values(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in generator.nextUniform() * 2 - 1 }
  }

  /// `|c - ab| <= gamma_k sum_p |a_ip| |b_pj|` with `gamma_k = k u / (1 - k u)`, `u = 2^-24`: the
  /// rounding bound of any order of summation in Float (fused or not), from the product in Double.
  func worstRatio(_ c: [Float], _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, tA: Bool, tB: Bool)
    -> Double
  {
    let u = 0x1p-24
    let gamma = Double(k) * u / (1 - Double(k) * u)
    let product = Dense.product(a, b, m: m, n: n, k: k, transposeA: tA, transposeB: tB)
    var worst = 0.0
    for (index, (sum, magnitude)) in zip(product.values, product.magnitudes).enumerated() {
      let ratio = abs(Double(c[index]) - sum) / (gamma * magnitude)
      if !ratio.isFinite { return .infinity }  // NaN would pass through max unnoticed
      worst = max(worst, ratio)
    }
    return worst
  }

  /// Products above the own kernels' threshold (`m n k >= 2^20`), every transpose: `BLAS.sgemm`
  /// (whichever backend the process chose), OpenBLAS's `cblas_sgemm` and the own kernels of
  /// every width the CPU runs, each within the rounding bound; `BLAS.sgemm` gives exactly what its chosen backend
  /// gives.
  @Test(arguments: [(96, 130, 100), (257, 33, 129)])
  func bothBackendsWithinTheRoundingBound(m: Int, n: Int, k: Int) {
    #expect(m * n * k >= BLAS.ownKernelProduct)
    for (tA, tB) in [(false, false), (true, false), (false, true), (true, true)] {
      let (a, b) = (values(m * k, seed: 7), values(k * n, seed: 8))
      let label = "\(m)x\(n)x\(k) tA \(tA) tB \(tB)"
      var chosen = [Float](repeating: .nan, count: m * n)
      chosen.withUnsafeMutableBufferPointer {
        BLAS.sgemm(transposeA: tA, transposeB: tB, m: m, n: n, k: k, a: a, b: b, c: $0.baseAddress!)
      }
      var openBLAS = [Float](repeating: .nan, count: m * n)
      BLAS.useThreads(ComputeThreads.count)
      cblas_sgemm(
        CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
        Int32(k), 1, a, Int32(tA ? m : k), b, Int32(tB ? k : n), 0, &openBLAS, Int32(n))
      let chosenRatio = worstRatio(chosen, a, b, m: m, n: n, k: k, tA: tA, tB: tB)
      let openRatio = worstRatio(openBLAS, a, b, m: m, n: n, k: k, tA: tA, tB: tB)
      #expect(chosenRatio <= 1, "\(label): BLAS.sgemm at \(chosenRatio) of the bound")
      #expect(openRatio <= 1, "\(label): cblas_sgemm at \(openRatio) of the bound")
      for bits in OwnMatrixProductTests.widths {
        var own = [Float](repeating: .nan, count: m * n)
        own.withUnsafeMutableBufferPointer {
          BLAS.ownProduct(
            transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0,
            c: $0.baseAddress!, bits: bits)
        }
        let ownRatio = worstRatio(own, a, b, m: m, n: n, k: k, tA: tA, tB: tB)
        #expect(ownRatio <= 1, "\(label): own \(bits)-bit kernels at \(ownRatio) of the bound")
        if BLAS.usesOwnKernels && bits == BLAS.ownKernelBitsInUse {
          #expect(chosen == own, "\(label): sgemm is not the own kernels' product")
        }
      }
      if !BLAS.usesOwnKernels { #expect(chosen == openBLAS, "\(label): sgemm is not OpenBLAS's product") }
    }
  }

  /// Thin products above the threading threshold (`m n k >= 2^22`, the operand every part
  /// packs whole at most ``BLAS/splitOperandLimit``) run as one single-threaded OpenBLAS product
  /// per part of C: split by rows and by columns, every transpose, with `alpha` and `beta`,
  /// within the rounding bound and equal to one threaded OpenBLAS call value for value (the
  /// parts sum every element in the same order).
  @Test(arguments: [(3000, 48, 64), (40, 2900, 72)])
  func thinProductsSplitOverThreads(m: Int, n: Int, k: Int) {
    #expect(m * n * k >= BLAS.smallProduct && (m >= n ? n : m) * k <= BLAS.splitOperandLimit)
    for (tA, tB) in [(false, false), (true, false), (false, true), (true, true)] {
      let (a, b) = (values(m * k, seed: 11), values(k * n, seed: 12))
      let start = values(m * n, seed: 13)
      let label = "\(m)x\(n)x\(k) tA \(tA) tB \(tB)"
      var split = start
      split.withUnsafeMutableBufferPointer {
        BLAS.openBLASProduct(
          transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0,
          c: $0.baseAddress!)
      }
      #expect(worstRatio(split, a, b, m: m, n: n, k: k, tA: tA, tB: tB) <= 1, "\(label): split at the bound")
      var threaded = start
      BLAS.useThreads(ComputeThreads.count)
      cblas_sgemm(
        CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
        Int32(k), 1, a, Int32(tA ? m : k), b, Int32(tB ? k : n), 0, &threaded, Int32(n))
      // A count, not the arrays: a failure message quoting 120,000 values takes minutes.
      let differing = zip(split, threaded).filter { $0 != $1 }.count
      #expect(differing == 0, "\(label): split differs from one OpenBLAS call at \(differing) values")

      // alpha and beta reach every part: C = 0.5 op(A) op(B) - 2 C.
      var scaled = start
      scaled.withUnsafeMutableBufferPointer {
        BLAS.openBLASProduct(
          transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 0.5, a: a, b: b, beta: -2,
          c: $0.baseAddress!)
      }
      let worst =
        (0..<(m * n)).map { i in
          let want = 0.5 * Double(split[i]) - 2 * Double(start[i])
          return Swift.abs(Double(scaled[i]) - want) / (Swift.abs(want) + 1)
        }.max() ?? 0
      #expect(worst <= 1e-5, "\(label): alpha and beta off by \(worst)")
    }
  }

  /// Below the threshold, and for a single row (`sgemv`), products stay in OpenBLAS whatever the
  /// choice; both within the rounding bound.
  @Test func smallProductsAndRowsStayInOpenBLAS() {
    for (m, n, k) in [(1, 700, 2000), (8, 9, 10)] {
      let (a, b) = (values(m * k, seed: 9), values(k * n, seed: 10))
      var c = [Float](repeating: .nan, count: m * n)
      c.withUnsafeMutableBufferPointer {
        BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: n, k: k, a: a, b: b, c: $0.baseAddress!)
      }
      let ratio = worstRatio(c, a, b, m: m, n: n, k: k, tA: false, tB: true)
      #expect(ratio <= 1, "\(m)x\(n)x\(k): \(ratio) of the bound")
    }
  }
}
