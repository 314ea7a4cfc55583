import Foundation
import LongConv
import LongConvTensors

/// What a validation measured: the loss and, for objectives with answers to get right, the
/// accuracy.
public struct ValidationResult: Sendable, Equatable {
  /// Mean cross-entropy in nats.
  public var loss: Double
  /// Fraction of answers whose highest logit is the right token (or class), or `nil`.
  public var accuracy: Double?

  /// A result.
  public init(loss: Double, accuracy: Double? = nil) {
    self.loss = loss
    self.accuracy = accuracy
  }
}

/// What a model is trained on: the loss of the next training batch and, optionally, a
/// validation loss. Batches come from a seeded stream, so replaying `skip(batches:)` from the
/// same seed puts the data at the same position (how training resumes exactly).
public protocol TrainingObjective {
  /// Loss on the next training batch (recorded, for `backward()`), and the tokens it covered.
  mutating func nextLoss(_ model: any SequenceModel) throws -> (loss: Tensor, tokens: Int)
  /// The loss of this process's share of the next global batch (every process draws the whole
  /// batch and keeps its rows, ``BatchShard``), its tokens and its weight in the global mean.
  /// Defaults to ``nextLoss(_:)`` for ``BatchShard/whole`` and refuses any other shard.
  mutating func nextLoss(_ model: any SequenceModel, shard: BatchShard) throws -> ShardLoss
  /// Advances the batch stream by `batches` without computing anything.
  mutating func skip(batches: Int) throws
  /// A validation loss (no graph recorded), or `nil` when the objective has none.
  func validationLoss(_ model: any SequenceModel) throws -> Double?
  /// The validation loss and, where the objective has one, the accuracy (no graph recorded);
  /// `nil` when the objective has no validation. Defaults to ``validationLoss(_:)`` alone.
  func validate(_ model: any SequenceModel) throws -> ValidationResult?
  /// Throws ``TrainingError/wrongModel(_:)`` when `model` cannot be trained on this objective
  /// (wrong kind of model, a vocabulary smaller than the data's, a wrong class count).
  func check(_ model: any SequenceModel) throws
}

extension TrainingObjective {
  /// Accepts every model.
  public func check(_ model: any SequenceModel) throws {}

  /// ``validationLoss(_:)`` without an accuracy.
  public func validate(_ model: any SequenceModel) throws -> ValidationResult? {
    try validationLoss(model).map { ValidationResult(loss: $0) }
  }
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

