import LongConvTensors

/// An invalid parameter of a synthetic task (a length too short for its layout, an empty range).
public struct SyntheticTaskError: Error, Equatable, CustomStringConvertible {
  /// The task, for example `"associative recall"`.
  public var task: String
  /// What is wrong.
  public var problem: String

  /// An error about `task`.
  public init(task: String, problem: String) {
    self.task = task
    self.problem = problem
  }

  /// `<task>: <problem>`.
  public var description: String { "\(task): \(problem)" }
}

// MARK: - Distinct-key recall

/// Recall with distinct keys (the toolkit's first recall task, `longconv train --task
/// recall-distinct`): key-value pairs, then a query key; the model must produce its value.
/// Unlike ``AssociativeRecall`` (safari's task) keys do not repeat while unused ones remain,
/// keys and values have separate vocabularies, and the row has no separator before the query.
///
/// Vocabulary (``vocabularySize`` `= keyCount + valueCount + 1`):
/// keys `0 ..< keyCount`, values `keyCount ..< keyCount + valueCount`, padding `keyCount + valueCount`.
///
/// A row of `length` input tokens is `[pad] k1 v1 k2 v2 … kP vP q` with `P = (length - 1) / 2`
/// pairs (one leading pad when `length` is even). Within a row each key has one value; the keys
/// are distinct when `P <= keyCount` (otherwise every key appears before any repeats). The query
/// `q` is one of the row's keys. The answer is at the last position, `length - 1` (input `q`): its
/// target is the value paired with `q`. Other targets are the next tokens of the row.
public struct DistinctKeyRecall: Sendable {
  /// Distinct keys.
  public let keyCount: Int
  /// Distinct values.
  public let valueCount: Int
  /// The seeded source of the batches.
  public var generator: SeededGenerator

  /// Keys, values and the pad token.
  public var vocabularySize: Int { keyCount + valueCount + 1 }
  /// The padding token.
  public var padToken: Int { keyCount + valueCount }

  /// A task drawing from `seed`; throws for a count below 1.
  public init(seed: UInt64, keyCount: Int = 64, valueCount: Int = 64) throws {
    guard keyCount >= 1, valueCount >= 1 else {
      throw SyntheticTaskError(
        task: "distinct-key recall", problem: "key and value counts must be positive")
    }
    self.keyCount = keyCount
    self.valueCount = valueCount
    generator = SeededGenerator(seed: seed)
  }

  /// `size` rows of `length >= 3` tokens (at least one pair and the query).
  public mutating func batch(size: Int, length: Int) throws -> MaskedSequenceBatch {
    try checkSize(size, task: "distinct-key recall")
    guard length >= 3 else {
      throw SyntheticTaskError(
        task: "distinct-key recall", problem: "length must be at least 3, got \(length)")
    }
    var batch = MaskedSequenceBatch(size: size, length: length)
    for _ in 0..<size {
      batch.append(sequence: row(length: length), answers: [length - 1])
    }
    return batch
  }

  /// The `length + 1` tokens of one row: the inputs followed by the answer.
  mutating func row(length: Int) -> [Int] {
    let pairs = (length - 1) / 2
    let values = (0..<keyCount).map { _ in keyCount + Int.random(in: 0..<valueCount, using: &generator) }
    var keys = [Int]()
    keys.reserveCapacity(pairs)
    while keys.count < pairs {
      keys += Array(0..<keyCount).shuffled(using: &generator).prefix(pairs - keys.count)
    }
    var sequence = length % 2 == 0 ? [padToken] : []
    for key in keys { sequence += [key, values[key]] }
    let query = keys[Int.random(in: 0..<pairs, using: &generator)]
    sequence += [query, values[query]]
    return sequence
  }
}

// MARK: - Selective copying

/// Selective copying: tokens scattered among blanks, a separator, then the tokens again in order.
///
/// Vocabulary (``vocabularySize`` `= tokenCount + 2`): data tokens `0 ..< tokenCount`, blank
/// (noise) `tokenCount`, separator `tokenCount + 1`.
///
/// A row of `length` input tokens is a region of `R = length - copyCount` tokens holding
/// `copyCount` data tokens at random positions (in order) and blanks elsewhere, the separator,
/// then the first `copyCount - 1` copied tokens (teacher forcing). The answer positions are
/// `R ..< length` (the separator and after): their targets are the copied tokens in order.
/// Needs `length >= 2 * copyCount`.
public struct SelectiveCopying: Sendable {
  /// Distinct data tokens.
  public let tokenCount: Int
  /// Data tokens to copy per row.
  public let copyCount: Int
  /// The seeded source of the batches.
  public var generator: SeededGenerator

