import Foundation
import LongConvTensors
import LongConvTraining
import Testing

@testable import LongConv

/// Data-parallel pieces that run in one process: shares of a batch, each objective's shard
/// losses weighted into the whole batch's mean, and the trainer's refusal of a batch the
/// processes cannot share (the MPI runs themselves are in scripts/mpi-smoke.sh).
@Suite struct DataParallelTests {
  /// A reducer that is never called (only `rank` and `size` are read before a step).
  final class Unreachable: GradientReducer {
    let rank: Int, size: Int
    init(rank: Int, size: Int) {
      self.rank = rank
      self.size = size
    }
    func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { Issue.record("sum called") }
    func sum(_ values: [Double]) throws -> [Double] {
      Issue.record("sum called")
      return values
    }
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws {
      Issue.record("broadcast called")
    }
    func gather(_ value: UInt64) throws -> [UInt64] { [value] }
    func barrier() throws {}
  }

  @Test func sharesPartitionTheBatch() {
    for count in 1...5 {
      let rows = (0..<count).map { BatchShard(index: $0, count: count).rows(of: 10) }
      #expect(rows.flatMap { Array($0) } == Array(0..<10))
    }
    #expect(BatchShard.whole.rows(of: 7) == 0..<7)
  }

  /// `sum(weight * mean) / sum(weight)` over the shares equals the whole batch's mean.
  func expectShardsMatchWhole(
    _ make: () throws -> any TrainingObjective, model: any SequenceModel, count: Int, steps: Int = 2
  ) throws {
    var whole = try make()
    var shards = try (0..<count).map { _ in try make() }
    for _ in 0..<steps {
      let reference = try Tensor.withoutRecording { try whole.nextLoss(model).loss.scalar }
      var total = 0.0
      var weight = 0
      for i in 0..<count {
        let part = try Tensor.withoutRecording {
          try shards[i].nextLoss(model, shard: BatchShard(index: i, count: count))
        }
        total += Double(part.loss.scalar) * Double(part.weight)
        weight += part.weight
      }
      #expect(abs(total / Double(weight) - Double(reference)) <= 1e-5 * Double(abs(reference)))
    }
  }

  @Test func textShardsWeighToTheWholeBatch() throws {
    let model = try TrainerTests.model()
    let bytes = (0..<4000).map { UInt8(truncatingIfNeeded: ($0 * 37 + $0 / 7) % 97 + 32) }
    let data = try TextDataset(bytes: bytes)
    try expectShardsMatchWhole(
      { TextObjective(data: data, batch: 4, length: 16, seed: 5) }, model: model, count: 2)
    try expectShardsMatchWhole(
      { TextObjective(data: data, batch: 6, length: 16, seed: 5) }, model: model, count: 3)
  }

  @Test func answerShardsWeighByTheirAnswers() throws {
    let model = try MaskedTaskObjectiveTests.model()
    for positions in [LossPositions.answers, .all] {
      try expectShardsMatchWhole(
        {
          try MaskedTaskObjective(
            task: AssociativeRecall(vocabularySize: 10, seed: 4),
            validationTask: AssociativeRecall(vocabularySize: 10, seed: 5), batch: 4,
            length: AssociativeRecall.rowLength(inputLength: 16), lossPositions: positions)
        }, model: model, count: 2)
    }
  }

  @Test func anIndivisibleBatchIsRefused() throws {
    var options = TrainerTests.options(steps: 2)
    options.batch = 5
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dp-\(UUID().uuidString)")
    #expect(throws: TrainingError.self) {
      try Trainer(
        model: TrainerTests.model(), objective: TrainerTests.objective(), options: options,
        directory: directory,
        reducer: Unreachable(rank: 0, size: 2))
    }
    #expect(!FileManager.default.fileExists(atPath: directory.path))
  }
}
