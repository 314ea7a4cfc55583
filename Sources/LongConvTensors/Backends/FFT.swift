import CFFTW
import Foundation
import Synchronization

/// A buffer of `Float`s from ``BufferPool``, 64-byte aligned as FFTW's SIMD code paths want.
final class FFTBuffer: @unchecked Sendable {
  let count: Int
  let base: UnsafeMutablePointer<Float>

  init(count: Int) {
    self.count = count
    base = BufferPool.shared.allocate(bytes: count * MemoryLayout<Float>.stride).bindMemory(
      to: Float.self, capacity: max(count, 1))
  }

  deinit {
    BufferPool.shared.release(UnsafeMutableRawPointer(base), bytes: count * MemoryLayout<Float>.stride)
  }

  func zero() { base.update(repeating: 0, count: count) }
}

/// A cached FFTW plan. FFTW's execute functions are thread-safe, so one plan is executed
/// concurrently on different arrays through the new-array interface.
struct FFTPlan: @unchecked Sendable {
  let raw: OpaquePointer
}

/// Batched real FFTs of one size, planned once per shape under a lock and cached.
///
/// A batch is `count` transforms of `size` real values, stored `realStride` apart, whose spectra
/// (`size / 2 + 1` complex values) are stored `spectrumStride` complex values apart.
/// `spectrumStride` is rounded up to a multiple of 4 complex values (32 bytes), so the
/// spectrum of any channel starts on FFTW's SIMD alignment.
///
/// Sizes are even (``fastSize(atLeast:)`` gives only even ones): a transform runs as a complex
/// FFT of half the size on the real row read as `z[n] = x[2n] + i x[2n + 1]`, whose spectrum is
/// then unpacked into the real one (and packed back before the inverse) by CConvolutionKernels.
/// FFTW's estimated plans for that complex transform run about three times faster than its
/// estimated real ones (1024 points, 16 rows: 0.36 us against 1.08 us per transform, the
/// unpacking included about 0.45 us), and are as deterministic.
enum FFT {
  struct Key: Hashable {
    let size: Int
    let count: Int
    let realStride: Int
    let inverse: Bool
  }

  private static let plans = Mutex<[Key: FFTPlan]>([:])
  private static let twiddleTables = Mutex<[Int: FFTBuffer]>([:])

  /// Complex values per spectrum for a transform of `size` real values.
  static func spectrumCount(_ size: Int) -> Int { size / 2 + 1 }

  /// Distance between consecutive real rows in a batch: `size` rounded up to 16 values, plus
  /// 16. Rows exactly a power of two apart map to the same cache sets, and the strided
  /// gathers into them then miss on nearly every store.
  static func realStride(_ size: Int) -> Int { (size + 15) / 16 * 16 + 16 }

  /// Distance between consecutive spectra in a batch, in complex values.
  static func spectrumStride(_ size: Int) -> Int { (spectrumCount(size) + 3) / 4 * 4 }

  /// The smallest even `n >= minimum` whose half has no prime factor above 7: a size FFTW
  /// transforms fast, so a prime length costs no more than its neighbours.
  static func fastSize(atLeast minimum: Int) -> Int {
    var half = max(1, (minimum + 1) / 2)
    while true {
      var m = half
      for p in [2, 3, 5, 7] { while m % p == 0 { m /= p } }
      if m == 1 { return 2 * half }
      half += 1
    }
  }

  /// The plan for `count` complex transforms of `size / 2` values from the real rows (read as
  /// interleaved complex values) into the spectra, or back (unnormalised) when `inverse`.
  static func plan(size: Int, count: Int, inverse: Bool) -> FFTPlan {
    precondition(size >= 2 && size % 2 == 0, "FFT: size \(size) is not even")
    let stride = realStride(size)
    let key = Key(size: size, count: count, realStride: stride, inverse: inverse)
    return plans.withLock { cache in
      if let plan = cache[key] { return plan }
      // Planned on scratch buffers of the same alignment as the arrays it will run on.
      let real = FFTBuffer(count: stride * count)
      let complex = FFTBuffer(count: 2 * spectrumStride(size) * count)
      var n = Int32(size / 2)
      let (spectrumDist, realDist) = (Int32(spectrumStride(size)), Int32(stride / 2))
      let flags = UInt32(FFTW_ESTIMATE)
      let raw = complex.base.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { c in
        real.base.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { r in
          inverse
            ? fftwf_plan_many_dft(
              1, &n, Int32(count), c, nil, 1, spectrumDist, r, nil, 1, realDist, FFTW_BACKWARD, flags)
            : fftwf_plan_many_dft(
              1, &n, Int32(count), r, nil, 1, realDist, c, nil, 1, spectrumDist, FFTW_FORWARD, flags)
        }
      }
      guard let raw else {
        preconditionFailure("FFT: FFTW could not plan \(count) transforms of size \(size)")
      }
      let plan = FFTPlan(raw: raw)
      cache[key] = plan
      return plan
    }
  }

  /// `exp(-2 pi i k / size)` for `k = 0 ... size / 4`, interleaved, computed in Double once
  /// per size.
  static func twiddles(size: Int) -> UnsafePointer<Float> {
    twiddleTables.withLock { cache in
      if let table = cache[size] { return UnsafePointer(table.base) }
      let count = size / 4 + 1
      let table = FFTBuffer(count: 2 * count)
      for k in 0..<count {
        let angle = -2 * Double.pi * Double(k) / Double(size)
        table.base[2 * k] = Float(cos(angle))
        table.base[2 * k + 1] = Float(sin(angle))
      }
      cache[size] = table
      return UnsafePointer(table.base)
    }
  }

  /// Real to complex: `count` rows of `real` (`realStride(size)` apart) into `complex`.
  static func forward(
    size: Int, count: Int, real: UnsafeMutablePointer<Float>, complex: UnsafeMutablePointer<Float>
  ) {
    let plan = plan(size: size, count: count, inverse: false)
    complex.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { c in
      real.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { fftwf_execute_dft(plan.raw, $0, c) }
    }
    ConvolutionKernels.best.unpack_real_spectra(
      complex, count, spectrumStride(size), size / 2, twiddles(size: size))
  }

  /// Complex to real, unnormalised (the result is `size` times the inverse DFT); destroys `complex`.
  static func inverse(
    size: Int, count: Int, complex: UnsafeMutablePointer<Float>, real: UnsafeMutablePointer<Float>
  ) {
    let plan = plan(size: size, count: count, inverse: true)
    ConvolutionKernels.best.pack_real_spectra(
      complex, count, spectrumStride(size), size / 2, twiddles(size: size))
    complex.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { c in
      real.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { fftwf_execute_dft(plan.raw, c, $0) }
    }
  }
}
