import LongConvTensors
import Testing

@testable import LongConvTraining

/// Synthetic tasks: determinism per seed, layouts and lengths, and every answer checked by an
/// evaluator written here independently of the generators.
@Suite struct SyntheticTaskTests {
  static func rows<T>(_ flat: [T], length: Int) -> [[T]] {
    stride(from: 0, to: flat.count, by: length).map { Array(flat[$0..<($0 + length)]) }
  }

  /// Checks what every masked batch shares: sizes, shifted targets, the answer mask.
  static func checkShape(_ batch: MaskedSequenceBatch, size: Int, length: Int, vocabulary: Int) {
    #expect(batch.inputs.count == size * length)
    #expect(batch.targets.count == size * length)
    #expect(batch.answerMask.count == size * length)
    #expect(batch.answerPositions.count == size)
    #expect(batch.inputs.allSatisfy { (0..<vocabulary).contains($0) })
    #expect(batch.targets.allSatisfy { (0..<vocabulary).contains($0) })
    let inputs = rows(batch.inputs, length: length)
    let targets = rows(batch.targets, length: length)
    let masks = rows(batch.answerMask, length: length)
    for b in 0..<size {
      #expect(Array(inputs[b].dropFirst()) == Array(targets[b].dropLast()))
      let fromMask = masks[b].indices.filter { masks[b][$0] == 1 }
      #expect(fromMask == batch.answerPositions[b])
      #expect(masks[b].allSatisfy { $0 == 0 || $0 == 1 })
    }
  }

  // MARK: Distinct-key recall

  @Test func distinctKeyRecallAnswersMatchAScanOfThePairs() throws {
    for length in [3, 4, 9, 64, 257] {
      for keyCount in [4, 64] {
        var task = try DistinctKeyRecall(seed: 11, keyCount: keyCount, valueCount: 8)
        let batch = try task.batch(size: 6, length: length)
        let vocabulary = keyCount + 8 + 1
        #expect(task.vocabularySize == vocabulary)
        Self.checkShape(batch, size: 6, length: length, vocabulary: vocabulary)
        for (b, row) in Self.rows(batch.inputs, length: length).enumerated() {
          #expect(batch.answerPositions[b] == [length - 1])
          // Independent reading: skip a leading pad, walk the pairs, look the query up.
          var body = row[...]
          if length % 2 == 0 {
            #expect(body.first == keyCount + 8)
            body = body.dropFirst()
          }
          let query = body.last!
          let pairs = Array(body.dropLast())
          #expect(pairs.count == 2 * ((length - 1) / 2))
          var table = [Int: Int]()
          for i in stride(from: 0, to: pairs.count, by: 2) {
            let (key, value) = (pairs[i], pairs[i + 1])
            #expect((0..<keyCount).contains(key))
            #expect((keyCount..<(keyCount + 8)).contains(value))
            if let earlier = table[key] { #expect(earlier == value) }  // one value per key
            table[key] = value
          }
          if pairs.count / 2 <= keyCount { #expect(table.count == pairs.count / 2) }  // distinct keys
          let answer = try #require(table[query])
          #expect(batch.targets[b * length + length - 1] == answer)
        }
      }
    }
  }

  @Test func distinctKeyRecallIsDeterministicPerSeed() throws {
    func draw(_ seed: UInt64) throws -> MaskedSequenceBatch {
      var task = try DistinctKeyRecall(seed: seed)
      return try task.batch(size: 4, length: 33)
    }
    #expect(try draw(5) == draw(5))
    #expect(try draw(5) != draw(6))
    var task = try DistinctKeyRecall(seed: 5)
    let first = try task.batch(size: 4, length: 33)
    #expect(try task.batch(size: 4, length: 33) != first)  // the stream moves on
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 1, length: 2) }
    #expect(throws: SyntheticTaskError.self) { try DistinctKeyRecall(seed: 0, keyCount: 0) }
  }

  // MARK: Selective copying

  @Test func copyingTargetsAreTheScatteredTokensInOrder() throws {
    for (copyCount, length) in [(1, 2), (4, 8), (16, 100), (8, 1000)] {
      var task = try SelectiveCopying(seed: 2, tokenCount: 10, copyCount: copyCount)
      let blank = 10
      let separator = 11
      #expect(task.vocabularySize == 12)
      let batch = try task.batch(size: 5, length: length)
      Self.checkShape(batch, size: 5, length: length, vocabulary: 12)
      let inputs = Self.rows(batch.inputs, length: length)
      let targets = Self.rows(batch.targets, length: length)
      for b in 0..<5 {
        let row = inputs[b]
        let separatorAt = try #require(row.firstIndex(of: separator))
        #expect(row.filter { $0 == separator }.count == 1)
        // Independent reading: the non-blank tokens before the separator.
        let scattered = row[..<separatorAt].filter { $0 != blank }
        #expect(scattered.count == copyCount)
        #expect(scattered.allSatisfy { (0..<10).contains($0) })
        #expect(batch.answerPositions[b] == Array(separatorAt..<length))
        #expect(batch.answerPositions[b].map { targets[b][$0] } == scattered)
        #expect(Array(row[(separatorAt + 1)...]) == Array(scattered.dropLast()))  // teacher forcing
      }
    }
  }

