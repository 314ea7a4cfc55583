import Foundation
import Testing

@testable import LongConvTensors

/// The pool behind large tensor and FFT buffers, on pools of its own (the shared one serves
/// the tests running beside these).
@Suite struct BufferPoolTests {
  static let megabyte = 1 << 20

  @Test func aFreedBlockServesTheNextRequestOfItsSize() {
    let pool = BufferPool()
    let first = pool.allocate(bytes: 3 * Self.megabyte + 5)
    first.storeBytes(of: 42, as: Int.self)
    pool.release(first, bytes: 3 * Self.megabyte + 5)
    let again = pool.allocate(bytes: 3 * Self.megabyte + 5)
    #expect(again == first)
    let other = pool.allocate(bytes: 2 * Self.megabyte)
    #expect(other != first)
    let usage = pool.usage
    #expect(usage.hits == 1 && usage.misses == 2)
    #expect(usage.liveBytes == 5 * Self.megabyte + BufferPool.page)
    #expect(Int(bitPattern: again) % BufferPool.alignment == 0)
    pool.release(again, bytes: 3 * Self.megabyte + 5)
    pool.release(other, bytes: 2 * Self.megabyte)
    #expect(pool.usage.liveBytes == 0)
  }

  @Test func smallBlocksBypassThePool() {
    let pool = BufferPool()
    let block = pool.allocate(bytes: BufferPool.smallest - 1)
    #expect(Int(bitPattern: block) % BufferPool.alignment == 0)
    pool.release(block, bytes: BufferPool.smallest - 1)
    let usage = pool.usage
    #expect(usage.hits == 0 && usage.misses == 0 && usage.keptBytes == 0 && usage.highWater == 0)
  }

  /// Two 1 MB blocks freed, then a 3 MB request: alive 3 MB (the new high-water mark), so at
  /// most 0.75 MB may stay kept and both 1 MB blocks are unmapped.
  @Test func aMissReleasesKeptBlocksBeyondTheHeadroom() {
    let pool = BufferPool()
    let (a, b) = (pool.allocate(bytes: Self.megabyte), pool.allocate(bytes: Self.megabyte))
    pool.release(a, bytes: Self.megabyte)
    pool.release(b, bytes: Self.megabyte)
    #expect(pool.usage.keptBytes == 2 * Self.megabyte)
    let c = pool.allocate(bytes: 3 * Self.megabyte)
    let usage = pool.usage
    #expect(
      usage.keptBytes == 0 && usage.liveBytes == 3 * Self.megabyte && usage.highWater == 3 * Self.megabyte)
    pool.release(c, bytes: 3 * Self.megabyte)
  }

  /// Requests of mixed sizes from two threads: no block is handed out twice at once (each
  /// holder's pattern survives), and alive plus kept bytes never pass the headroom.
  @Test func concurrentRequestsNeverShareABlock() async {
    let pool = BufferPool()
    await withTaskGroup(of: Bool.self) { group in
      for worker in 0..<2 {
        group.addTask {
          var generator = SystemRandomNumberGenerator()
          var held: [(block: UnsafeMutableRawPointer, bytes: Int, tag: UInt8)] = []
          for step in 0..<400 {
            if held.count < 6, Bool.random(using: &generator) {
              let bytes = [1, 2, 3, 5].randomElement(using: &generator)! * 70_000
              let tag = UInt8(truncatingIfNeeded: step * 2 + worker)
              let block = pool.allocate(bytes: bytes)
              block.initializeMemory(as: UInt8.self, repeating: tag, count: bytes)
              held.append((block, bytes, tag))
            } else if let last = held.popLast() {
              let bytes = UnsafeBufferPointer(
                start: last.block.assumingMemoryBound(to: UInt8.self), count: last.bytes)
              if bytes.contains(where: { $0 != last.tag }) { return false }
              pool.release(last.block, bytes: last.bytes)
            }
            let usage = pool.usage
            if Double(usage.liveBytes + usage.keptBytes) > Double(usage.highWater) * BufferPool.headroom
              + Double(5 * 70_000 + BufferPool.page)
            {
              return false
            }
          }
          for h in held { pool.release(h.block, bytes: h.bytes) }
          return true
        }
      }
      for await ok in group { #expect(ok) }
    }
    #expect(pool.usage.liveBytes == 0)
  }
}
