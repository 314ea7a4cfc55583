import Foundation
import LongConvTensors
import Testing

@testable import LongConv
@testable import LongConvTraining

/// Resuming on the synthetic-task objectives (their own `skip(batches:)`): a run stopped at step
/// `k` and resumed ends bit for bit with the parameters and optimizer state of one uninterrupted
/// run, whether it stopped on a checkpoint step or was "killed" after one (the text objective is
/// covered by TrainerTests, and `longconv train --resume` with SIGKILL by scripts/cli-smoke.sh).
@Suite struct ResumeObjectiveTests {
  static func model(classifier: Bool) throws -> any SequenceModel {
    let json =
      classifier
      ? """
      {"model": "classifier", "num_classes": 10, "vocab_size": 17, "dim": 8, "num_layers": 1, "max_length": 32,
       "layers": {"mixer": {"type": "gtu", "expand_ratio": 1, "kernel": {"type": "tnn", "rpe_width": 4, "rpe_layers": 1}},
                  "channel_mixer": {"type": "glu"}}}
      """
      : """
      {"vocab_size": 12, "dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "hyena", "kernel": {"type": "hyena", "emb_dim": 3, "filter_width": 4}},
                  "channel_mixer": {"type": "mlp", "hidden_dim": 8}}}
      """
    return try ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "resume"))
  }

  static func objective(_ name: String) throws -> any TrainingObjective {
    switch name {
    case "listops": try ListOpsObjective(seed: 3, batch: 2, length: 32, maxDepth: 3)
    default:
      try MaskedTaskObjective(
        task: AssociativeRecall(vocabularySize: 12, seed: 4),
        validationTask: AssociativeRecall(vocabularySize: 12, seed: 5),
        batch: 2, length: 16, lossPositions: .all)
    }
  }

  /// `stopAt` 5: the stop saves a checkpoint at 5. `killedAfter` 5 with the checkpoint of 3: the
  /// run is rolled back to its last periodic checkpoint, as after a SIGKILL at step 5.
  @Test(arguments: [("recall", false), ("recall", true), ("listops", false), ("listops", true)])
  func resumedRunEqualsOneRun(objective name: String, killed: Bool) throws {
    let classifier = name == "listops"
    let (a, b) = (try TrainerTests().scratch(), try TrainerTests().scratch())
    defer {
      try? FileManager.default.removeItem(at: a)
      try? FileManager.default.removeItem(at: b)
    }
    let whole = try Trainer(
      model: Self.model(classifier: classifier), objective: Self.objective(name),
      options: TrainerTests.options(steps: 7),
      directory: a)
    try whole.run(progress: false)

    let first = try Trainer(
      model: Self.model(classifier: classifier), objective: Self.objective(name),
      options: TrainerTests.options(steps: 7),
      directory: b)
    if killed {
      try first.run(stopAfter: 3, progress: false)
      // Steps 4 and 5 trained and logged, then the process dies: only the checkpoint of step 3 is kept.
      let saved = b.appendingPathComponent("saved")
      try FileManager.default.copyItem(at: first.checkpointDirectory, to: saved)
      try first.run(stopAfter: 5, progress: false)
      try FileManager.default.removeItem(at: first.checkpointDirectory)
      try FileManager.default.moveItem(at: saved, to: first.checkpointDirectory)
    } else {
      try first.run(stopAfter: 5, progress: false)
    }
    let resumed = try Trainer.resuming(
      from: b, objective: Self.objective(name), options: TrainerTests.options(steps: 7))
    #expect(resumed.step == (killed ? 3 : 5))
    try resumed.run(progress: false)

    let (p, q) = (whole.model.namedParameters(), resumed.model.namedParameters())
    #expect(p.map(\.name) == q.map(\.name))
    for (x, y) in zip(p, q) {
      #expect(x.tensor.scalars == y.tensor.scalars, "\(name): \(x.name) differs after resume")
    }
    #expect(whole.optimizer.state == resumed.optimizer.state, "\(name): optimizer state differs after resume")
    // The logged losses of the resumed run are the uninterrupted run's, step by step, once each.
    func losses(_ directory: URL) throws -> [Int: String] {
      var out: [Int: String] = [:]
      for line in try String(contentsOf: directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        .split(separator: "\n")
      {
        guard case .object(let f)? = try? JSONValue.parse(Data(line.utf8), source: "metrics"),
          case .number(let step)? = f["step"], let loss = f["loss"]
        else { continue }
        #expect(out[Int(step)] == nil, "\(name): step \(Int(step)) logged twice")
        out[Int(step)] = "\(loss)"
      }
      return out
    }
    #expect(try losses(a) == losses(b), "\(name): logged losses differ")
    #expect(try losses(b).keys.sorted() == Array(1...7))
  }
}
