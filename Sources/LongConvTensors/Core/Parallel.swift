import COpenBLAS
import Dispatch
import Foundation
import Synchronization

/// How many threads the toolkit's own loops (FFT convolution, large element-wise ops) and
/// OpenBLAS use. Defaults to the number of active processors.
public enum ComputeThreads {
  private static let stored = Atomic<Int>(ProcessInfo.processInfo.activeProcessorCount)

  /// The thread count; OpenBLAS uses it for large products (see `BLAS.smallProduct`).
  public static var count: Int {
    get { stored.load(ordering: .relaxed) }
    set {
      precondition(newValue >= 1, "ComputeThreads.count: \(newValue) < 1")
      stored.store(newValue, ordering: .relaxed)
    }
  }
}

/// A pointer that may cross into `concurrentPerform` workers; each worker writes a disjoint range.
struct SendablePointer<Pointee>: @unchecked Sendable {
  let base: UnsafeMutablePointer<Pointee>
  init(_ base: UnsafeMutablePointer<Pointee>) { self.base = base }
}

/// Runs `body` over `0..<count` split into contiguous ranges, on up to
/// `ComputeThreads.count` threads when each range has at least `grain` items.
func parallelRanges(_ count: Int, grain: Int = 1 << 15, _ body: (Range<Int>) -> Void) {
  let tasks = min(ComputeThreads.count, count / max(grain, 1))
  if tasks <= 1 {
    body(0..<count)
    return
  }
  withoutActuallyEscaping(body) { body in
    let box = UncheckedBox(body)
    DispatchQueue.concurrentPerform(iterations: tasks) { t in
      box.value(count * t / tasks..<count * (t + 1) / tasks)
    }
  }
}

/// Runs `body(task)` for every task in `0..<count` on up to `ComputeThreads.count` threads;
/// `body` receives the worker index too, so a worker can reuse its own scratch memory.
func parallelTasks(_ count: Int, _ body: (_ task: Int, _ worker: Int) -> Void) {
  let workers = min(ComputeThreads.count, count)
  if workers <= 1 {
    for t in 0..<count { body(t, 0) }
    return
  }
  let next = Atomic<Int>(0)
  withoutActuallyEscaping(body) { body in
    let box = UncheckedBox(body)
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
      while true {
        let task = next.add(1, ordering: .relaxed).oldValue
        if task >= count { break }
        box.value(task, worker)
      }
    }
  }
}

/// Carries a non-Sendable closure or value into concurrent workers that only read it.
struct UncheckedBox<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}

extension ComputeThreads {
  /// Runs `body(task)` for every task in `0 ..< count`, spread over up to ``count`` threads
  /// (tasks are handed out one at a time, so uneven tasks balance). `body` must be safe to
  /// call concurrently; the call returns when every task has finished.
  public static func perform(tasks count: Int, _ body: (_ task: Int) -> Void) {
    parallelTasks(count) { task, _ in body(task) }
  }

  /// Runs `body` with OpenBLAS (and its LAPACK) on one thread, for callers that run many
  /// small factorizations concurrently themselves. Later products pick their own count again.
  public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    BLAS.useThreads(1)
    return try body()
  }
}