  /// Data tokens, the blank and the separator.
  public var vocabularySize: Int { tokenCount + 2 }
  /// The noise token between data tokens.
  public var blankToken: Int { tokenCount }
  /// The token that starts the copy.
  public var separatorToken: Int { tokenCount + 1 }

  /// A task drawing from `seed`; throws for a count below 1.
  public init(seed: UInt64, tokenCount: Int = 16, copyCount: Int = 16) throws {
    guard tokenCount >= 1, copyCount >= 1 else {
      throw SyntheticTaskError(task: "selective copying", problem: "token and copy counts must be positive")
    }
    self.tokenCount = tokenCount
    self.copyCount = copyCount
    generator = SeededGenerator(seed: seed)
  }

  /// `size` rows of `length` tokens; throws when `length < 2 copyCount`.
  public mutating func batch(size: Int, length: Int) throws -> MaskedSequenceBatch {
    try checkSize(size, task: "selective copying")
    guard length >= 2 * copyCount else {
      throw SyntheticTaskError(
        task: "selective copying",
        problem: "length must be at least 2 * copyCount = \(2 * copyCount), got \(length)")
    }
    let region = length - copyCount
    var batch = MaskedSequenceBatch(size: size, length: length)
    for _ in 0..<size {
      let tokens = (0..<copyCount).map { _ in Int.random(in: 0..<tokenCount, using: &generator) }
      let positions = Array(0..<region).shuffled(using: &generator).prefix(copyCount).sorted()
      var sequence = [Int](repeating: blankToken, count: region)
      for (p, t) in zip(positions, tokens) { sequence[p] = t }
      sequence.append(separatorToken)
      sequence += tokens
      batch.append(sequence: sequence, answers: Array(region..<length))
    }
    return batch
  }
}

// MARK: - ListOps

/// ListOps (Long Range Arena): nested list operations over digits, a 10-class classification.
///
/// Vocabulary (``vocabularySize`` 17): digits `0...9` are tokens `0...9`; `MIN` 10, `MAX` 11,
/// `MED` 12, `SUM_MOD` 13; `[` 14, `]` 15; padding 16. An expression is a digit or
/// `[ OP e1 … en ]` with `minArity <= n <= maxArity` arguments, nested at most `maxDepth`
/// operators deep; `[MIN 3 [MAX 2 9 ] 1 ]` is the tokens `14 10 3 14 11 2 9 15 1 15`.
/// `MIN`/`MAX` are the extremes, `SUM_MOD` the sum mod 10, and `MED` the median of the sorted
/// arguments, the lower-rounded mean of the middle two for an even count (`int(np.median)`).
/// The outermost expression is always an operation. Each row is padded after the expression to
/// `length`; the label is its value, `0...9`. Suited to a bidirectional classifier.
public struct ListOps: Sendable {
  /// The non-digit tokens.
  public enum Token {
    /// `MIN` (10): the smallest argument.
    public static let min = 10
    /// `MAX` (11): the largest argument.
    public static let max = 11
    /// `MED` (12): the median (the lower-rounded mean of the middle two for an even count).
    public static let median = 12
    /// `SUM_MOD` (13): the sum of the arguments mod 10.
    public static let sumMod = 13
    /// `[` (14): opens an operation.
    public static let open = 14
    /// `]` (15): closes an operation.
    public static let close = 15
    /// Padding (16), after the expression up to the row length.
    public static let pad = 16
  }

  /// Digits, operators, brackets and padding.
  public static let vocabularySize = 17
  /// The labels `0...9`.
  public static let classCount = 10

  /// The deepest nesting of operations.
  public let maxDepth: Int
  /// The fewest arguments of an operation.
  public let minArity: Int
  /// The most arguments of an operation.
  public let maxArity: Int
  /// The probability that an argument is a digit rather than a nested operation (when deeper
  /// nesting is still allowed and fits).
  public let leafProbability: Double
  /// The seeded source of the expressions.
  public var generator: SeededGenerator

