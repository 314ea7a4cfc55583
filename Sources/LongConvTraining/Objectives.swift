import Foundation
import LongConv

/// What a model is trained on: the loss of the next training batch and, optionally, a
/// validation loss. Batches come from a seeded stream, so replaying `skip(batches:)` from the
/// same seed puts the data at the same position (how training resumes exactly).
public protocol TrainingObjective {
  /// Loss on the next training batch (recorded, for `backward()`), and the tokens it covered.
  mutating func nextLoss(_ model: any SequenceModel) throws -> (loss: Tensor, tokens: Int)
  /// Advances the batch stream by `batches` without computing anything.
  mutating func skip(batches: Int) throws
  /// A validation loss (no graph recorded), or `nil` when the objective has none.
  func validationLoss(_ model: any SequenceModel) throws -> Double?
  /// Throws ``TrainingError/wrongModel(_:)`` when `model` cannot be trained on this objective
  /// (wrong kind of model, a vocabulary smaller than the data's, a wrong class count).
  func check(_ model: any SequenceModel) throws
}

extension TrainingObjective {
  /// Accepts every model.
  public func check(_ model: any SequenceModel) throws {}
}

/// Checks that `model` is a causal language model whose vocabulary holds `tokens` tokens.
func requireLanguageModel(_ model: any SequenceModel, vocabulary tokens: Int, data: String) throws {
  let lm = try languageModel(model)
  guard lm.vocabulary >= tokens else {
    throw TrainingError.wrongModel(
      "the model's vocab_size \(lm.vocabulary) is smaller than the \(tokens) tokens of \(data)")
  }
}

/// A language model on byte-level text: random windows of the training split; validation on
/// the first `validationChunks` chunks of the validation split (all of it when `nil`).
public struct TextObjective: TrainingObjective {
  /// The training and validation bytes.
  public let data: TextDataset
  /// Sequences per batch and tokens per sequence.
  public let batch: Int, length: Int
  /// Validation chunks of `length` tokens (all of them when `nil`).
  public let validationChunks: Int?
  var generator: SeededGenerator

  /// Random windows of `data`'s training split (`length` inputs and their next bytes), `batch`
  /// per step, drawn from `seed`.
  public init(data: TextDataset, batch: Int, length: Int, seed: UInt64, validationChunks: Int? = 32) {
    self.data = data
    self.batch = batch
    self.length = length
    self.validationChunks = validationChunks
    generator = SeededGenerator(seed: seed)
  }

  /// Mean next-byte cross-entropy in nats (recorded) on `batch` random windows of `length`, and the token
  /// count `batch * length`; throws ``TrainingError/wrongModel(_:)`` when the model is not a causal
  /// language model.
  public mutating func nextLoss(_ model: any SequenceModel) throws -> (loss: Tensor, tokens: Int) {
    let lm = try languageModel(model)
    let (inputs, targets) = try data.randomBatch(batch: batch, length: length, generator: &generator)
    return (try lm.loss(inputs: inputs, targets: targets, batch: batch, length: length), batch * length)
  }

  /// Draws and discards `batches` batches of windows, leaving the generator where ``nextLoss(_:)`` would.
  public mutating func skip(batches: Int) throws {
    for _ in 0..<batches { _ = try data.randomBatch(batch: batch, length: length, generator: &generator) }
  }

  /// Requires a causal language model whose vocabulary holds the 256 byte tokens; throws
  /// ``TrainingError/wrongModel(_:)`` otherwise.
  public func check(_ model: any SequenceModel) throws {
    try requireLanguageModel(model, vocabulary: TextDataset.vocabularySize, data: "byte-level text")
  }

  /// Mean next-byte cross-entropy in nats over the first `validationChunks * length + 1` validation bytes
  /// (all of them when `nil`), in chunks of `length`, without recording.
  public func validationLoss(_ model: any SequenceModel) throws -> Double? {
    let lm = try languageModel(model)
    let tokens = data.validation.map(Int.init)
    let limit = validationChunks.map { min(tokens.count, $0 * length + 1) } ?? tokens.count
    return try lm.evaluate(tokens: Array(tokens[..<limit]), length: length).lossNats
  }
}

/// A synthetic task whose batches score only some positions.
public protocol MaskedSequenceTask {
  /// Tokens the task uses; the model's vocabulary must hold them.
  var vocabularySize: Int { get }
  /// `size` rows of `length` tokens and their scored positions; throws ``SyntheticTaskError`` for a size or
  /// length the task cannot lay out.
  mutating func batch(size: Int, length: Int) throws -> MaskedSequenceBatch
}

extension AssociativeRecall: MaskedSequenceTask {}
extension SelectiveCopying: MaskedSequenceTask {}

/// A causal language model on a synthetic task with scored positions (associative recall,
/// selective copying): cross-entropy only where the task scores. Validation uses one batch of
/// a second task instance (another seed), the same every time.
public struct MaskedTaskObjective: TrainingObjective {
  var task: any MaskedSequenceTask
  let validationTask: any MaskedSequenceTask
  /// Rows per batch and tokens per row.
  public let batch: Int, length: Int

  /// Batches of `task` for training and of `validationTask` for validation.
  public init(task: any MaskedSequenceTask, validationTask: any MaskedSequenceTask, batch: Int, length: Int) {
    self.task = task
    self.validationTask = validationTask
    self.batch = batch
    self.length = length
  }

