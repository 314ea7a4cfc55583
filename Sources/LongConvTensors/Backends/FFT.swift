import CFFTW
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
enum FFT {
  struct Key: Hashable {
    let size: Int
    let count: Int
    let realStride: Int
    let inverse: Bool
  }

  private static let plans = Mutex<[Key: FFTPlan]>([:])

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

  /// The plan for `count` transforms of `size`: real to complex, or complex to real
  /// (unnormalised, overwriting its input) when `inverse`.
  static func plan(size: Int, count: Int, inverse: Bool) -> FFTPlan {
    let stride = realStride(size)
    let key = Key(size: size, count: count, realStride: stride, inverse: inverse)
    return plans.withLock { cache in
      if let plan = cache[key] { return plan }
      // FFTW_MEASURE overwrites its arrays while planning: plan on scratch buffers.
      let real = FFTBuffer(count: stride * count)
      let complex = FFTBuffer(count: 2 * spectrumStride(size) * count)
      var n = Int32(size)
      let dist = Int32(spectrumStride(size))
      let flags = UInt32(FFTW_ESTIMATE)
      let raw: OpaquePointer?
      if inverse {
        raw = complex.base.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { c in
          fftwf_plan_many_dft_c2r(
            1, &n, Int32(count), c, nil, 1, dist, real.base, nil, 1, Int32(stride), flags)
        }
      } else {
        raw = complex.base.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { c in
          fftwf_plan_many_dft_r2c(
            1, &n, Int32(count), real.base, nil, 1, Int32(stride), c, nil, 1, dist, flags)
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

  /// Real to complex: `count` rows of `real` (`realStride(size)` apart) into `complex`.
  static func forward(
    size: Int, count: Int, real: UnsafeMutablePointer<Float>, complex: UnsafeMutablePointer<Float>
  ) {
    let plan = plan(size: size, count: count, inverse: false)
    complex.withMemoryRebound(to: fftwf_complex.self, capacity: 1) {
      fftwf_execute_dft_r2c(plan.raw, real, $0)
    }
  }

  /// Complex to real, unnormalised (the result is `size` times the inverse DFT); destroys `complex`.
  static func inverse(
    size: Int, count: Int, complex: UnsafeMutablePointer<Float>, real: UnsafeMutablePointer<Float>
  ) {
    let plan = plan(size: size, count: count, inverse: true)
    complex.withMemoryRebound(to: fftwf_complex.self, capacity: 1) {
      fftwf_execute_dft_c2r(plan.raw, $0, real)
    }
  }
}
