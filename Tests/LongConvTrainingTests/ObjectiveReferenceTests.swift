import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConv
@testable import LongConvTraining

/// The objectives' losses and accuracies against cross-entropies computed by hand in Double
/// from fixed logits (`log-sum-exp - logit of the target`), on small fixed inputs.
@Suite struct ObjectiveReferenceTests {
  /// Two rows of four positions; answers at positions 1 and 3 of row 0 and 2 of row 1.
  static func batch() -> MaskedSequenceBatch {
    var b = MaskedSequenceBatch(size: 2, length: 4)
    b.append(sequence: [0, 2, 4, 1, 3], answers: [1, 3])
    b.append(sequence: [1, 1, 0, 2, 2], answers: [2])
    return b
  }

  /// Fixed logits `[8, 5]` whose answer rows all tie their top two: first on ties is right for
  /// one answer (row 6), last on ties would be right for the other two.
  static let logits: [Double] = [
    0.5, -1.0, 2.0, 0.0, 0.3,
    2.5, 0.2, -0.7, 0.1, 2.5,  // answer, target 4: tie 0/4, first is 0, wrong
    -0.4, 0.9, 0.0, 1.1, -2.0,
    0.0, 3.0, -1.0, 3.0, 0.5,  // answer, target 3: tie 1/3, first is 1, wrong
    2.0, 2.0, 2.0, 2.0, 2.0,
    -1.0, 0.5, 0.25, -0.5, 1.0,
    0.1, -0.3, 1.7, 0.4, 1.7,  // answer, target 2: tie 2/4, first is 2, right
    0.0, 0.0, 1.0, -1.0, 0.0,
  ]

  static func crossEntropy(row: Int, target: Int) -> Double {
    DenseModel.crossEntropy(logits[row * 5..<(row + 1) * 5], target: target)
  }

  @Test func answerScoresByHand() throws {
    let b = Self.batch()
    #expect(b.targets == [2, 4, 1, 3, 1, 0, 2, 2])
    let tensor = try Tensor(shape: [8, 5], scalars: Self.logits.map(Float.init))
    let scores = MaskedTaskObjective.answerScores(tensor, b)
    let expected = [(1, 4), (3, 3), (6, 2)].reduce(0.0) { $0 + Self.crossEntropy(row: $1.0, target: $1.1) }
    #expect(scores.count == 3 && scores.right == 1)
    #expect(abs(scores.loss - expected) <= 1e-6 * expected, "\(scores.loss) vs \(expected)")
  }

  @Test(arguments: LossPositions.allCases)
  func trainingLossByHand(positions: LossPositions) throws {
    let b = Self.batch()
    let tensor = try Tensor(shape: [8, 5], scalars: Self.logits.map(Float.init))
    let indices = positions == .all ? Array(0..<8) : [1, 3, 6]
    #expect(b.lossIndices(positions) == indices)
    let expected =
      indices.reduce(0.0) { $0 + Self.crossEntropy(row: $1, target: b.targets[$1]) } / Double(indices.count)
    let loss = Double(MaskedTaskObjective.loss(tensor, b, indices: b.lossIndices(positions)).scalar)
    #expect(abs(loss - expected) <= 1e-6 * expected, "\(positions): \(loss) vs \(expected)")
  }

