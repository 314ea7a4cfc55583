/// Which positions of a ``MaskedSequenceBatch`` the training loss is taken on.
///
/// - ``all``: every position, `targets[i]` predicted from `inputs[...i]` for all `i` (safari's
///   synthetics train this way: the labels of a training row are the row shifted by one, none
///   masked);
/// - ``answers``: only the task's answer positions (``MaskedSequenceBatch/answerPositions``),
///   for associative recall the one position whose input is the query.
///
/// Validation loss and accuracy are always taken on the answers (safari masks every other
/// label of its test rows).
public enum LossPositions: String, Sendable, CaseIterable {
  /// Every position of every row.
  case all
  /// The answer positions only.
  case answers
}

/// A batch for a causal language model whose answers sit at some positions of each row.
///
/// `inputs`, `targets` and `answerMask` are row-major `[size * length]`; `targets[i]` is the
/// token that follows `inputs[i]` in the generated sequence, so `targets` is `inputs` shifted by
/// one with one more token at the end. `answerPositions[b]` lists the positions of row `b`
/// (indices within the row) whose targets are the task's answers, the ones accuracy is
/// measured on; `answerMask` is 1 there and 0 elsewhere. Which positions the training loss
/// covers is the objective's choice (``LossPositions``), read with ``lossIndices(_:)``.
public struct MaskedSequenceBatch: Sendable, Equatable {
  /// Rows.
  public var size: Int
  /// Tokens per row.
  public var length: Int
  /// `[size * length]` input tokens, row-major.
  public var inputs: [Int]
  /// `[size * length]`: the next token of each input.
  public var targets: [Int]
  /// `[size * length]`: 1 at the answer positions, 0 elsewhere.
  public var answerMask: [Float]
  /// The answer positions of each row.
  public var answerPositions: [[Int]]

  init(size: Int, length: Int) {
    self.size = size
    self.length = length
    inputs = []
    targets = []
    answerMask = []
    answerPositions = []
    inputs.reserveCapacity(size * length)
    targets.reserveCapacity(size * length)
    answerMask.reserveCapacity(size * length)
  }

  /// Appends a row from its `length + 1` tokens, with the given answer positions.
  mutating func append(sequence: [Int], answers: [Int]) {
    precondition(sequence.count == length + 1)
    inputs += sequence.dropLast()
    targets += sequence.dropFirst()
    var rowMask = [Float](repeating: 0, count: length)
    for p in answers { rowMask[p] = 1 }
    answerMask += rowMask
    answerPositions.append(answers)
  }

  /// Flat indices into `inputs`/`targets` (`row * length + position`) of the positions the loss
  /// covers: all `size * length` of them for ``LossPositions/all``, the answer positions row by
  /// row for ``LossPositions/answers``.
  public func lossIndices(_ positions: LossPositions) -> [Int] {
    switch positions {
    case .all: return Array(0..<size * length)
    case .answers:
      return answerPositions.enumerated().flatMap { row, positions in positions.map { row * length + $0 } }
    }
  }

  /// The rows `rows` of this batch, as a batch of their own.
  public func rows(_ rows: Range<Int>) -> MaskedSequenceBatch {
    if rows == 0..<size { return self }
    var out = MaskedSequenceBatch(size: rows.count, length: length)
    let span = rows.lowerBound * length..<rows.upperBound * length
    out.inputs = Array(inputs[span])
    out.targets = Array(targets[span])
    out.answerMask = Array(answerMask[span])
    out.answerPositions = Array(answerPositions[rows])
    return out
  }
}
