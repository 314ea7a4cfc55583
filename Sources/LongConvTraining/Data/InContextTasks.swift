import LongConvTensors

/// The token layout of safari's in-context synthetics (`src/dataloaders/synthetics.py`,
/// `ICLDataModule`): a vocabulary of `V` tokens of which two are special.
///
/// safari names the `V - 2` ordinary tokens by the strings `"0" ... "V-3"`, adds the noop `"."`
/// and the separator (its `copy_prefix`) `"=>"`, and numbers all of them in sorted string
/// order. `"."` sorts before every digit and `"=>"` after, so the ids are: noop `0`, ordinary
/// tokens `1 ... V-2` (in the sorted order of their names), separator `V - 1`. Associative
/// recall splits the ordinary tokens in that order: the first `(V-2) / 2` are keys, the rest
/// values.
public struct InContextVocabulary: Sendable, Equatable {
  /// `V`, special tokens included.
  public let size: Int

  /// The layout for `size >= 4` tokens (at least two ordinary ones).
  public init(size: Int, task: String) throws {
    guard size >= 4 else {
      throw SyntheticTaskError(
        task: task, problem: "the vocabulary needs at least 4 tokens (2 of them special), got \(size)")
    }
    self.size = size
  }

  /// safari's `"."` (`noop`): the answer to a query whose key is absent, which its default
  /// (`allow_dot: false`) never produces.
  public var noop: Int { 0 }
  /// safari's `"=>"` (`copy_prefix`): the separator before the query.
  public var separator: Int { size - 1 }
  /// The ordinary tokens, `1 ... V-2`.
  public var ordinary: ClosedRange<Int> { 1...(size - 2) }
  /// Associative recall's keys: the first `(V-2) / 2` ordinary tokens.
  public var keys: ClosedRange<Int> { 1...((size - 2) / 2) }
  /// Associative recall's values: the remaining ordinary tokens.
  public var values: ClosedRange<Int> { ((size - 2) / 2 + 1)...(size - 2) }
}

// MARK: - Associative recall

/// Associative recall as safari defines it (`generate_assoc_recall` with one key per pair and
/// `allow_dot: false`, the `ICLDataModule` default).
///
/// Each row draws a fresh map from every key to a value (uniform, values may repeat across
/// keys), then `P` pairs `k v` whose keys are drawn uniformly **with replacement** (a key
/// repeats, always with its row's value), then the separator, a query key and its value:
///
/// ```
/// k1 v1 k2 v2 ... kP vP => q  |  answer map(q)
/// ```
///
/// The query is a key drawn uniformly from all keys, redrawn uniformly from the keys present in
/// the row when it is absent. A row of `length = 2P + 2` input tokens holds `P` pairs, `=>` and
/// `q`; its targets are the inputs shifted by one followed by the answer, so the answer is the
/// target at the last position, `length - 1`, the row's only answer position. safari's
/// `input_seq_len = L` gives `P = L / 2` (integer division) and rows of ``rowLength(inputLength:)``
/// `= 2 (L / 2) + 2` tokens (258 for `L = 256`).
///
/// Token ids follow ``InContextVocabulary``: for `V = 10`, keys `1...4`, values `5...8`,
/// separator `9` (noop `0` unused). Chance on the answer is `1 / values`; answering with the
/// value seen most often in the row (a query-blind shortcut) scores about 0.5 for `V = 10`.
/// safari trains on a fixed set of 5000 such rows; here rows come from a seeded stream.
public struct AssociativeRecall: Sendable {
  /// The tokens.
  public let vocabulary: InContextVocabulary
  /// The seeded source of the rows.
  public var generator: SeededGenerator

  /// `V`, special tokens included.
  public var vocabularySize: Int { vocabulary.size }

  /// A task over `vocabularySize >= 4` tokens drawing from `seed`.
  public init(vocabularySize: Int, seed: UInt64) throws {
    vocabulary = try InContextVocabulary(size: vocabularySize, task: "associative recall")
    generator = SeededGenerator(seed: seed)
  }

  /// Row length for safari's `input_seq_len`: `2 (inputLength / 2) + 2`.
  public static func rowLength(inputLength: Int) -> Int { 2 * (inputLength / 2) + 2 }