  @Test func copyingIsDeterministicPerSeed() throws {
    func draw(_ seed: UInt64) throws -> MaskedSequenceBatch {
      var task = try SelectiveCopying(seed: seed, tokenCount: 8, copyCount: 4)
      return try task.batch(size: 3, length: 40)
    }
    #expect(try draw(9) == draw(9))
    #expect(try draw(9) != draw(10))
    var task = try SelectiveCopying(seed: 0, copyCount: 4)
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 1, length: 7) }
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 0, length: 8) }
  }

  // MARK: ListOps

  /// A recursive-descent evaluator over the token sequence, written from the task description.
  struct ListOpsParser {
    var tokens: [Int]
    var position = 0
    var depth = 0
    var maxDepthSeen = 0
    var arities = [Int]()

    enum Failure: Error { case unexpected(Int?, at: Int) }

    mutating func parse() throws -> Int {
      guard position < tokens.count else { throw Failure.unexpected(nil, at: position) }
      let token = tokens[position]
      position += 1
      if (0...9).contains(token) { return token }
      guard token == 14, position < tokens.count else { throw Failure.unexpected(token, at: position - 1) }
      let op = tokens[position]
      position += 1
      depth += 1
      maxDepthSeen = max(maxDepthSeen, depth)
      var args = [Int]()
      while position < tokens.count, tokens[position] != 15 { args.append(try parse()) }
      guard position < tokens.count, !args.isEmpty else { throw Failure.unexpected(nil, at: position) }
      position += 1  // "]"
      depth -= 1
      arities.append(args.count)
      switch op {
      case 10: return args.min()!
      case 11: return args.max()!
      case 12:
        // Median as a Double, truncated like int(np.median(...)).
        let s = args.sorted().map(Double.init)
        let m = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        return Int(m)
      case 13: return args.reduce(0, +) % 10
      default: throw Failure.unexpected(op, at: position - 1)
      }
    }
  }

  @Test func listOpsLabelsMatchAnIndependentEvaluator() throws {
    let settings: [(depth: Int, minArity: Int, maxArity: Int, leaf: Double, length: Int)] = [
      (1, 2, 2, 0.5, 5), (3, 2, 5, 0.5, 40), (10, 2, 10, 0.75, 512), (6, 1, 4, 0.3, 2000),
      (20, 2, 3, 0.0, 64),
    ]
    var labelsSeen = Set<Int>()
    for setting in settings {
      var task = try ListOps(
        seed: 4, maxDepth: setting.depth, minArity: setting.minArity, maxArity: setting.maxArity,
        leafProbability: setting.leaf)
      let batch = try task.batch(size: 40, length: setting.length)
      #expect(batch.inputs.count == 40 * setting.length)
      #expect(batch.labels.count == 40)
      for (b, row) in Self.rows(batch.inputs, length: setting.length).enumerated() {
        let used = batch.lengths[b]
        #expect(used <= setting.length)
        #expect(row[used...].allSatisfy { $0 == ListOps.Token.pad })
        #expect(row[..<used].allSatisfy { (0...15).contains($0) })
        #expect(row.first == ListOps.Token.open)  // always an operation outside
        var parser = ListOpsParser(tokens: Array(row[..<used]))
        let value = try parser.parse()
        #expect(parser.position == used)  // the whole expression, nothing after it
        #expect(value == batch.labels[b])
        #expect((0...9).contains(batch.labels[b]))
        #expect(parser.maxDepthSeen <= setting.depth)
        #expect(parser.arities.allSatisfy { (setting.minArity...setting.maxArity).contains($0) })
        labelsSeen.insert(value)
      }
    }
    #expect(labelsSeen.count == 10)  // every class occurs
  }

  @Test func listOpsHandWrittenExampleAndMedian() throws {
    // [MIN 3 [MAX 2 9 ] 1 ] = min(3, 9, 1) = 1
    var parser = ListOpsParser(tokens: [14, 10, 3, 14, 11, 2, 9, 15, 1, 15])
    #expect(try parser.parse() == 1)
    #expect(ListOps.apply(ListOps.Token.min, [3, 9, 1]) == 1)
    #expect(ListOps.apply(ListOps.Token.median, [7, 1, 4]) == 4)
    #expect(ListOps.apply(ListOps.Token.median, [8, 1, 4, 3]) == 3)  // (3 + 4) / 2 truncated
    #expect(ListOps.apply(ListOps.Token.sumMod, [9, 8, 7]) == 4)
    #expect(ListOps.vocabularySize == 17)
    #expect(ListOps.classCount == 10)
  }

  @Test func listOpsIsDeterministicPerSeed() throws {
    func draw(_ seed: UInt64) throws -> ListOps.Batch {
      var task = try ListOps(seed: seed, maxDepth: 5, maxArity: 5)
      return try task.batch(size: 8, length: 200)
    }
    #expect(try draw(1) == draw(1))
    #expect(try draw(1) != draw(2))
    var task = try ListOps(seed: 0, minArity: 2)
    #expect(throws: SyntheticTaskError.self) { try task.batch(size: 1, length: 4) }
    _ = try task.batch(size: 1, length: 5)
    #expect(throws: SyntheticTaskError.self) { try ListOps(seed: 0, minArity: 3, maxArity: 2) }
  }
}