  /// A padded batch: `inputs` row-major `[size * length]`, `labels[b]` in `0...9`, and
  /// `lengths[b]` the number of tokens before the padding.
  public struct Batch: Sendable, Equatable {
    /// Rows: expressions.
    public var size: Int
    /// Tokens per row, padding included.
    public var length: Int
    /// `[size * length]` tokens, row-major, each row padded with ``ListOps/Token/pad``.
    public var inputs: [Int]
    /// `[size]`: each expression's value, `0...9`.
    public var labels: [Int]
    /// `[size]`: the tokens before the padding in each row.
    public var lengths: [Int]
  }

  /// Expressions drawn from `seed`; throws unless `maxDepth >= 1`, `1 <= minArity <= maxArity`
  /// and `leafProbability` is in `[0, 1]`.
  public init(
    seed: UInt64, maxDepth: Int = 10, minArity: Int = 2, maxArity: Int = 10, leafProbability: Double = 0.75
  ) throws {
    guard maxDepth >= 1, minArity >= 1, maxArity >= minArity, (0...1).contains(leafProbability) else {
      throw SyntheticTaskError(
        task: "ListOps",
        problem: "need maxDepth >= 1, 1 <= minArity <= maxArity and leafProbability in [0, 1]; got "
          + "maxDepth \(maxDepth), arity \(minArity)...\(maxArity), leafProbability \(leafProbability)")
    }
    self.maxDepth = maxDepth
    self.minArity = minArity
    self.maxArity = maxArity
    self.leafProbability = leafProbability
    generator = SeededGenerator(seed: seed)
  }

  /// `size` expressions of at most `length` tokens each, padded to `length`;
  /// `length` must hold the smallest operation, `minArity + 3` tokens.
  public mutating func batch(size: Int, length: Int) throws -> Batch {
    try checkSize(size, task: "ListOps")
    guard length >= minArity + 3 else {
      throw SyntheticTaskError(
        task: "ListOps", problem: "length must be at least minArity + 3 = \(minArity + 3), got \(length)")
    }
    var batch = Batch(size: size, length: length, inputs: [], labels: [], lengths: [])
    batch.inputs.reserveCapacity(size * length)
    for _ in 0..<size {
      var tokens = [Int]()
      let value = operation(depth: 1, budget: length, into: &tokens)
      batch.labels.append(value)
      batch.lengths.append(tokens.count)
      batch.inputs += tokens
      batch.inputs += repeatElement(Token.pad, count: length - tokens.count)
    }
    return batch
  }

  /// Appends an expression of at most `budget` tokens and returns its value.
  private mutating func expression(depth: Int, budget: Int, into tokens: inout [Int]) -> Int {
    if depth <= maxDepth, budget >= minArity + 3, generator.nextUniformDouble() >= leafProbability {
      return operation(depth: depth, budget: budget, into: &tokens)
    }
    let digit = Int.random(in: 0...9, using: &generator)
    tokens.append(digit)
    return digit
  }

  /// Appends `[ OP args… ]` of at most `budget >= minArity + 3` tokens and returns its value.
  private mutating func operation(depth: Int, budget: Int, into tokens: inout [Int]) -> Int {
    let op = Int.random(in: Token.min...Token.sumMod, using: &generator)
    let arity = Int.random(in: minArity...Swift.min(maxArity, budget - 3), using: &generator)
    tokens += [Token.open, op]
    var remaining = budget - 3  // tokens left for the arguments
    var values = [Int]()
    for i in 0..<arity {
      // Keep one token for each argument still to come.
      let argumentBudget = remaining - (arity - i - 1)
      let before = tokens.count
      values.append(expression(depth: depth + 1, budget: argumentBudget, into: &tokens))
      remaining -= tokens.count - before
    }
    tokens.append(Token.close)
    return Self.apply(op, values)
  }

  /// The value of operator token `op` on `values`.
  public static func apply(_ op: Int, _ values: [Int]) -> Int {
    switch op {
    case Token.min: return values.min()!
    case Token.max: return values.max()!
    case Token.median:
      let sorted = values.sorted()
      let mid = sorted.count / 2
      return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    case Token.sumMod: return values.reduce(0, +) % 10
    default: preconditionFailure("not an operator token: \(op)")
    }
  }
}

func checkSize(_ size: Int, task: String) throws {
  guard size >= 1 else {
    throw SyntheticTaskError(task: task, problem: "batch size must be positive, got \(size)")
  }
}
