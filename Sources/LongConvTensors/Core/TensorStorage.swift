import CShims

/// Keeps freed tensor memory in the process for reuse. By default glibc returns every block
/// over 128 KiB to the kernel on free, so each op's fresh output page-faults and is zeroed
/// again: measured at 40% of a long-convolution training step. Runs once, before the first
/// allocation.
let retainFreedMemory: Void = {
  mallopt(M_MMAP_THRESHOLD, 1 << 30)
  mallopt(M_TRIM_THRESHOLD, Int32.max)
}()

/// The memory behind a tensor: a 64-byte aligned buffer of `Float`s.
///
/// Storage is shared between a tensor and its reshaped views; ops never write into the
/// storage of an existing tensor except through the explicit in-place API used by
/// optimizers (`Tensor.withUnsafeMutableBufferPointer`).
public final class TensorStorage: @unchecked Sendable {
  /// Number of scalars.
  public let count: Int
  /// First scalar; aligned to 64 bytes so BLAS and FFTW can use their widest vector paths.
  public let base: UnsafeMutablePointer<Float>

  /// Uninitialised storage for `count` scalars.
  init(uninitializedCount count: Int) {
    precondition(count >= 0, "TensorStorage: negative count \(count)")
    self.count = count
    _ = retainFreedMemory
    let raw = UnsafeMutableRawPointer.allocate(
      byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
    base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
  }

  /// Storage filled with `value`.
  convenience init(count: Int, repeating value: Float) {
    self.init(uninitializedCount: count)
    base.initialize(repeating: value, count: count)
  }

  deinit { UnsafeMutableRawPointer(base).deallocate() }

  var buffer: UnsafeMutableBufferPointer<Float> { .init(start: base, count: count) }
}
