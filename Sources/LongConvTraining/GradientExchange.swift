import Foundation
import LongConvTensors

/// The backward pass of a data-parallel step with its gradient sum overlapped: every process's
/// gradients, each times its share of the global mean, summed over the processes in buckets,
/// each bucket started as soon as the backward pass has completed every gradient in it.
///
/// The buckets are a fixed partition of the trainable parameters, taken in reverse order (the
/// backward pass reaches the last layers first) and cut every `bucketScalars` scalars. Bucket
/// `k` starts only after bucket `k - 1`, so every process starts the same sums in the same
/// order (MPI requires that of collective calls) whatever order its gradients complete in.
/// Between the pullbacks of the backward pass the reducer is given a chance to progress
/// (``GradientReducer/progressSums()``), which is what lets MPI move data while this process
/// computes. A parameter without a gradient on this process contributes zeros; it takes a
/// gradient only when some process had one, as in a single process over the whole batch.
public final class GradientExchange {
  /// What one step's exchange cost.
  public struct Timing: Sendable {
    /// Wall time of the backward pass, sums started inside it included.
    public var backwardSeconds = 0.0
    /// Wall time from the first bucket's start until every bucket's sum was in place.
    public var reductionSeconds = 0.0
    /// The part of `reductionSeconds` after the backward pass ended: the time the step waited.
    public var exposedSeconds = 0.0
    /// Bytes of gradient (Float32) in this step's buckets; how many of them cross the network
    /// depends on the reducer (MPIWorld's sum sends and receives `2 (N - 1) / N` times this).
    public var bytes = 0

    /// The share of the reduction hidden behind the backward pass, 0 ... 1 (1 when nothing
    /// was reduced).
    public var hiddenShare: Double {
      reductionSeconds > 0 ? max(0, 1 - exposedSeconds / reductionSeconds) : 1
    }
  }

  /// One bucket: the parameters' ranges it holds, where each starts in `buffer`.
  struct Bucket {
    var pieces: [(parameter: Int, range: Range<Int>, offset: Int)] = []
    var count = 0
    /// The parameters (indices into `parameters`) with a piece here.
    var parameters: Set<Int> = []
  }

  /// The parameters whose gradients are exchanged (each storage once, frozen ones left out).
  public let parameters: [Tensor]
  /// Processes and how they sum.
  public let reducer: any GradientReducer
  /// Whether sums start during the backward pass (`false`: all start after it, for comparison).
  public var overlap: Bool
  let buckets: [Bucket]
  private var buffers: [[Float]]

  /// An exchange of the gradients of `parameters` (frozen ones and repeated storages skipped)
  /// in buckets of at most `bucketScalars` scalars.
  public init(
    parameters: [Tensor], reducer: any GradientReducer, bucketScalars: Int = 1 << 20, overlap: Bool = true
  ) {
    precondition(bucketScalars > 0, "GradientExchange: bucketScalars \(bucketScalars)")
    var seen = Set<ObjectIdentifier>()
    let exchanged = parameters.filter { !$0.isFrozen && seen.insert(ObjectIdentifier($0.storage)).inserted }
    self.parameters = exchanged
    self.reducer = reducer
    self.overlap = overlap
    var buckets: [Bucket] = []
    var current = Bucket()
    for index in exchanged.indices.reversed() {
      var start = 0
      while start < exchanged[index].count {
        if current.count == bucketScalars {
          buckets.append(current)
          current = Bucket()
        }
        let n = min(exchanged[index].count - start, bucketScalars - current.count)
        current.pieces.append((index, start..<start + n, current.count))
        current.parameters.insert(index)
        current.count += n
        start += n
      }
    }
    if current.count > 0 { buckets.append(current) }
    self.buckets = buckets
    buffers = buckets.map { [Float](repeating: 0, count: $0.count) }
  }

  /// Runs `loss.backward()` and leaves in every exchanged parameter's gradient the sum over
  /// the processes of `scale` times that process's gradient: the same bits on every process.
  public func backward(_ loss: Tensor, scale: Float) throws -> Timing {
    var timing = Timing()
    var complete = [Bool](repeating: false, count: parameters.count)
    var missing = buckets.map(\.parameters.count)
    var bucketOf: [[Int]] = Array(repeating: [], count: parameters.count)
    for (b, bucket) in buckets.enumerated() { for p in bucket.parameters { bucketOf[p].append(b) } }
    var started = 0
    var firstStart: UInt64?
    var failure: (any Error)?
    let begin = DispatchTime.now().uptimeNanoseconds

    func startReadyBuckets() throws {
      while started < buckets.count && missing[started] == 0 {
        try fill(started, scale: scale)
        let b = started
        try buffers[b].withUnsafeMutableBufferPointer { try reducer.startSum($0) }
        if firstStart == nil { firstStart = DispatchTime.now().uptimeNanoseconds }
        timing.bytes += buckets[b].count * MemoryLayout<Float>.size
        started += 1
      }
    }

    loss.backward(watching: parameters) { completed in
      guard failure == nil else { return }
      do {
        for p in completed {
          complete[p] = true
          for b in bucketOf[p] { missing[b] -= 1 }
        }
        if overlap {
          try startReadyBuckets()
          if started > 0 { try reducer.progressSums() }
        }
      } catch { failure = error }
    }
    if let failure { throw failure }
    let backwardEnd = DispatchTime.now().uptimeNanoseconds
    precondition(complete.allSatisfy { $0 }, "GradientExchange: a parameter was never reported complete")
    try startReadyBuckets()
    try reducer.completeSums()
    let end = DispatchTime.now().uptimeNanoseconds
    for b in buckets.indices { store(b) }

    timing.backwardSeconds = Double(backwardEnd - begin) * 1e-9
    if let firstStart {
      timing.reductionSeconds = Double(end - firstStart) * 1e-9
      timing.exposedSeconds = Double(end - max(backwardEnd, firstStart)) * 1e-9
    }
    return timing
  }

  /// Copies bucket `b`'s gradients, times `scale`, into its buffer (zeros where a parameter
  /// has no gradient on this process).
  private func fill(_ b: Int, scale: Float) throws {
    buffers[b].withUnsafeMutableBufferPointer { buffer in
      for piece in buckets[b].pieces {
        guard let gradient = parameters[piece.parameter].gradient else {
          for i in 0..<piece.range.count { buffer[piece.offset + i] = 0 }
          continue
        }
        gradient.withUnsafeBufferPointer { g in
          for (i, j) in piece.range.enumerated() { buffer[piece.offset + i] = g[j] * scale }
        }
      }
    }
  }

  /// Puts bucket `b`'s sums into the gradients; a parameter without one takes one only when
  /// the sum is not all zero (some process had a gradient).
  private func store(_ b: Int) {
    buffers[b].withUnsafeBufferPointer { buffer in
      for piece in buckets[b].pieces {
        let parameter = parameters[piece.parameter]
        let sums = buffer[piece.offset..<piece.offset + piece.range.count]
        if parameter.gradient == nil {
          guard sums.contains(where: { $0 != 0 }) else { continue }
          parameter.accumulateGradient(Tensor.zeros(parameter.shape))
        }
        parameter.gradient!.withUnsafeMutableBufferPointer { g in
          for (i, j) in piece.range.enumerated() { g[j] = sums[piece.offset + i] }
        }
      }
    }
  }
}
