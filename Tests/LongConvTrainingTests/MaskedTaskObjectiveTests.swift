import Foundation
import LongConvTensors
import Testing

@testable import LongConv
@testable import LongConvTraining

/// The objective of the tasks with answers: which positions the training loss covers, and
/// validation (loss and accuracy) on the answers only.
@Suite struct MaskedTaskObjectiveTests {
  static func model(vocabulary: Int = 10, maxLength: Int = 64) throws -> CausalLanguageModel {
    let json = """
      {"vocab_size": \(vocabulary), "dim": 8, "num_layers": 1, "max_length": \(maxLength),
       "layers": {"mixer": {"type": "hyena", "kernel": {"type": "hyena", "emb_dim": 3, "filter_width": 8}}}}
      """
    return try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "test")) as? CausalLanguageModel)
  }

  /// Mean cross-entropy in Double over the given flat positions, from the logits as a matrix.
  static func crossEntropy(_ logits: [Float], vocabulary: Int, targets: [Int], at indices: [Int]) -> Double {
    var sum = 0.0
    for i in indices {
      let row = logits[i * vocabulary..<(i + 1) * vocabulary].map(Double.init)
      let top = row.max()!
      let lse = top + Foundation.log(row.map { Foundation.exp($0 - top) }.reduce(0, +))
      sum += lse - row[targets[i]]
    }
    return sum / Double(indices.count)
  }

  @Test func theLossMaskSelectsEveryPositionOrTheQuery() throws {
    var task = try AssociativeRecall(vocabularySize: 10, seed: 1)
    let b = try task.batch(size: 3, length: 12)
    #expect(b.lossIndices(.all) == Array(0..<36))
    #expect(b.lossIndices(.answers) == [11, 23, 35])
    #expect(b.answerMask.enumerated().filter { $0.element == 1 }.map(\.offset) == [11, 23, 35])
  }

  @Test func theTrainingLossCoversTheChosenPositions() throws {
    let model = try Self.model()
    for positions in LossPositions.allCases {
      var objective = try MaskedTaskObjective(
        task: AssociativeRecall(vocabularySize: 10, seed: 4),
        validationTask: AssociativeRecall(vocabularySize: 10, seed: 5),
        batch: 3, length: 12, lossPositions: positions)
      let (loss, tokens) = try objective.nextLoss(model)
      #expect(tokens == 36)
      // The same batch, drawn again from the same seed, scored here.
      var again = try AssociativeRecall(vocabularySize: 10, seed: 4)
      let b = try again.batch(size: 3, length: 12)
      let logits = try model.logits(b.inputs, batch: 3, length: 12).scalars
      let indices = positions == .all ? Array(0..<36) : [11, 23, 35]
      let expected = Self.crossEntropy(logits, vocabulary: 10, targets: b.targets, at: indices)
      #expect(abs(Double(loss.scalar) - expected) < 1e-4, "\(positions): \(loss.scalar) vs \(expected)")
    }
  }

  @Test func validationAccuracyIsTakenOnTheQueryOnly() throws {
    let model = try Self.model()
    let objective = try MaskedTaskObjective(
      task: AssociativeRecall(vocabularySize: 10, seed: 4),
      validationTask: AssociativeRecall(vocabularySize: 10, seed: 8),
      batch: 4, length: 20, lossPositions: .all, validationRows: 10)
    let result = try #require(try objective.validate(model))
    // Independently: rows 4 + 4 + 2 of the validation task, the answer position only.
    var held = try AssociativeRecall(vocabularySize: 10, seed: 8)
    var right = 0
    var lossSum = 0.0
    for size in [4, 4, 2] {
      let b = try held.batch(size: size, length: 20)
      let logits = try model.logits(b.inputs, batch: size, length: 20).scalars
      for row in 0..<size {
        let i = row * 20 + 19
        let scores = Array(logits[i * 10..<(i + 1) * 10])
        if scores.indices.max(by: { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) })
          == b.targets[i]
        {
          right += 1
        }
        lossSum += Self.crossEntropy(logits, vocabulary: 10, targets: b.targets, at: [i])
      }
    }
    #expect(result.accuracy == Double(right) / 10)
    #expect(abs(result.loss - lossSum / 10) < 1e-4)
    #expect(try objective.validationLoss(model) == result.loss)
  }

  /// Logits `[size * length, vocabulary]` that put the top score on `pick(flat index)`.
  static func logits(_ b: MaskedSequenceBatch, vocabulary: Int, pick: (Int) -> Int) throws -> Tensor {
    var values = [Float](repeating: 0, count: b.size * b.length * vocabulary)
    for i in 0..<b.size * b.length { values[i * vocabulary + pick(i)] = 5 }
    return try Tensor(shape: [b.size * b.length, vocabulary], scalars: values)
  }

  @Test func anAnswerOnlyOracleScoresOneAndAnEverywhereElseOracleZero() throws {
    var task = try AssociativeRecall(vocabularySize: 10, seed: 2)
    let b = try task.batch(size: 5, length: 16)
    let answers = Set(b.lossIndices(.answers))
    // Right at the queries, wrong everywhere else.
    let atQueries = MaskedTaskObjective.answerScores(
      try Self.logits(b, vocabulary: 10) { answers.contains($0) ? b.targets[$0] : (b.targets[$0] + 1) % 10 },
      b)
    #expect(atQueries.right == 5 && atQueries.count == 5)
    // Right everywhere but the queries.
    let elsewhere = MaskedTaskObjective.answerScores(
      try Self.logits(b, vocabulary: 10) { answers.contains($0) ? (b.targets[$0] + 1) % 10 : b.targets[$0] },
      b)
    #expect(elsewhere.right == 0 && elsewhere.count == 5)
    // The loss is the answers' alone: 5 equal terms of -log softmax at the top score.
    let top = 5.0 - Foundation.log(Foundation.exp(5.0) + 9)
    #expect(abs(atQueries.loss - 5 * -top) < 1e-4)
  }
}