  /// A shard's loss is the mean over its own answer positions (several per row here), weighted by
  /// their number (unequal shards: 1 and 2 rows); the weighted shards give the whole batch's loss.
  @Test func shardLossesByHand() throws {
    let json = """
      {"vocab_size": 10, "dim": 4, "num_layers": 1, "max_length": 16, "seed": 2,
       "layers": {"mixer": {"type": "gtu", "expand_ratio": 1, "kernel": {"type": "tnn", "rpe_width": 4, "rpe_layers": 1}},
                  "channel_mixer": {"type": "glu"}}}
      """
    let model = try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "objective")) as? CausalLanguageModel)
    func objective() throws -> MaskedTaskObjective {
      try MaskedTaskObjective(
        task: SelectiveCopying(seed: 6, tokenCount: 4, copyCount: 3),
        validationTask: SelectiveCopying(seed: 7, tokenCount: 4, copyCount: 3), batch: 3, length: 12)
    }
    var drawn = try SelectiveCopying(seed: 6, tokenCount: 4, copyCount: 3)
    let b = try drawn.batch(size: 3, length: 12)
    let logits = try model.logits(b.inputs, batch: 3, length: 12).doubles
    var total = (loss: 0.0, weight: 0)
    for index in 0..<2 {
      var o = try objective()
      let shard = try o.nextLoss(model, shard: BatchShard(index: index, count: 2))
      let rows = BatchShard(index: index, count: 2).rows(of: 3)
      let answers = b.lossIndices(.answers).filter { rows.contains($0 / 12) }
      let expected =
        answers.reduce(0.0) {
          $0 + DenseModel.crossEntropy(logits[$1 * 10..<($1 + 1) * 10], target: b.targets[$1])
        }
        / Double(answers.count)
      #expect(shard.weight == answers.count && shard.tokens == rows.count * 12)
      #expect(abs(Double(shard.loss.scalar) - expected) <= 1e-5 * expected, "shard \(index)")
      total = (total.loss + Double(shard.loss.scalar) * Double(shard.weight), total.weight + shard.weight)
    }
    var whole = try objective()
    let loss = Double(try whole.nextLoss(model).loss.scalar)
    #expect(abs(total.loss / Double(total.weight) - loss) <= 1e-5 * loss)
  }

  /// A classifier whose head ignores its input (zero weights) has the head's bias as logits for
  /// every expression: the ListOps loss is then `mean(lse(b) - b[label])` over the batch's labels.
  static func constantClassifier(bias: [Float]) throws -> SequenceClassifier {
    let json = """
      {"model": "classifier", "num_classes": 10, "vocab_size": 17, "dim": 4, "num_layers": 1, "max_length": 64,
       "layers": {"mixer": {"type": "gtu", "expand_ratio": 1, "kernel": {"type": "tnn", "rpe_width": 4, "rpe_layers": 1}},
                  "channel_mixer": {"type": "glu"}}}
      """
    let model = try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "listops")) as? SequenceClassifier)
    model.head.weight.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    model.head.bias!.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = bias[i] } }
    return model
  }

  @Test func listOpsLossesByHand() throws {
    let bias: [Float] = [0.5, -1, 2, 0, 1.25, -0.5, 0.75, 3, -2, 0.1]
    let model = try Self.constantClassifier(bias: bias)
    let b = bias.map(Double.init)
    func expected(_ labels: some Collection<Int>) -> Double {
      labels.reduce(0.0) { $0 + DenseModel.crossEntropy(b[...], target: $1) } / Double(labels.count)
    }
    let (size, length) = (6, 64)
    var objective = try ListOpsObjective(seed: 9, batch: size, length: length, maxDepth: 3)
    try objective.check(model)
    var task = try ListOps(seed: 9, maxDepth: 3)
    let first = try task.batch(size: size, length: length)
    let (loss, tokens) = try objective.nextLoss(model)
    #expect(tokens == size * length)
    #expect(Set(first.labels).count > 1, "the labels should differ: \(first.labels)")
    #expect(
      abs(Double(loss.scalar) - expected(first.labels)) <= 1e-6, "\(loss.scalar) vs \(expected(first.labels))"
    )

    // The second batch, shard 1 of 2: its rows only, weighted by their number.
    let second = try task.batch(size: size, length: length)
    let shard = try objective.nextLoss(model, shard: BatchShard(index: 1, count: 2))
    #expect(shard.weight == 3 && shard.tokens == 3 * length)
    #expect(abs(Double(shard.loss.scalar) - expected(second.labels[3..<6])) <= 1e-6)

    // Validation: one fixed batch from the derived seed, the same at every call.
    var held = try ListOps(seed: 9 &+ 0x5EED, maxDepth: 3)
    let validation = try held.batch(size: size, length: length)
    let value = try #require(try objective.validationLoss(model))
    #expect(abs(value - expected(validation.labels)) <= 1e-6)
    #expect(try objective.validationLoss(model) == value)
  }

  /// The ListOps loss with the real classifier: its logits (tested against the dense model in
  /// LongConvTests) through a cross-entropy by hand.
  @Test func listOpsLossThroughTheClassifier() throws {
    let model = try Self.constantClassifier(bias: [Float](repeating: 0, count: 10))
    var rng = SeededGenerator(seed: 5)
    model.head.weight.withUnsafeMutableBufferPointer { p in
      for i in p.indices { p[i] = rng.nextUniform() * 2 - 1 }
    }
    var objective = try ListOpsObjective(seed: 4, batch: 3, length: 48)
    var task = try ListOps(seed: 4, maxDepth: 4)
    let b = try task.batch(size: 3, length: 48)
    let logits = try model.logits(b.inputs, batch: 3, length: 48).doubles
    let expected =
      (0..<3).reduce(0.0) {
        $0 + DenseModel.crossEntropy(logits[$1 * 10..<($1 + 1) * 10], target: b.labels[$1])
      } / 3
    let loss = Double(try objective.nextLoss(model).loss.scalar)
    #expect(abs(loss - expected) <= 1e-5 * max(1, expected), "\(loss) vs \(expected)")
  }
}
