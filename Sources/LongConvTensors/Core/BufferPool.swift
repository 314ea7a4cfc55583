import Glibc
import Synchronization

/// Large tensor and FFT buffers, kept after they are freed and handed out again for the same
/// size.
///
/// A training step frees and allocates the same sizes every step. Through malloc each fresh
/// block was either new memory from the kernel, page-faulted and zeroed again, or carved out
/// of a heap that small objects freed on other threads had fragmented: the resident set of a
/// two-thread Hyena training loop grew by about 1.5 MB per step without bound, and a step
/// took 2,900 page faults.
///
/// Blocks of at least ``smallest`` bytes are rounded up to whole pages and mapped directly
/// (`mmap`), so they never share malloc's heap with small objects and a released block goes
/// back to the kernel; malloc keeps its own settings for everything else. Freed blocks are
/// kept by size while the bytes alive plus the bytes kept stay within ``headroom`` times the
/// most bytes ever alive at once (the high-water mark): a request that finds no block of its
/// size first unmaps kept blocks, largest buckets first, until that holds again. A repeated
/// step so allocates nothing new (the headroom absorbs the order in which a step frees and
/// requests its sizes; without it a step still missed 14 times), and the pool never holds
/// more than a quarter of the peak beyond it.
final class BufferPool: Sendable {
  /// The pool every tensor and FFT buffer uses.
  static let shared = BufferPool()

  /// Smaller blocks come from malloc's own bins.
  static let smallest = 1 << 16
  /// Every block is aligned for the widest vector loads (and FFTW's, and BLAS's).
  static let alignment = 64
  static let page = 4096
  /// Alive plus kept bytes may reach the high-water mark times this.
  static let headroom = 1.25

  struct State {
    /// Addresses of kept blocks, by size.
    var kept: [Int: [UInt]] = [:]
    var keptBytes = 0
    var liveBytes = 0
    var highWater = 0
    /// Requests served by a kept block, and requests that mapped a new one.
    var hits = 0
    var misses = 0
  }

  let state = Mutex(State())

  static func roundedSize(_ bytes: Int) -> Int { (Swift.max(bytes, 1) + page - 1) / page * page }

  /// A block of at least `bytes` bytes, aligned to ``alignment``.
  func allocate(bytes: Int) -> UnsafeMutableRawPointer {
    guard bytes >= Self.smallest else {
      return .allocate(byteCount: Swift.max(bytes, 1), alignment: Self.alignment)
    }
    let size = Self.roundedSize(bytes)
    let (reused, released): (UInt?, [(address: UInt, size: Int)]) = state.withLock { s in
      s.liveBytes += size
      s.highWater = Swift.max(s.highWater, s.liveBytes)
      if let block = s.kept[size]?.popLast() {
        if s.kept[size]?.isEmpty == true { s.kept[size] = nil }
        s.keptBytes -= size
        s.hits += 1
        return (block, [])
      }
      s.misses += 1
      var released: [(address: UInt, size: Int)] = []
      let limit = Int(Double(s.highWater) * Self.headroom)
      while s.keptBytes > 0, s.liveBytes + s.keptBytes > limit {
        let largest = s.kept.max { $0.key * $0.value.count < $1.key * $1.value.count }!.key
        released.append((s.kept[largest]!.removeLast(), largest))
        if s.kept[largest]!.isEmpty { s.kept[largest] = nil }
        s.keptBytes -= largest
      }
      return (nil, released)
    }
    for block in released { munmap(UnsafeMutableRawPointer(bitPattern: block.address), block.size) }
    if let reused { return UnsafeMutableRawPointer(bitPattern: reused)! }
    guard let block = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      block != MAP_FAILED
    else { fatalError("BufferPool: out of memory mapping \(size) bytes") }
    return block
  }

  /// Takes back a block from ``allocate(bytes:)`` (with the same `bytes`).
  func release(_ block: UnsafeMutableRawPointer, bytes: Int) {
    guard bytes >= Self.smallest else {
      block.deallocate()
      return
    }
    let size = Self.roundedSize(bytes)
    state.withLock { s in
      s.liveBytes -= size
      s.kept[size, default: []].append(UInt(bitPattern: block))
      s.keptBytes += size
    }
  }

  /// The pool's counters at this moment.
  var usage: State { state.withLock { $0 } }
}
