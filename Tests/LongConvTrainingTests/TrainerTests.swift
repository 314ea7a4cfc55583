import Foundation
import LongConvTensors
import LongConvTraining
import Testing

@testable import LongConv

/// The trainer: exact resume, stopping on a non-finite loss with the checkpoint kept, the
/// files it writes.
@Suite struct TrainerTests {
  static let config = """
    {"dim": 8, "num_layers": 1, "vocab_size": 256, "max_length": 32,
     "layers": {"mixer": {"type": "gtu", "expand_ratio": 2, "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}}}
    """

  static func model() throws -> any SequenceModel {
    try ModelBuilder.build(JSONValue.parse(Data(config.utf8), source: "trainer-test"))
  }

  static func objective() throws -> TextObjective {
    let bytes = (0..<4000).map { UInt8(truncatingIfNeeded: ($0 * 37 + $0 / 7) % 97 + 32) }
    return TextObjective(
      data: try TextDataset(bytes: bytes), batch: 2, length: 16, seed: 5, validationChunks: 4)
  }

  static func options(steps: Int) -> TrainingOptions {
    var o = TrainingOptions()
    o.steps = steps
    o.warmupSteps = 2
    o.validateEvery = 3
    o.checkpointEvery = 3
    o.logEvery = 1000
    return o
  }

  func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  @Test func resumingEndsWithExactlyTheParametersOfOneRun() throws {
    let (a, b) = (try scratch(), try scratch())
    defer {
      try? FileManager.default.removeItem(at: a)
      try? FileManager.default.removeItem(at: b)
    }
    let whole = try Trainer(
      model: Self.model(), objective: Self.objective(), options: Self.options(steps: 8), directory: a)
    try whole.run(progress: false)

    let first = try Trainer(
      model: Self.model(), objective: Self.objective(), options: Self.options(steps: 8), directory: b)
    try first.run(stopAfter: 4, progress: false)
    #expect(first.step == 4)
    let resumed = try Trainer.resuming(from: b, objective: Self.objective(), options: Self.options(steps: 8))
    #expect(resumed.step == 4)
    try resumed.run(progress: false)

    let p = whole.model.namedParameters()
    let q = resumed.model.namedParameters()
    #expect(p.map(\.name) == q.map(\.name))
    for (x, y) in zip(p, q) {
      #expect(x.tensor.scalars == y.tensor.scalars, "\(x.name) differs after resume")
    }
    for name in [
      "metrics.jsonl", "loss.svg", "checkpoint/model.safetensors", "checkpoint/optimizer.safetensors",
    ] {
      #expect(FileManager.default.fileExists(atPath: b.appendingPathComponent(name).path), "\(name)")
    }
  }

  /// The same training twice, on the machine's threads with a model wide enough for the
  /// threaded paths (FFT tasks, column sums, optimizer chunks), ends with bit-identical
  /// parameters and optimizer state: no reduction depends on completion order. (Across
  /// processes FFTW's plans must match too: they are chosen by estimate, not by timing;
  /// scripts/cli-smoke.sh compares two `longconv train` processes byte for byte.)
  @Test func theSameRunTwiceIsBitIdentical() throws {
    let config = """
      {"dim": 96, "num_layers": 2, "vocab_size": 256, "max_length": 64,
       "layers": {"mixer": {"type": "gtu", "expand_ratio": 3, "kernel": {"type": "tnn", "rpe_width": 16, "rpe_layers": 1}}}}
      """
    func run() throws -> ([Float], [String: [Float]]) {
      let directory = try scratch()
      defer { try? FileManager.default.removeItem(at: directory) }
      let bytes = (0..<20000).map { UInt8(truncatingIfNeeded: ($0 * 37 + $0 / 7) % 97 + 32) }
      let objective = TextObjective(data: try TextDataset(bytes: bytes), batch: 8, length: 64, seed: 5)
      var options = Self.options(steps: 4)
      options.validateEvery = 1000
      let trainer = try Trainer(
        model: ModelBuilder.build(JSONValue.parse(Data(config.utf8), source: "determinism")),
        objective: objective, options: options, directory: directory)
      try trainer.run(progress: false)
      return (trainer.model.parameters.flatMap(\.scalars), trainer.optimizer.state)
    }
    let (first, firstState) = try run()
    let (second, secondState) = try run()
    #expect(first == second)
    #expect(firstState == secondState)
  }