  /// The rows of `shard` of the next `batch` windows: their mean next-byte cross-entropy
  /// (recorded), weighted by their token count.
  public mutating func nextLoss(_ model: any SequenceModel, shard: BatchShard) throws -> ShardLoss {
    if shard.count == 1 {
      let (loss, tokens) = try nextLoss(model)
      return ShardLoss(loss: loss, tokens: tokens, weight: tokens)
    }
    let lm = try languageModel(model)
    let (inputs, targets) = try data.randomBatch(batch: batch, length: length, generator: &generator)
    let rows = shard.rows(of: batch)
    let span = rows.lowerBound * length..<rows.upperBound * length
    let loss = try lm.loss(
      inputs: Array(inputs[span]), targets: Array(targets[span]), batch: rows.count, length: length)
    return ShardLoss(loss: loss, tokens: span.count, weight: span.count)
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

/// A synthetic task whose rows carry answers at some positions.
public protocol MaskedSequenceTask {
  /// Tokens the task uses; the model's vocabulary must hold them.
  var vocabularySize: Int { get }
  /// `size` rows of `length` tokens and their answer positions; throws ``SyntheticTaskError`` for a size or
  /// length the task cannot lay out.
  mutating func batch(size: Int, length: Int) throws -> MaskedSequenceBatch
}

extension AssociativeRecall: MaskedSequenceTask {}
extension InductionHead: MaskedSequenceTask {}
extension DistinctKeyRecall: MaskedSequenceTask {}
extension SelectiveCopying: MaskedSequenceTask {}

/// A causal language model on a synthetic task with answer positions (associative recall,
/// induction head, selective copying).
///
/// Training takes the mean cross-entropy over the positions ``lossPositions`` selects: every
/// position (safari's synthetics) or the answers only. Validation uses `validationRows` rows of a
/// second task instance (another seed), drawn once and the same at every call, and measures on
/// the answer positions only: the mean cross-entropy of the answers and the fraction whose
/// highest logit is the answer (safari's `accuracy_ignore_index` on test rows whose other
/// labels are masked).
public struct MaskedTaskObjective: TrainingObjective {
  var task: any MaskedSequenceTask
  /// The held-out rows, in batches of at most `batch`.
  let validationBatches: [MaskedSequenceBatch]
  /// Rows per batch and tokens per row.
  public let batch: Int, length: Int
  /// The positions the training loss covers.
  public let lossPositions: LossPositions

  /// Batches of `task` for training (loss over `lossPositions`) and `validationRows` rows of
  /// `validationTask` (default: one batch) for validation.
  public init(
    task: any MaskedSequenceTask, validationTask: any MaskedSequenceTask, batch: Int, length: Int,
    lossPositions: LossPositions = .answers, validationRows: Int? = nil
  ) throws {
    self.task = task
    self.batch = batch
    self.length = length
    self.lossPositions = lossPositions
    var held = validationTask
    var batches: [MaskedSequenceBatch] = []
    var remaining = validationRows ?? batch
    while remaining > 0 {
      let size = min(batch, remaining)
      batches.append(try held.batch(size: size, length: length))
      remaining -= size
    }
    validationBatches = batches
  }

  /// Logits `[size * length, vocabulary]` of batch `b`.
  static func logits(_ model: any SequenceModel, _ b: MaskedSequenceBatch) throws -> Tensor {
    let lm = try languageModel(model)
    return try lm.logits(b.inputs, batch: b.size, length: b.length).reshaped([
      b.size * b.length, lm.vocabulary,
    ])
  }

  /// Mean cross-entropy over the flat positions `indices` of `b`'s rows.
  static func loss(_ logits: Tensor, _ b: MaskedSequenceBatch, indices: [Int]) -> Tensor {
    if indices.count == b.size * b.length { return logits.crossEntropy(targets: b.targets) }
    return logits.gather(rows: indices).crossEntropy(targets: indices.map { b.targets[$0] })
  }

  /// Requires a causal language model whose vocabulary holds the task's ``MaskedSequenceTask/vocabularySize``
  /// tokens; throws ``TrainingError/wrongModel(_:)`` otherwise.
  public func check(_ model: any SequenceModel) throws {
    try requireLanguageModel(model, vocabulary: task.vocabularySize, data: "\(type(of: task))")
  }

  /// Mean cross-entropy in nats (recorded) over the ``lossPositions`` of the next `batch x length` task batch,
  /// and the token count `batch * length`.
  public mutating func nextLoss(_ model: any SequenceModel) throws -> (loss: Tensor, tokens: Int) {
    let b = try task.batch(size: batch, length: length)
    return (Self.loss(try Self.logits(model, b), b, indices: b.lossIndices(lossPositions)), batch * length)
  }

  /// The rows of `shard` of the next task batch: the mean cross-entropy (recorded) over their
  /// ``lossPositions``, weighted by the number of those positions.
  public mutating func nextLoss(_ model: any SequenceModel, shard: BatchShard) throws -> ShardLoss {
    let b = try task.batch(size: batch, length: length).rows(shard.rows(of: batch))
    let indices = b.lossIndices(lossPositions)
    return ShardLoss(
      loss: Self.loss(try Self.logits(model, b), b, indices: indices), tokens: b.size * b.length,
      weight: indices.count)
  }

  /// Draws and discards `batches` task batches.
  public mutating func skip(batches: Int) throws {
    for _ in 0..<batches { _ = try task.batch(size: batch, length: length) }
  }

  /// The loss of ``validate(_:)``.
  public func validationLoss(_ model: any SequenceModel) throws -> Double? { try validate(model)?.loss }

  /// Over the answer positions of the validation rows, without recording: the mean cross-entropy
  /// in nats and the fraction of answers whose highest logit (first on ties) is the target.
  public func validate(_ model: any SequenceModel) throws -> ValidationResult? {
    var total = (loss: 0.0, right: 0, count: 0)
    for b in validationBatches {
      let scores = try Tensor.withoutRecording { Self.answerScores(try Self.logits(model, b), b) }
      total = (total.loss + scores.loss, total.right + scores.right, total.count + scores.count)
    }
    guard total.count > 0 else { return nil }
    return ValidationResult(
      loss: total.loss / Double(total.count), accuracy: Double(total.right) / Double(total.count))
  }

  /// On the answer positions of `b` only, from its logits `[size * length, vocabulary]`: the
  /// summed cross-entropy in nats, the answers whose highest logit (first on ties) is the target,
  /// and the number of answers. Every other position is ignored.
  public static func answerScores(_ logits: Tensor, _ b: MaskedSequenceBatch) -> (
    loss: Double, right: Int, count: Int
  ) {
    let indices = b.lossIndices(.answers)
    guard !indices.isEmpty else { return (0, 0, 0) }
    let targets = indices.map { b.targets[$0] }
    let answers = logits.gather(rows: indices)
    let loss = Double(answers.crossEntropy(targets: targets).scalar) * Double(indices.count)
    let right = zip(argmaxRows(answers), targets).filter { $0 == $1 }.count
    return (loss, right, indices.count)
  }
}

/// The column of the largest entry of each row of a `[rows, columns]` tensor (the first on ties).
func argmaxRows(_ matrix: Tensor) -> [Int] {
  let columns = matrix.shape[1]
  return matrix.scalars.withUnsafeBufferPointer { x in
    (0..<matrix.shape[0]).map { r in
      var best = 0
      for c in 1..<columns where x[r * columns + c] > x[r * columns + best] { best = c }
      return best
    }
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

  /// The rows of `shard` of the next `batch` expressions: the mean cross-entropy (recorded),
  /// weighted by their number.
  public mutating func nextLoss(_ model: any SequenceModel, shard: BatchShard) throws -> ShardLoss {
    let b = try task.batch(size: batch, length: length)
    let rows = shard.rows(of: batch)
    let part = ListOps.Batch(
      size: rows.count, length: length,
      inputs: Array(b.inputs[rows.lowerBound * length..<rows.upperBound * length]),
      labels: Array(b.labels[rows]), lengths: Array(b.lengths[rows]))
    return ShardLoss(
      loss: try Self.loss(model, part, batch: rows.count, length: length), tokens: rows.count * length,
      weight: rows.count)
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
