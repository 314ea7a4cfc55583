import LongConvTensors
import Testing

@testable import LongConvTraining

/// safari's associative recall and induction head: the token layout, the row layout, and every
/// answer checked by an evaluator written here from `synthetics.py`, independently of the
/// generators.
@Suite struct InContextTaskTests {
  typealias Rows = SyntheticTaskTests

  @Test func theVocabularyIsSafarisSortedLayout() throws {
    // safari: sorted(["0".."7"] + [".", "=>"]): "." first, "=>" last; keys the first half.
    let ten = try InContextVocabulary(size: 10, task: "t")
    #expect(ten.noop == 0 && ten.separator == 9)
    #expect(ten.keys == 1...4 && ten.values == 5...8 && ten.ordinary == 1...8)
    let thirty = try InContextVocabulary(size: 30, task: "t")
    #expect(thirty.keys == 1...14 && thirty.values == 15...28 && thirty.separator == 29)
    let odd = try InContextVocabulary(size: 7, task: "t")  // 5 ordinary: 2 keys, 3 values
    #expect(odd.keys == 1...2 && odd.values == 3...5)
    #expect(throws: SyntheticTaskError.self) { try InContextVocabulary(size: 3, task: "t") }
  }

  /// Reads a recall row as safari lays it out: pairs, `=>`, the query; the answer is the value
  /// the query's key last had among the pairs.
  static func readRecall(_ row: [Int], vocabulary: InContextVocabulary) throws -> (
    answer: Int, pairs: [(Int, Int)]
  ) {
    let n = row.count
    #expect(row[n - 2] == vocabulary.separator)
    #expect(row.filter { $0 == vocabulary.separator }.count == 1)
    let pairs = stride(from: 0, to: n - 2, by: 2).map { (row[$0], row[$0 + 1]) }
    var last: [Int: Int] = [:]
    for (key, value) in pairs {
      #expect(vocabulary.keys.contains(key), "key \(key)")
      #expect(vocabulary.values.contains(value), "value \(value)")
      last[key] = value
    }
    return (try #require(last[row[n - 1]], "the query's key occurs in the row"), pairs)
  }

  @Test func everyRecallAnswerIsTheValueItsKeyLastHad() throws {
    for (vocabularySize, inputLength) in [(10, 256), (10, 20), (30, 64), (6, 3)] {
      let length = AssociativeRecall.rowLength(inputLength: inputLength)
      #expect(length == 2 * (inputLength / 2) + 2)
      var task = try AssociativeRecall(vocabularySize: vocabularySize, seed: 3)
      let batch = try task.batch(size: 16, length: length)
      Rows.checkShape(batch, size: 16, length: length, vocabulary: vocabularySize)
      var keysRepeat = false
      for (b, row) in Rows.rows(batch.inputs, length: length).enumerated() {
        let (answer, pairs) = try Self.readRecall(row, vocabulary: task.vocabulary)
        #expect(batch.answerPositions[b] == [length - 1])
        #expect(batch.targets[b * length + length - 1] == answer)
        // One value per key within a row (safari's per-row map), and keys drawn with replacement.
        var map: [Int: Int] = [:]
        for (key, value) in pairs {
          if let earlier = map[key] { #expect(earlier == value) }
          map[key] = value
        }
        if Set(pairs.map(\.0)).count < pairs.count { keysRepeat = true }
      }
      if inputLength / 2 > task.vocabulary.keys.count { #expect(keysRepeat) }
    }
  }

  @Test func eachRowDrawsAFreshMapAndQueriesEveryKey() throws {
    var task = try AssociativeRecall(vocabularySize: 10, seed: 7)
    let length = AssociativeRecall.rowLength(inputLength: 40)
    let batch = try task.batch(size: 400, length: length)
    var valuesOfKeyOne = Set<Int>()
    var queries = Set<Int>()
    var answers = [Int: Int]()
    for row in Rows.rows(batch.inputs, length: length) {
      let (answer, pairs) = try Self.readRecall(row, vocabulary: task.vocabulary)
      if let value = pairs.first(where: { $0.0 == 1 })?.1 { valuesOfKeyOne.insert(value) }
      queries.insert(row[length - 1])
      answers[answer, default: 0] += 1
    }
    #expect(valuesOfKeyOne == Set(5...8))  // the map changes from row to row
    #expect(queries == Set(1...4))
    #expect(Set(answers.keys) == Set(5...8))
  }

  @Test func recallIsDeterministicPerSeedAndChecksItsLength() throws {
    func draw(_ seed: UInt64) throws -> MaskedSequenceBatch {
      var task = try AssociativeRecall(vocabularySize: 10, seed: seed)
      return try task.batch(size: 4, length: 30)
    }
    #expect(try draw(5) == draw(5))
    #expect(try draw(5) != draw(6))
    var task = try AssociativeRecall(vocabularySize: 10, seed: 0)
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 2, length: 31) }  // odd
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 2, length: 2) }
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 0, length: 8) }
    #expect(throws: SyntheticTaskError.self) { try AssociativeRecall(vocabularySize: 3, seed: 0) }
  }

  @Test func inductionTargetsAreTheTokenAfterTheFirstSeparator() throws {
    for (vocabularySize, inputLength) in [(20, 256), (20, 30), (4, 3), (10, 5)] {
      let length = InductionHead.rowLength(inputLength: inputLength)
      #expect(length == inputLength + 1)
      var task = try InductionHead(vocabularySize: vocabularySize, seed: 9)
      let separator = vocabularySize - 1
      let batch = try task.batch(size: 32, length: length)
      Rows.checkShape(batch, size: 32, length: length, vocabulary: vocabularySize)
      var triggers = Set<Int>()
      for (b, row) in Rows.rows(batch.inputs, length: length).enumerated() {
        // Independent reading: the body's one separator, the token after it, a final separator.
        #expect(row.last == separator)
        let body = Array(row.dropLast())
        #expect(body.count == inputLength)
        let at = try #require(body.firstIndex(of: separator))
        #expect(body.filter { $0 == separator }.count == 1)
        #expect(at < inputLength - 2)  // safari: rng.integers(input_seq_len - 2)
        triggers.insert(at)
        #expect(body.allSatisfy { $0 == separator || (1...(vocabularySize - 2)).contains($0) })
        #expect(batch.answerPositions[b] == [length - 1])
        #expect(batch.targets[b * length + length - 1] == body[at + 1])
      }
      if inputLength > 20 { #expect(triggers.count > 8) }  // the trigger moves from row to row
    }
    var task = try InductionHead(vocabularySize: 20, seed: 0)
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 1, length: 3) }
    #expect(try task.batch(size: 2, length: 9) != task.batch(size: 2, length: 9))
  }
}