  /// A run stopped after its last checkpoint (metrics logged past it) and resumed logs every
  /// step once.
  @Test func metricsAfterAResumeHoldEachStepOnce() throws {
    let directory = try scratch()
    defer { try? FileManager.default.removeItem(at: directory) }
    var options = Self.options(steps: 8)
    options.checkpointEvery = 4
    let first = try Trainer(model: Self.model(), objective: Self.objective(), options: options, directory: directory)
    try first.run(stopAfter: 6, progress: false)  // checkpoint at 4; the stop at 6 saves again
    // As if killed after step 6 with the checkpoint of step 4 (the step is rolled back; the
    // weights do not matter to what is checked here).
    let metrics = directory.appendingPathComponent("metrics.jsonl")
    let logged = try String(contentsOf: metrics, encoding: .utf8)
    #expect(logged.contains("\"step\":6") || logged.contains("\"step\": 6"))
    let checkpointState = directory.appendingPathComponent("checkpoint/trainer.json")
    try Data(#"{"step": 4}"#.utf8).write(to: checkpointState)
    let resumed = try Trainer.resuming(from: directory, objective: Self.objective(), options: options)
    try resumed.run(progress: false)
    let steps = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").compactMap { line -> Int? in
      guard case .object(let f)? = try? JSONValue.parse(Data(line.utf8), source: "metrics"),
        f["loss"] != nil, case .number(let s)? = f["step"]
      else { return nil }
      return Int(s)
    }
    #expect(steps == Array(1...8), "\(steps)")
  }

  /// Returns NaN from step `at` on, after delegating to a real objective before.
  struct PoisonedObjective: TrainingObjective {
    var inner: TextObjective
    let at: Int
    var step = 0
    mutating func nextLoss(_ model: any SequenceModel) throws -> (loss: Tensor, tokens: Int) {
      step += 1
      let (loss, tokens) = try inner.nextLoss(model)
      return (step >= at ? loss * Float.nan : loss, tokens)
    }
    mutating func skip(batches: Int) throws { try inner.skip(batches: batches) }
    func validationLoss(_ model: any SequenceModel) throws -> Double? { nil }
  }

  @Test func aNonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
    let directory = try scratch()
    defer { try? FileManager.default.removeItem(at: directory) }
    let trainer = try Trainer(
      model: Self.model(), objective: PoisonedObjective(inner: Self.objective(), at: 5),
      options: Self.options(steps: 8), directory: directory)
    let before = trainer.model.namedParameters().map { $0.tensor.copy() }
    #expect(
      throws: TrainingError.nonFinite(step: 5, what: "loss", lastCheckpoint: trainer.checkpointDirectory.path)
    ) {
      try trainer.run(progress: false)
    }
    #expect(trainer.step == 4)
    // The checkpoint from step 3 is intact and loads; it differs from the initial model.
    let saved = try Checkpoint.load(from: trainer.checkpointDirectory)
    let changed = zip(saved.namedParameters(), before).contains { $0.tensor.scalars != $1.scalars }
    #expect(changed)
    let state = try Data(contentsOf: trainer.checkpointDirectory.appendingPathComponent("trainer.json"))
    #expect(String(decoding: state, as: UTF8.self).contains("\"step\" : 3"))
  }

  @Test func lossFallsOnText() throws {
    let directory = try scratch()
    defer { try? FileManager.default.removeItem(at: directory) }
    var options = Self.options(steps: 30)
    options.learningRate = 1e-2
    let trainer = try Trainer(
      model: Self.model(), objective: Self.objective(), options: options, directory: directory)
    let objective = try Self.objective()
    let before = try objective.validationLoss(trainer.model)!
    try trainer.run(progress: false)
    let after = try objective.validationLoss(trainer.model)!
    #expect(after < before - 0.5, "validation loss \(before) -> \(after)")
    let metrics = try String(contentsOf: directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
    #expect(metrics.split(separator: "\n").filter { $0.contains("\"loss\"") }.count == 30)
    #expect(metrics.contains("\"val_loss\""))
  }
}

/// Models that do not fit the data are refused before anything is written.
@Suite struct TrainerInputTests {
  func directory() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("trainer-input-\(UUID().uuidString)")
  }

  func build(_ text: String) throws -> any SequenceModel {
    try ModelBuilder.build(JSONValue.parse(Data(text.utf8), source: "test"))
  }

  @Test func aVocabularySmallerThanTheDataIsRefused() throws {
    let model = try build(
      #"{"dim": 8, "num_layers": 1, "vocab_size": 100, "layers": {"mixer": {"type": "gtu", "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}}}"#
    )
    let out = directory()
    #expect(
      throws: TrainingError.wrongModel(
        "the model's vocab_size 100 is smaller than the 256 tokens of byte-level text")
    ) {
      _ = try Trainer(
        model: model, objective: TrainerTests.objective(), options: TrainingOptions(), directory: out)
    }
    #expect(!FileManager.default.fileExists(atPath: out.path))
  }

  @Test func aLanguageModelForListOpsIsRefused() throws {
    let model = try build(
      #"{"dim": 8, "num_layers": 1, "layers": {"mixer": {"type": "gtu", "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}}}"#
    )
    let out = directory()
    #expect(throws: TrainingError.self) {
      _ = try Trainer(
        model: model, objective: try ListOpsObjective(seed: 1, batch: 2, length: 32),
        options: TrainingOptions(),
        directory: out)
    }
    #expect(!FileManager.default.fileExists(atPath: out.path))
  }

  @Test func resumingWithoutACheckpointIsAClearError() throws {
    let out = directory()
    #expect(throws: CheckpointError.self) {
      _ = try Trainer.resuming(from: out, objective: TrainerTests.objective(), options: TrainingOptions())
    }
    #expect(!FileManager.default.fileExists(atPath: out.path))
  }
}
