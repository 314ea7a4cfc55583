import LongConv
import LongConvLayers
import LongConvTensors

/// The share of every global batch one process of a data-parallel run trains on: rows
/// `batch * index / count ..< batch * (index + 1) / count` of each batch the objective draws.
///
/// Every process draws the whole global batch from the same seeded stream and keeps its rows,
/// so the data of a step does not depend on how many processes share it.
public struct BatchShard: Sendable, Equatable {
  /// This process's share, `0 ..< count`.
  public var index: Int
  /// Processes sharing each batch.
  public var count: Int

  /// Share `index` of `count`.
  public init(index: Int, count: Int) {
    precondition(count >= 1 && (0..<count).contains(index), "BatchShard: \(index) of \(count)")
    self.index = index
    self.count = count
  }

  /// The whole batch (one process).
  public static let whole = BatchShard(index: 0, count: 1)

  /// This share's rows of a batch of `batch` rows.
  public func rows(of batch: Int) -> Range<Int> { batch * index / count..<batch * (index + 1) / count }
}

/// The loss of one process's share of a batch.
public struct ShardLoss {
  /// The mean loss over this share's loss positions (recorded, for `backward()`).
  public var loss: Tensor
  /// Tokens in this share (for throughput).
  public var tokens: Int
  /// The positions (or rows, for a classifier) the mean is taken over: the weight of this
  /// share's mean in the global mean.
  public var weight: Int

  /// A share's loss.
  public init(loss: Tensor, tokens: Int, weight: Int) {
    self.loss = loss
    self.tokens = tokens
    self.weight = weight
  }
}

/// How the processes of a data-parallel run combine what each computed. The trainer calls it
/// only when ``GradientReducer/size`` is above 1; the module `LongConvDistributed` implements
/// it over MPI. Every call is collective: all processes make the same calls in the same order.
public protocol GradientReducer: AnyObject {
  /// This process, `0 ..< size`; rank 0 writes metrics, plots and checkpoints.
  var rank: Int { get }
  /// Processes in the run.
  var size: Int { get }
  /// Replaces `buffer` with its elementwise sum over every process, the same bits on every
  /// process and for every run (the sum is taken in a fixed order).
  func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
  /// The elementwise sums of `values` over every process, in a fixed order.
  func sum(_ values: [Double]) throws -> [Double]
  /// Replaces `buffer` on every process with rank `root`'s.
  func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws
  /// `value` of every process, by rank.
  func gather(_ value: UInt64) throws -> [UInt64]
  /// Returns when every process has called it.
  func barrier() throws
  /// Starts replacing `buffer` with its sum over every process, as `sum(_:)` (buffer) does,
  /// and may return before it is done: `buffer` must stay valid and untouched until
  /// ``completeSums()`` returns. Processes start their sums in the same order.
  func startSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
  /// Lets the started sums progress and returns at once.
  func progressSums() throws
  /// Returns when every started sum is in its buffer.
  func completeSums() throws
}

extension GradientReducer {
  /// `sum(_:)` (buffer) at once: a reducer without nonblocking sums.
  public func startSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { try sum(buffer) }
  /// Nothing to do when ``startSum(_:)`` finishes each sum.
  public func progressSums() throws {}
  /// Nothing to do when ``startSum(_:)`` finishes each sum.
  public func completeSums() throws {}

  /// Replaces every parameter and buffer of `module` with rank `root`'s, each storage once
  /// (tied weights share one), and returns those tensors in order: how every process starts
  /// from the same model.
  @discardableResult
  public func broadcastState(of module: any Module, from root: Int = 0) throws -> [Tensor] {
    var seen = Set<ObjectIdentifier>()
    let tensors = module.namedState().map(\.tensor).filter {
      seen.insert(ObjectIdentifier($0.storage)).inserted
    }
    for tensor in tensors { try tensor.withUnsafeMutableBufferPointer { try broadcast($0, from: root) } }
    return tensors
  }
}

extension TrainingObjective {
  /// The whole batch's ``nextLoss(_:)`` for ``BatchShard/whole``; objectives that can split
  /// their batches implement it for the other shards.
  public mutating func nextLoss(_ model: any SequenceModel, shard: BatchShard) throws -> ShardLoss {
    guard shard.count == 1 else {
      throw TrainingError.cannotShard("\(type(of: self)) cannot split its batches between processes")
    }
    let (loss, tokens) = try nextLoss(model)
    return ShardLoss(loss: loss, tokens: tokens, weight: tokens)
  }
}

/// FNV-1a over the bit patterns of `values`, continuing from `hash`.
func fnv1a(_ values: UnsafeBufferPointer<Float>, _ hash: inout UInt64) {
  for x in values {
    var bits = x.bitPattern
    for _ in 0..<4 {
      hash = (hash ^ UInt64(bits & 0xFF)) &* 0x100_0000_01B3
      bits >>= 8
    }
  }
}
