import Foundation
import LongConvTestSupport
import Testing

@testable import LongConvTensors

/// The toolkit's matrix products (`BLAS.ownProduct`, AVX-512 and AVX2 kernels, each where the
/// CPU runs it) against a dense product in Double: every transpose (a transposed A read in
/// place, with its last partial tile packed), edge tiles in both dimensions, depths over
/// several blocks, alpha, beta and a bias row.
@Suite struct OwnMatrixProductTests {
  /// The kernel widths this CPU runs (every width up to its widest).
  static let widths = [512, 256].filter { $0 <= BLAS.ownKernelBits }

  func values(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in generator.nextUniform() * 2 - 1 }
  }

  @Test(
    .enabled(if: BLAS.ownKernelsAvailable, "this CPU has neither AVX-512 nor AVX2 with FMA"),
    arguments: [
      (1, 1, 1), (13, 33, 7), (12, 32, 256), (25, 70, 300), (200, 45, 513), (3, 4100, 5), (130, 9, 40),
      (6, 16, 3), (121, 17, 257),
    ])
  func matchesTheDenseProduct(_ m: Int, _ n: Int, _ k: Int) throws {
    for bits in Self.widths {
      try check(m, n, k, bits: bits)
    }
  }

  func check(_ m: Int, _ n: Int, _ k: Int, bits: Int) throws {
    for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
      for (alpha, beta, withBias) in [
        (Float(1), Float(0), false), (0.5, 1, false), (-2, 0.25, true), (1, 0, true),
      ] {
        let (a, b) = (values(m * k, seed: 1), values(k * n, seed: 2))
        let initial = values(m * n, seed: 3)
        let bias = withBias ? values(n, seed: 6) : nil
        var c = initial
        c.withUnsafeMutableBufferPointer { c in
          BLAS.ownProduct(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, b: b,
            beta: beta, c: c.baseAddress!, bias: bias, bits: bits)
        }
        let product = Dense.product(a, b, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
        let added = (0..<m * n).map { Double(beta) * Double(initial[$0]) + Double(bias?[$0 % n] ?? 0) }
        let expected = zip(product.values, added).map { Double(alpha) * $0 + $1 }
        let magnitudes = (0..<m * n).map {
          abs(Double(alpha)) * product.magnitudes[$0] + abs(Double(beta) * Double(initial[$0]))
            + abs(Double(bias?[$0 % n] ?? 0))
        }
        expectProductClose(
          c.map(Double.init), expected, magnitudes: magnitudes, depth: k,
          "\(bits)-bit \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB) alpha \(alpha) beta \(beta)"
            + " bias \(withBias)"
        )
      }
    }
  }

  /// The sums of op(A)'s rows that a product can return on the side (a bias gradient next to
  /// its weight gradient), within `gamma_k sum |a|` of the sums in Double, for either layout of
  /// A, split over threads by rows (`m >= n`) and by columns (only one part sums).
  @Test(
    .enabled(if: BLAS.ownKernelsAvailable, "this CPU has neither AVX-512 nor AVX2 with FMA"),
    arguments: [(200, 45, 513), (130, 300, 40), (7, 9, 1000)])
  func rowSumsOfA(_ m: Int, _ n: Int, _ k: Int) throws {
    for bits in Self.widths {
      for transposeA in [false, true] {
        let (a, b) = (values(m * k, seed: 7), values(k * n, seed: 8))
        var c = [Float](repeating: 0, count: m * n)
        var sums = [Float](repeating: .nan, count: m)
        c.withUnsafeMutableBufferPointer { c in
          sums.withUnsafeMutableBufferPointer { sums in
            BLAS.ownProduct(
              transposeA: transposeA, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0,
              c: c.baseAddress!, rowSumsOfA: sums.baseAddress!, bits: bits)
          }
        }
        let worst = Self.rowSumsRatio(sums, a, m: m, k: k, transposeA: transposeA)
        #expect(worst <= 1, "\(bits)-bit \(m)x\(n)x\(k) tA \(transposeA): row sums at \(worst) of the bound")
      }
    }
  }

  /// The largest error of `sums`, op(A)'s row sums, against the sums in Double, in units of
  /// their rounding bound `gamma_k sum |a|`.
  static func rowSumsRatio(_ sums: [Float], _ a: [Float], m: Int, k: Int, transposeA: Bool) -> Double {
    let gamma = Double(k) * 0x1p-24 / (1 - Double(k) * 0x1p-24)
    return (0..<m).map { i -> Double in
      let row = (0..<k).map { p in Double(transposeA ? a[p * m + i] : a[i * k + p]) }
      return abs(Double(sums[i]) - row.reduce(0, +)) / (gamma * row.reduce(0) { $0 + abs($1) })
    }.max() ?? 0
  }

  /// Operands read in place (a transposed A, and then a stored B) are never read past their
  /// last value: each ends right before a page that may not be read (a read there stops the
  /// test process), with widths that leave partial tiles and panels in both.
  @Test(.enabled(if: BLAS.ownKernelsAvailable, "this CPU has neither AVX-512 nor AVX2 with FMA"))
  func operandsReadInPlaceStayInside() throws {
    for bits in Self.widths {
      for (m, n, k) in [(37, 45, 70), (13, 50, 9), (130, 17, 300)] {
        let (a, b) = (values(m * k, seed: 20), values(k * n, seed: 21))
        let guardedA = try GuardedFloats(a)
        let guardedB = try GuardedFloats(b)
        var c = [Float](repeating: 0, count: m * n)
        c.withUnsafeMutableBufferPointer { c in
          BLAS.ownProduct(
            transposeA: true, transposeB: false, m: m, n: n, k: k, alpha: 1, a: guardedA.values,
            b: guardedB.values, beta: 0, c: c.baseAddress!, bits: bits)
        }
        let product = Dense.product(a, b, m: m, n: n, k: k, transposeA: true, transposeB: false)
        expectProductClose(
          c.map(Double.init), product.values, magnitudes: product.magnitudes, depth: k,
          "\(bits)-bit \(m)x\(n)x\(k) in place at a page's end")
      }
    }
  }

  /// With beta 0, C is written without being read: NaNs in it do not survive.
  @Test(.enabled(if: BLAS.ownKernelsAvailable, "this CPU has neither AVX-512 nor AVX2 with FMA"))
  func betaZeroIgnoresC() throws {
    for bits in Self.widths {
      let (m, n, k) = (14, 35, 9)
      let (a, b) = (values(m * k, seed: 4), values(k * n, seed: 5))
      var c = [Float](repeating: .nan, count: m * n)
      c.withUnsafeMutableBufferPointer { c in
        BLAS.ownProduct(
          transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, b: b, beta: 0,
          c: c.baseAddress!, bits: bits)
      }
      #expect(c.allSatisfy { $0.isFinite }, "\(bits)-bit kernels")
    }
  }
}

/// Values that end where an unreadable page begins.
final class GuardedFloats {
  let mapping: UnsafeMutableRawPointer
  let bytes: Int
  let values: UnsafeMutablePointer<Float>

  init(_ source: [Float]) throws {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let dataPages = (source.count * 4 + page - 1) / page
    bytes = (dataPages + 1) * page
    let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let raw, raw != MAP_FAILED else { throw POSIXError(.ENOMEM) }
    mapping = raw
    #expect(mprotect(raw + dataPages * page, page, PROT_NONE) == 0)
    values = (raw + dataPages * page - source.count * 4).bindMemory(to: Float.self, capacity: source.count)
    values.update(from: source, count: source.count)
  }

  deinit { munmap(mapping, bytes) }
}
