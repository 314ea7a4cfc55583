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
  /// (cores it does not name count as SSE). When as wide: the own kernels for fused products,
  /// and for plain ones only when OpenBLAS runs its (Intel) AVX-512 kernels on another vendor's
  /// CPU. The CPU is Intel's unless a case says otherwise.
  @Test(
    arguments: [
      // (core, own kernel bits, override, own kernels for plain products, for fused ones)
      ("SkylakeX", 512, nil, false, true), ("COOPERLAKE", 512, nil, false, true),
      ("sapphirerapids", 512, nil, false, true),
      ("Haswell", 512, nil, true, true), ("Prescott", 512, nil, true, true), ("Zen", 512, nil, true, true),
      ("skylake", 512, nil, true, true),  // not an OpenBLAS core with AVX2 kernels (SkylakeX is)
      ("Sandybridge", 512, nil, true, true), ("", 512, nil, true, true),
      ("Haswell", 512, "openblas", false, false), ("SkylakeX", 512, "own", true, true),
      ("Haswell", 512, "", true, true), ("SkylakeX", 512, "", false, true),
      ("Haswell", 512, "OWN", true, true), ("SkylakeX", 512, "OWN", false, true),  // not a recognised value
      ("Haswell", 512, "blas", true, true), ("SkylakeX", 512, "yes", false, true),
      // An AVX2 CPU: the own kernels over OpenBLAS's SSE (or AVX without FMA) ones, and for
      // fused products over its AVX2 ones.
      ("Prescott", 256, nil, true, true), ("Sandybridge", 256, nil, true, true),
      ("Nehalem", 256, nil, true, true),
      ("unknown", 256, nil, true, true), ("Haswell", 256, nil, false, true), ("ZEN", 256, nil, false, true),
      ("SkylakeX", 256, nil, false, false), ("Haswell", 256, "own", true, true),
      ("Prescott", 256, "openblas", false, false),
      // A width asked for by name: taken when the CPU runs it, the rule otherwise.
      ("SkylakeX", 512, "own-avx2", true, true), ("SkylakeX", 512, "own-avx512", true, true),
      ("Haswell", 256, "own-avx512", false, true), ("Prescott", 256, "own-avx512", true, true),
      // No own kernels.
      ("Haswell", 0, nil, false, false), ("Prescott", 0, "own", false, false),
      ("SkylakeX", 0, "openblas", false, false),
    ] as [(String, Int, String?, Bool, Bool)])
  func decision(core: String, bits: Int, override: String?, plain: Bool, fused: Bool) {
    for (productClass, own) in [(BLAS.ProductClass.plain, plain), (.fused, fused)] {
      #expect(
        BLAS.prefersOwnKernels(
          openBLASCore: core, ownKernelBits: bits, override: override, cpuVendor: "GenuineIntel",
          productClass: productClass) == own,
        "core \(core), own kernels \(bits) bits, LONGCONV_GEMM \(override ?? "unset"), \(productClass)")
    }
  }

  /// On an AMD CPU, OpenBLAS's AVX-512 kernels (written for Intel's cores) give way to the own
  /// ones for every product; its AVX2 kernels (it has a Zen set) only for fused products.
  @Test(
    arguments: [
      // (core, own kernel bits, override, own kernels for plain products)
      ("Cooperlake", 512, nil, true), ("SkylakeX", 512, nil, true), ("Cooperlake", 512, "openblas", false),
      ("Zen", 256, nil, false), ("Haswell", 256, nil, false), ("Prescott", 256, nil, true),
      ("Cooperlake", 0, nil, false),
    ] as [(String, Int, String?, Bool)])
  func decisionOnAnotherVendorsCPU(core: String, bits: Int, override: String?, plain: Bool) {
    #expect(
      BLAS.prefersOwnKernels(
        openBLASCore: core, ownKernelBits: bits, override: override, cpuVendor: "AuthenticAMD") == plain,
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
    if let vendor = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("vendor_id") }) {
      #expect(vendor.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) == BLAS.cpuVendor)
    }
    let override = getenv("LONGCONV_GEMM").map { String(cString: $0) }
    let expected = BLAS.prefersOwnKernels(
      openBLASCore: core, ownKernelBits: BLAS.ownKernelBits, override: override)
    let expectedFused = BLAS.prefersOwnKernels(
      openBLASCore: core, ownKernelBits: BLAS.ownKernelBits, override: override, productClass: .fused)
    #expect(BLAS.usesOwnKernels == expected)
    #expect(BLAS.usesOwnKernelsForFusedProducts == expectedFused)
    let asked = BLAS.requestedBits(override, ownKernelBits: BLAS.ownKernelBits)
    let bitsInUse = asked.map { $0 <= BLAS.ownKernelBits ? $0 : BLAS.ownKernelBits } ?? BLAS.ownKernelBits
    #expect(BLAS.ownKernelBitsInUse == bitsInUse)
    let own = bitsInUse == 512 ? "own-avx512" : "own-avx2"
    let name = expected ? own : expectedFused ? "openblas+" + own : "openblas"
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
  /// (whichever backend the process chose), OpenBLAS (as the toolkit calls it, and one plain
  /// threaded `cblas_sgemm`) and the own kernels of every width the CPU runs, each within the
  /// rounding bound; `BLAS.sgemm` gives exactly what its chosen backend gives (the own kernels
  /// for a transposed A when they take fused products).
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
      // OpenBLAS as the toolkit calls it (its thread count and splits; the sums of its Haswell
      // kernels depend on them), and one plain threaded call.
      var openBLAS = [Float](repeating: .nan, count: m * n)
      openBLAS.withUnsafeMutableBufferPointer {
        BLAS.openBLASProduct(
          transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0, c: $0.baseAddress!)
      }
      var threaded = [Float](repeating: .nan, count: m * n)
      BLAS.useThreads(ComputeThreads.count)
      cblas_sgemm(
        CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
        Int32(k), 1, a, Int32(tA ? m : k), b, Int32(tB ? k : n), 0, &threaded, Int32(n))
      #expect(
        worstRatio(threaded, a, b, m: m, n: n, k: k, tA: tA, tB: tB) <= 1,
        "\(label): cblas_sgemm beyond the bound")
      let chosenRatio = worstRatio(chosen, a, b, m: m, n: n, k: k, tA: tA, tB: tB)
      let openRatio = worstRatio(openBLAS, a, b, m: m, n: n, k: k, tA: tA, tB: tB)
      let ownChosen = BLAS.usesOwnKernels || (BLAS.usesOwnKernelsForFusedProducts && tA)
      #expect(chosenRatio <= 1, "\(label): BLAS.sgemm at \(chosenRatio) of the bound")
      #expect(openRatio <= 1, "\(label): OpenBLAS at \(openRatio) of the bound")
      for bits in OwnMatrixProductTests.widths {
        var own = [Float](repeating: .nan, count: m * n)
        own.withUnsafeMutableBufferPointer {
          BLAS.ownProduct(
            transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0,
            c: $0.baseAddress!, bits: bits)
        }
        let ownRatio = worstRatio(own, a, b, m: m, n: n, k: k, tA: tA, tB: tB)
        #expect(ownRatio <= 1, "\(label): own \(bits)-bit kernels at \(ownRatio) of the bound")
        if ownChosen && bits == BLAS.ownKernelBitsInUse {
          #expect(chosen == own, "\(label): sgemm is not the own kernels' product")
        }
      }
      if !ownChosen { #expect(chosen == openBLAS, "\(label): sgemm is not OpenBLAS's product") }
    }
  }

  /// The row sums of op(A) through `BLAS.sgemm`, above and below the own kernels' threshold and
  /// for a single row (OpenBLAS then sums them apart), within `gamma_k sum |a|` of Double.
  @Test(arguments: [(257, 33, 129), (8, 9, 10), (1, 40, 3000)])
  func rowSumsOfAOnEitherBackend(m: Int, n: Int, k: Int) {
    for tA in [false, true] {
      let (a, b) = (values(m * k, seed: 17), values(k * n, seed: 18))
      var c = [Float](repeating: 0, count: m * n)
      var sums = [Float](repeating: .nan, count: m)
      c.withUnsafeMutableBufferPointer { c in
        sums.withUnsafeMutableBufferPointer { sums in
          BLAS.sgemm(
            transposeA: tA, transposeB: false, m: m, n: n, k: k, a: a, b: b, c: c.baseAddress!,
            rowSumsOfA: sums.baseAddress!)
        }
      }
      let worst = OwnMatrixProductTests.rowSumsRatio(sums, a, m: m, k: k, transposeA: tA)
      #expect(worst <= 1, "\(m)x\(n)x\(k) tA \(tA): row sums at \(worst) of the bound")
      #expect(
        worstRatio(c, a, b, m: m, n: n, k: k, tA: tA, tB: false) <= 1, "\(m)x\(n)x\(k) tA \(tA): product")
    }
  }

  /// A bias row through `BLAS.sgemm`: within the rounding bound of `op(A) op(B) + 1 bias^T` in
  /// Double, and value for value what its backend gives (the own kernels adding it as they
  /// store, or OpenBLAS onto a C filled with it).
  @Test(arguments: [(96, 130, 100), (257, 33, 129)])
  func biasedProductsTakeTheFusedChoice(m: Int, n: Int, k: Int) {
    for (tA, tB) in [(false, true), (true, false)] {
      let (a, b, bias) = (values(m * k, seed: 14), values(k * n, seed: 15), values(n, seed: 16))
      let label = "\(m)x\(n)x\(k) tA \(tA) tB \(tB) with a bias"
      var chosen = [Float](repeating: .nan, count: m * n)
      chosen.withUnsafeMutableBufferPointer {
        BLAS.sgemm(
          transposeA: tA, transposeB: tB, m: m, n: n, k: k, a: a, b: b, c: $0.baseAddress!, bias: bias)
      }
      let product = Dense.product(a, b, m: m, n: n, k: k, transposeA: tA, transposeB: tB)
      let u = 0x1p-24
      let gamma = Double(k + 1) * u / (1 - Double(k + 1) * u)
      let worst =
        (0..<(m * n)).map { i in
          let (want, magnitude) = (
            product.values[i] + Double(bias[i % n]), product.magnitudes[i] + abs(Double(bias[i % n]))
          )
          return abs(Double(chosen[i]) - want) / (gamma * magnitude)
        }.max() ?? .infinity
      #expect(worst <= 1, "\(label): \(worst) of the bound")
      var expected = (0..<(m * n)).map { bias[$0 % n] }
      if BLAS.usesOwnKernelsForFusedProducts {
        expected.withUnsafeMutableBufferPointer {
          BLAS.ownProduct(
            transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0,
            c: $0.baseAddress!, bias: bias)
        }
      } else {
        expected.withUnsafeMutableBufferPointer {
          BLAS.openBLASProduct(
            transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 1,
            c: $0.baseAddress!)
        }
      }
      let differing = zip(chosen, expected).filter { $0 != $1 }.count
      #expect(differing == 0, "\(label): \(differing) values differ from the chosen backend's")
    }
  }

  /// Thin products above the threading threshold (`m n k >= 2^22`, the operand every part
  /// packs whole at most ``BLAS/splitOperandLimit``) run as one single-threaded OpenBLAS product
  /// per part of C: split by rows and by columns, every transpose, with `alpha` and `beta`,
  /// within the rounding bound and the same value for value on every call.
  @Test(arguments: [(3000, 48, 64), (40, 2900, 72)])
  func thinProductsSplitOverThreads(m: Int, n: Int, k: Int) {
    #expect(m * n * k >= BLAS.smallProduct && (m >= n ? n : m) * k <= BLAS.splitOperandLimit)
    for (tA, tB) in [(false, false), (true, false), (false, true), (true, true)] {
      let (a, b) = (values(m * k, seed: 11), values(k * n, seed: 12))
      let start = values(m * n, seed: 13)
      let label = "\(m)x\(n)x\(k) tA \(tA) tB \(tB)"
      func split() -> [Float] {
        var c = start
        c.withUnsafeMutableBufferPointer {
          BLAS.openBLASProduct(
            transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0,
            c: $0.baseAddress!)
        }
        return c
      }
      let (first, again) = (split(), split())
      #expect(worstRatio(first, a, b, m: m, n: n, k: k, tA: tA, tB: tB) <= 1, "\(label): split at the bound")
      // Deterministic: the same parts, summed in the same order, every call. (Not always equal
      // to one threaded OpenBLAS call: its Haswell kernels sum edge tiles in another order.)
      // A count, not the arrays: a failure message quoting 120,000 values takes minutes.
      let differing = zip(first, again).filter { $0 != $1 }.count
      #expect(differing == 0, "\(label): a second call differs at \(differing) values")

      // alpha and beta reach every part: C = 0.5 op(A) op(B) - 2 C.
      var scaled = start
      scaled.withUnsafeMutableBufferPointer {
        BLAS.openBLASProduct(
          transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: 0.5, a: a, b: b, beta: -2,
          c: $0.baseAddress!)
      }
      let worst =
        (0..<(m * n)).map { i in
          let want = 0.5 * Double(first[i]) - 2 * Double(start[i])
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