  /// `size` rows of `length` tokens; `length` must be even and at least 4 (one pair, `=>`, `q`).
  public mutating func batch(size: Int, length: Int) throws -> MaskedSequenceBatch {
    try checkSize(size, task: "associative recall")
    guard length >= 4, length % 2 == 0 else {
      throw SyntheticTaskError(
        task: "associative recall",
        problem:
          "rows are 2 P + 2 tokens (P pairs, the separator, the query): need an even length >= 4, got \(length)"
      )
    }
    var batch = MaskedSequenceBatch(size: size, length: length)
    for _ in 0..<size {
      batch.append(sequence: row(pairs: (length - 2) / 2), answers: [length - 1])
    }
    return batch
  }

  /// The `2 pairs + 3` tokens of one row: pairs, separator, query, answer.
  mutating func row(pairs: Int) -> [Int] {
    let keys = vocabulary.keys
    let map = keys.map { _ in Int.random(in: vocabulary.values, using: &generator) }
    var sequence: [Int] = []
    sequence.reserveCapacity(2 * pairs + 3)
    var present = [Bool](repeating: false, count: keys.count)
    var presentKeys: [Int] = []
    for _ in 0..<pairs {
      let key = Int.random(in: keys, using: &generator)
      sequence += [key, map[key - keys.lowerBound]]
      if !present[key - keys.lowerBound] {
        present[key - keys.lowerBound] = true
        presentKeys.append(key)
      }
    }
    var query = Int.random(in: keys, using: &generator)
    if !present[query - keys.lowerBound] { query = presentKeys.randomElement(using: &generator)! }
    sequence += [vocabulary.separator, query, map[query - keys.lowerBound]]
    return sequence
  }
}

// MARK: - Induction head

/// The induction-head task as safari defines it (`generate_induction_head` with
/// `induction_len = 1` and one trigger, the `ICLDataModule` defaults).
///
/// A row draws `L` ordinary tokens uniformly (with replacement), overwrites the token at a
/// position `p` drawn uniformly from `0 ..< L - 2` with the separator `=>`, and appends `=>`
/// and the token that followed the first `=>`:
///
/// ```
/// x_0 ... x_(p-1) => t x_(p+2) ... x_(L-1) =>  |  answer t
/// ```
///
/// The model sees `length = L + 1` input tokens (safari's `input_seq_len = L`, see
/// ``rowLength(inputLength:)``); the answer is the target of the last position, `length - 1`.
/// Token ids follow ``InContextVocabulary`` (ordinary tokens `1 ... V-2`, separator `V - 1`).
/// Chance on the answer is `1 / (V - 2)`.
public struct InductionHead: Sendable {
  /// The tokens.
  public let vocabulary: InContextVocabulary
  /// The seeded source of the rows.
  public var generator: SeededGenerator

  /// `V`, special tokens included.
  public var vocabularySize: Int { vocabulary.size }

  /// A task over `vocabularySize >= 4` tokens drawing from `seed`.
  public init(vocabularySize: Int, seed: UInt64) throws {
    vocabulary = try InContextVocabulary(size: vocabularySize, task: "induction head")
    generator = SeededGenerator(seed: seed)
  }

  /// Row length for safari's `input_seq_len`: `inputLength + 1`.
  public static func rowLength(inputLength: Int) -> Int { inputLength + 1 }

  /// `size` rows of `length >= 4` tokens (`L = length - 1 >= 3` before the final separator).
  public mutating func batch(size: Int, length: Int) throws -> MaskedSequenceBatch {
    try checkSize(size, task: "induction head")
    guard length >= 4 else {
      throw SyntheticTaskError(task: "induction head", problem: "length must be at least 4, got \(length)")
    }
    let body = length - 1
    var batch = MaskedSequenceBatch(size: size, length: length)
    for _ in 0..<size {
      var sequence = (0..<body).map { _ in Int.random(in: vocabulary.ordinary, using: &generator) }
      let trigger = Int.random(in: 0..<(body - 2), using: &generator)
      sequence[trigger] = vocabulary.separator
      sequence += [vocabulary.separator, sequence[trigger + 1]]
      batch.append(sequence: sequence, answers: [length - 1])
    }
    return batch
  }
}
