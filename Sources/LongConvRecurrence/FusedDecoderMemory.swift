import CDecodeKernels
import LongConv
import LongConvTensors

/// Buffers of a step: product outputs (members write disjoint rows), and per member its
/// residual stream, its normed copy, its partial outputs of two phases and the summed output.
struct Scratch {
  let u: UnsafeMutablePointer<Float>
  let v: UnsafeMutablePointer<Float>
  let gated: UnsafeMutablePointer<Float>
  let extra: UnsafeMutablePointer<Float>
  let logits: UnsafeMutablePointer<Float>
  private let perMember: UnsafeMutablePointer<Float>
  /// One row of `2 width` (an SSM block's output), rounded up to whole cache lines so members
  /// do not share lines.
  private let stride: Int

  init(width: Int, wide: Int, vocabulary: Int, members: Int, arena: Arena) {
    (u, v, gated, extra) = (
      arena.allocate(wide), arena.allocate(wide), arena.allocate(wide), arena.allocate(wide)
    )
    logits = arena.allocate(vocabulary)
    stride = (2 * width + 15) / 16 * 16
    perMember = arena.allocate(5 * stride * members)
  }

  func residual(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + 5 * member * stride }
  func normed(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + (5 * member + 1) * stride }
  func partial(_ member: Int, phase: Int) -> UnsafeMutablePointer<Float> {
    perMember + (5 * member + 2 + phase) * stride
  }
  func summed(_ member: Int) -> UnsafeMutablePointer<Float> { perMember + (5 * member + 4) * stride }
}

/// The memory of a decoder (`lck_arena`: zeroed, 64-byte aligned, huge pages where the kernel
/// allows), freed with the decoder.
final class Arena: @unchecked Sendable {
  private let arena: OpaquePointer
  /// Bytes handed out so far: the packed weights, the recurrences' constants, the plans and
  /// the scratch.
  private(set) var bytes = 0

  init() {
    guard let arena = lck_arena_create() else { fatalError("FusedDecoder: out of memory") }
    self.arena = arena
  }

  /// `count` zeroed values of a trivial type.
  func allocate<T>(_ count: Int, of type: T.Type = T.self) -> UnsafeMutablePointer<T> {
    precondition(_isPOD(T.self), "Arena holds trivial values only")
    guard let raw = lck_arena_allocate(arena, max(count, 1) * MemoryLayout<T>.stride) else {
      fatalError("FusedDecoder: out of memory")
    }
    bytes += max(count, 1) * MemoryLayout<T>.stride
    return raw.bindMemory(to: T.self, capacity: max(count, 1))
  }

  /// A copy of `values`.
  func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
    let p = allocate(values.count, of: T.self)
    values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
    return p
  }

  /// A copy of `tensor`'s values.
  func copy(_ tensor: Tensor) -> UnsafeMutablePointer<Float> {
    let p = allocate(tensor.count, of: Float.self)
    tensor.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: tensor.count) }
    return p
  }

  deinit { lck_arena_destroy(arena) }
}
