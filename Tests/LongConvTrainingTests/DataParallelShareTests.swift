import Foundation
import LongConvTensors
import Testing

@testable import LongConv
@testable import LongConvTraining

/// Data parallelism when the processes' shares of a batch weigh differently in its mean (a
/// task whose rows have different numbers of answers): two ranks in one process, joined by an
/// in-memory reducer, must train exactly as one process on the whole batch. A process whose
/// gradient were weighted 1/N instead of by its share of the loss positions would not.
@Suite struct DataParallelShareTests {
  /// Every rank's payload, in rank order, once all ranks have handed theirs in.
  final class LoopbackWorld: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var (generation, arrived) = (0, 0)
    private var payloads: [[Double]]
    private var result: [[Double]] = []

    init(size: Int) {
      self.size = size
      payloads = Array(repeating: [], count: size)
    }

    func exchange(rank: Int, _ payload: [Double]) -> [[Double]] {
      condition.lock()
      defer { condition.unlock() }
      let mine = generation
      payloads[rank] = payload
      arrived += 1
      if arrived == size {
        (result, arrived, generation) = (payloads, 0, generation + 1)
        condition.broadcast()
      } else {
        while generation == mine { condition.wait() }
      }
      return result
    }
  }

  /// One rank of a ``LoopbackWorld``: sums in rank order, in Double.
  final class LoopbackReducer: GradientReducer {
    let world: LoopbackWorld
    let rank: Int
    var size: Int { world.size }
    init(world: LoopbackWorld, rank: Int) {
      self.world = world
      self.rank = rank
    }
    func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
      let all = world.exchange(rank: rank, buffer.map(Double.init))
      for i in buffer.indices { buffer[i] = Float(all.reduce(0) { $0 + $1[i] }) }
    }
    func sum(_ values: [Double]) throws -> [Double] {
      let all = world.exchange(rank: rank, values)
      return values.indices.map { i in all.reduce(0) { $0 + $1[i] } }
    }
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws {
      let all = world.exchange(rank: rank, buffer.map(Double.init))
      for i in buffer.indices { buffer[i] = Float(all[root][i]) }
    }
    func gather(_ value: UInt64) throws -> [UInt64] {
      world.exchange(rank: rank, [Double(value >> 32), Double(value & 0xFFFF_FFFF)]).map {
        UInt64($0[0]) << 32 | UInt64($0[1])
      }
    }
    func barrier() throws { _ = world.exchange(rank: rank, []) }
  }

  /// Random tokens; row `r` of a batch has `1 + 4 (r / (size / 2))` answers (the first half of
  /// the rows 1, the second half 5), so two ranks' shares weigh 1 : 5 in the batch's mean.
  struct TestUnevenAnswers: MaskedSequenceTask {
    var generator: SeededGenerator
    var vocabularySize: Int { 10 }
    mutating func batch(size: Int, length: Int) throws -> MaskedSequenceBatch {
      var batch = MaskedSequenceBatch(size: size, length: length)
      for r in 0..<size {
        let sequence = (0...length).map { _ in Int.random(in: 0..<10, using: &generator) }
        let count = r < size / 2 ? 1 : 5
        batch.append(sequence: sequence, answers: Array(length - count..<length))
      }
      return batch
    }
  }

  static func objective() throws -> MaskedTaskObjective {
    try MaskedTaskObjective(
      task: TestUnevenAnswers(generator: SeededGenerator(seed: 3)),
      validationTask: TestUnevenAnswers(generator: SeededGenerator(seed: 4)), batch: 4, length: 12)
  }

  static func options() -> TrainingOptions {
    var o = TrainingOptions()
    (o.steps, o.batch, o.warmupSteps, o.validateEvery, o.checkpointEvery, o.logEvery) = (
      3, 4, 1, 100, 100, 1000
    )
    return o
  }

  /// The parameters after training, by name.
  static func train(reducer: (any GradientReducer)?) throws -> [String: [Float]] {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "dp-share-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    let model = try MaskedTaskObjectiveTests.model()
    let trainer = try Trainer(
      model: model, objective: objective(), options: options(), directory: directory, reducer: reducer)
    try trainer.run(progress: false)
    return Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor.scalars) })
  }

  final class Results: @unchecked Sendable {
    let lock = NSLock()
    var parameters: [Int: [String: [Float]]] = [:]
    var errors: [String] = []
  }

  @Test func twoRanksWithUnequalSharesTrainAsOneProcess() throws {
    // The shares really are unequal: 2 answers on rank 0, 10 on rank 1.
    var task = TestUnevenAnswers(generator: SeededGenerator(seed: 3))
    let b = try task.batch(size: 4, length: 12)
    #expect(b.rows(0..<2).lossIndices(.answers).count == 2)
    #expect(b.rows(2..<4).lossIndices(.answers).count == 10)

    let single = try Self.train(reducer: nil)
    let world = LoopbackWorld(size: 2)
    let results = Results()
    let done = DispatchGroup()
    for rank in 0..<2 {
      done.enter()
      Thread {
        defer { done.leave() }
        do {
          let parameters = try Self.train(reducer: LoopbackReducer(world: world, rank: rank))
          results.lock.withLock { results.parameters[rank] = parameters }
        } catch {
          results.lock.withLock { results.errors.append("rank \(rank): \(error)") }
        }
      }.start()
    }
    done.wait()
    #expect(results.errors.isEmpty, "\(results.errors)")
    for rank in 0..<2 {
      let parameters = try #require(results.parameters[rank])
      #expect(parameters.keys.sorted() == single.keys.sorted())
      for (name, want) in single {
        let got = parameters[name]!
        let error = zip(got, want).map { abs(Double($0) - Double($1)) }.max() ?? 0
        let scale = want.map { abs(Double($0)) }.max() ?? 0
        #expect(error <= 1e-5 * max(1, scale), "rank \(rank) \(name): max difference \(error)")
      }
    }
  }
}