  static func loss(_ model: any SequenceModel, _ b: MaskedSequenceBatch) throws -> Tensor {
    let lm = try languageModel(model)
    let logits = try lm.logits(b.inputs, batch: b.size, length: b.length)
    var rows: [Int] = []
    var targets: [Int] = []
    for (row, positions) in b.scoredPositions.enumerated() {
      for p in positions {
        rows.append(row * b.length + p)
        targets.append(b.targets[row * b.length + p])
      }
    }
    return logits.reshaped([b.size * b.length, lm.vocabulary]).gather(rows: rows).crossEntropy(
      targets: targets)
  }

  /// Requires a causal language model whose vocabulary holds the task's ``MaskedSequenceTask/vocabularySize``
  /// tokens; throws ``TrainingError/wrongModel(_:)`` otherwise.
  public func check(_ model: any SequenceModel) throws {
    try requireLanguageModel(model, vocabulary: task.vocabularySize, data: "\(type(of: task))")
  }

  /// Mean cross-entropy in nats (recorded) over the scored positions of the next `batch x length` task batch,
  /// and the token count `batch * length`.
  public mutating func nextLoss(_ model: any SequenceModel) throws -> (loss: Tensor, tokens: Int) {
    let b = try task.batch(size: batch, length: length)
    return (try Self.loss(model, b), batch * length)
  }

  /// Draws and discards `batches` task batches.
  public mutating func skip(batches: Int) throws {
    for _ in 0..<batches { _ = try task.batch(size: batch, length: length) }
  }

  /// Mean cross-entropy in nats over the scored positions of the validation task's first batch (the same
  /// batch every call), without recording.
  public func validationLoss(_ model: any SequenceModel) throws -> Double? {
    var held = validationTask
    let b = try held.batch(size: batch, length: length)
    return Double(try Tensor.withoutRecording { try Self.loss(model, b) }.scalar)
  }
}

/// The bidirectional classifier on ListOps.
public struct ListOpsObjective: TrainingObjective {
  var task: ListOps
  let seed: UInt64
  /// Expressions per batch and tokens per row (padded).
  public let batch: Int, length: Int

  /// ListOps expressions nested at most `maxDepth` deep, drawn from `seed`; the validation loss
  /// is taken on one fixed batch drawn from a seed derived from `seed`.
  public init(seed: UInt64, batch: Int, length: Int, maxDepth: Int = 4) throws {
    task = try ListOps(seed: seed, maxDepth: maxDepth)
    self.seed = seed
    self.batch = batch
    self.length = length
  }

  /// Requires a ``LongConv/SequenceClassifier`` with 10 classes and a vocabulary of at least 17 tokens;
  /// throws ``TrainingError/wrongModel(_:)`` otherwise.
  public func check(_ model: any SequenceModel) throws {
    guard let classifier = model as? SequenceClassifier else {
      throw TrainingError.wrongModel(
        "ListOps trains a classifier (\"model\": \"classifier\", \"num_classes\": 10)")
    }
    guard classifier.head.outputCount == ListOps.classCount else {
      throw TrainingError.wrongModel(
        "ListOps has \(ListOps.classCount) classes; the model's num_classes is \(classifier.head.outputCount)"
      )
    }
    guard classifier.embedding.vocabulary >= ListOps.vocabularySize else {
      throw TrainingError.wrongModel(
        "the model's vocab_size \(classifier.embedding.vocabulary) is smaller than ListOps' \(ListOps.vocabularySize) tokens"
      )
    }
  }

  static func loss(_ model: any SequenceModel, _ b: ListOps.Batch, batch: Int, length: Int) throws -> Tensor {
    guard let classifier = model as? SequenceClassifier else {
      throw TrainingError.wrongModel(
        "ListOps trains a classifier (\"model\": \"classifier\", \"num_classes\": 10)")
    }
    return try classifier.logits(b.inputs, batch: batch, length: length).crossEntropy(targets: b.labels)
  }

  /// Mean cross-entropy in nats (recorded) of the classifier's logits against the values of the next `batch`
  /// expressions, and the token count `batch * length` (padding included).
  public mutating func nextLoss(_ model: any SequenceModel) throws -> (loss: Tensor, tokens: Int) {
    let b = try task.batch(size: batch, length: length)
    return (try Self.loss(model, b, batch: batch, length: length), batch * length)
  }

  /// Draws and discards `batches` batches of expressions.
  public mutating func skip(batches: Int) throws {
    for _ in 0..<batches { _ = try task.batch(size: batch, length: length) }
  }

  /// Mean cross-entropy in nats on one fixed batch drawn from the seed `seed &+ 0x5EED`, without recording.
  public func validationLoss(_ model: any SequenceModel) throws -> Double? {
    var held = try ListOps(seed: seed &+ 0x5EED, maxDepth: task.maxDepth)
    let b = try held.batch(size: batch, length: length)
    return Double(
      try Tensor.withoutRecording { try Self.loss(model, b, batch: batch, length: length) }.scalar)
  }
}

func languageModel(_ model: any SequenceModel) throws -> CausalLanguageModel {
  guard let lm = model as? CausalLanguageModel else {
    throw TrainingError.wrongModel("this objective trains a causal language model (\"model\": \"causal_lm\")")
  }
  return lm
}
