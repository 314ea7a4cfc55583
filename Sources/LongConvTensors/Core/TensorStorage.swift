/// The memory behind a tensor: a 64-byte aligned buffer of `Float`s (large ones from
/// a pool that reuses them).
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
    let raw = BufferPool.shared.allocate(bytes: count * MemoryLayout<Float>.stride)
    base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
  }

  /// Storage filled with `value`.
  convenience init(count: Int, repeating value: Float) {
    self.init(uninitializedCount: count)
    base.initialize(repeating: value, count: count)
  }

  deinit {
    BufferPool.shared.release(UnsafeMutableRawPointer(base), bytes: count * MemoryLayout<Float>.stride)
  }

  var buffer: UnsafeMutableBufferPointer<Float> { .init(start: base, count: count) }
}
