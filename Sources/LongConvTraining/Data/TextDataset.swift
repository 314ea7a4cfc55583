import Foundation
import LongConvTensors

/// A problem with a text corpus or with a request for batches from it; `source` names the file.
public struct TextDatasetError: Error, Equatable, CustomStringConvertible {
  /// The file or the data set the problem is about.
  public var source: String
  /// What is wrong.
  public var problem: String

  /// An error about `source`.
  public init(source: String, problem: String) {
    self.source = source
    self.problem = problem
  }

  /// `<source>: <problem>`.
  public var description: String { "\(source): \(problem)" }
}

/// A byte-level text corpus split into a training and a validation part.
///
/// Tokens are the bytes `0...255` (``vocabularySize`` 256), whatever the encoding of the text.
/// As in the reference recipe (`charlm` in `Benchmarks/torch_baseline.py`), the validation split is
/// the last `floor(count * validationFraction)` bytes and the training split everything before it.
public struct TextDataset: Sendable {
  /// The number of distinct tokens: one per byte value.
  public static let vocabularySize = 256

  /// The first part of the corpus, sampled by ``randomBatch(batch:length:generator:)``.
  public let train: [UInt8]
  /// The last part of the corpus, read in order by ``sequentialBatches(length:split:)``.
  public let validation: [UInt8]
  /// The file the bytes came from, or a name given by the caller; used in errors.
  public let source: String

  /// Which part of the corpus to read.
  public enum Split: Sendable { case train, validation }

  /// Splits `bytes`; throws when `validationFraction` is outside `(0, 1)` or either split would
  /// hold fewer than two bytes (one input and its target).
  public init(bytes: [UInt8], validationFraction: Double = 0.1, source: String = "<bytes>") throws {
    guard validationFraction > 0, validationFraction < 1 else {
      throw TextDatasetError(
        source: source, problem: "validation fraction must be in (0, 1), got \(validationFraction)")
    }
    let validationCount = Int((Double(bytes.count) * validationFraction).rounded(.down))
    let trainCount = bytes.count - validationCount
    guard validationCount >= 2, trainCount >= 2 else {
      throw TextDatasetError(
        source: source,
        problem: "too short: \(bytes.count) bytes give \(trainCount) training and \(validationCount) "
          + "validation bytes; each split needs at least 2")
    }
    self.train = Array(bytes[..<trainCount])
    self.validation = Array(bytes[trainCount...])
    self.source = source
  }

  /// Reads the file at `url` as bytes; throws an error naming the file when it cannot be read or
  /// is too short to split.
  public init(contentsOf url: URL, validationFraction: Double = 0.1) throws {
    let name = url.isFileURL ? url.path : url.absoluteString
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw TextDatasetError(source: name, problem: "cannot read the file (\(error.localizedDescription))")
    }
    try self.init(bytes: [UInt8](data), validationFraction: validationFraction, source: name)
  }

  /// The longest `length` that ``randomBatch(batch:length:generator:)`` accepts.
  public var maximumTrainLength: Int { train.count - 1 }

  /// `batch` windows of the training split, row-major `[batch * length]`: row `b` of `inputs` is
  /// `train[s_b ..< s_b + length]` and of `targets` `train[s_b + 1 ... s_b + length]`, the start
  /// `s_b` uniform over every window that fits (`0 ... train.count - length - 1`).
  public func randomBatch(batch: Int, length: Int, generator: inout SeededGenerator) throws -> (
    inputs: [Int], targets: [Int]
  ) {
    guard batch >= 1, length >= 1 else {
      throw TextDatasetError(
        source: source, problem: "batch and length must be positive, got batch \(batch), length \(length)")
    }
    guard length <= maximumTrainLength else {
      throw TextDatasetError(
        source: source,
        problem: "length \(length) needs \(length + 1) training bytes but the split has \(train.count)")
    }
    var inputs = [Int]()
    var targets = [Int]()
    inputs.reserveCapacity(batch * length)
    targets.reserveCapacity(batch * length)
    let lastStart = train.count - length - 1
    for _ in 0..<batch {
      let start = Int.random(in: 0...lastStart, using: &generator)
      for i in start..<(start + length) {
        inputs.append(Int(train[i]))
        targets.append(Int(train[i + 1]))
      }
    }
    return (inputs, targets)
  }

  /// Consecutive chunks of one split covering it in order, each byte but the first predicted
  /// exactly once: chunk `k` reads `k*length ..< k*length + length` and predicts the bytes one
  /// further on; the last chunk may be shorter (as `mean_loss_over_chunks` in the reference).
  public func sequentialBatches(length: Int, split: Split = .validation) throws -> SequentialBatches {
    guard length >= 1 else {
      throw TextDatasetError(source: source, problem: "length must be positive, got \(length)")
    }
    return SequentialBatches(bytes: split == .train ? train : validation, length: length)
  }
}

/// The chunks of ``TextDataset/sequentialBatches(length:split:)``: one sequence per element,
/// `inputs.count == targets.count <= length`, `targets` the inputs shifted by one.
public struct SequentialBatches: Sequence, IteratorProtocol, Sendable {
  /// The split being chunked.
  public let bytes: [UInt8]
  /// Predictions per chunk.
  public let length: Int
  private var start = 0

  init(bytes: [UInt8], length: Int) {
    self.bytes = bytes
    self.length = length
  }

  /// The number of chunks, `ceil((bytes.count - 1) / length)`.
  public var count: Int { (bytes.count - 1 + length - 1) / length }

  /// The next chunk: `inputs` and the next bytes as `targets`; `nil` at the end.
  public mutating func next() -> (inputs: [Int], targets: [Int])? {
    guard start < bytes.count - 1 else { return nil }
    let end = Swift.min(start + length, bytes.count - 1)
    let inputs = bytes[start..<end].map { Int($0) }
    let targets = bytes[(start + 1)...end].map { Int($0) }
    start += length
    return (inputs, targets)
  }
}
