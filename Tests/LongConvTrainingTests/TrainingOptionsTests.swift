import Foundation
import Testing

@testable import LongConv
@testable import LongConvTraining

/// The `training` section of a config: read over the defaults, overridden by command-line
/// values, unknown keys refused by name, the resolved recipe saved with the checkpoint.
@Suite struct TrainingOptionsTests {
  static let model = """
    "dim": 8, "num_layers": 1, "vocab_size": 10, "max_length": 32,
    "layers": {"mixer": {"type": "hyena", "kernel": {"type": "hyena", "emb_dim": 3, "filter_width": 8}}}
    """

  static func json(_ text: String) throws -> JSONValue {
    try JSONValue.parse(Data(text.utf8), source: "test")
  }

  @Test func theSectionIsReadOverTheDefaults() throws {
    let config = try Self.json(
      #"{\#(Self.model), "training": {"steps": 700, "learning_rate": 5e-4, "schedule": "linear", "beta2": 0.999}}"#
    )
    let options = try TrainingOptions.recipe(in: config, file: "c.json")
    var expected = TrainingOptions()
    expected.steps = 700
    expected.learningRate = 5e-4
    expected.schedule = .linear
    expected.beta2 = 0.999
    #expect(options == expected)
    // The model ignores the section; a config without one gives the defaults.
    _ = try ModelBuilder.build(config)
    #expect(try TrainingOptions.recipe(in: Self.json("{\(Self.model)}")) == TrainingOptions())
  }

  @Test func commandLineValuesOverrideTheSection() throws {
    let config = try Self.json(
      #"{\#(Self.model), "training": {"steps": 700, "batch": 32, "learning_rate": 5e-4, "warmup_steps": 50}}"#
    )
    let options = try TrainingOptions.recipe(in: config).overriding(commandLine: [
      "--steps": "300", "--lr": "1e-3", "--schedule": "constant", "--loss-positions": "answers",
      "--clip": "0",
    ])
    #expect(options.steps == 300)  // the option wins
    #expect(options.learningRate == 1e-3)
    #expect(options.batch == 32 && options.warmupSteps == 50)  // the section's, not overridden
    #expect(options.schedule == .constant && options.lossPositions == .answers && options.clip == 0)
    #expect(options.validateEvery == TrainingOptions().validateEvery)  // the default
    #expect(throws: ConfigError(file: nil, path: "--lr", problem: "must be a positive number, got -1.0")) {
      try options.overriding(commandLine: ["--lr": "-1"])
    }
    #expect(throws: ConfigError.self) { try options.overriding(commandLine: ["--schedule": "step"]) }
    #expect(throws: ConfigError.self) { try options.overriding(commandLine: ["--seed": "1"]) }
  }

  @Test func unknownKeysInTheSectionAreRefusedByName() throws {
    let config = try Self.json(#"{\#(Self.model), "training": {"steps": 10, "learnig_rate": 1e-3}}"#)
    #expect(throws: ConfigError(file: "c.json", path: "training.learnig_rate", problem: "unknown key")) {
      try TrainingOptions.recipe(in: config, file: "c.json")
    }
    let wrongType = try Self.json(#"{\#(Self.model), "training": {"steps": "many"}}"#)
    #expect(
      throws: ConfigError(
        file: nil, path: "training.steps", problem: "expected an integer, got string \"many\"")
    ) {
      try TrainingOptions.recipe(in: wrongType)
    }
  }

  @Test func theResolvedRecipeRoundTripsAndEveryScheduleIsBuilt() throws {
    var options = TrainingOptions()
    options.learningRate = 5e-4
    options.weightDecay = 0.1
    options.schedule = .warmupCosine
    let reread = try TrainingOptions(config: ConfigReader(options.json))
    #expect(reread == options)
    guard case .object(let fields) = options.json else {
      Issue.record("not an object")
      return
    }
    #expect(fields["learning_rate"] == .number(0.0005))
    #expect(fields.count == 13)
    for schedule in TrainingOptions.Schedule.allCases {
      options.schedule = schedule
      options.warmupSteps = 10
      options.steps = 100
      let s = options.makeSchedule()
      // The product cosine is already below the peak when warmup ends (by 1 - cos(pi/10) / 2).
      let peak: Float = schedule == .cosine ? 5e-4 * 0.5 * (1 + cos(Float.pi / 10)) : 5e-4
      #expect(abs(s.rate(at: 10) - peak) < 1e-8, "\(schedule) at the end of warmup")
      #expect(s.rate(at: 5) < s.rate(at: 10))
    }
    options.schedule = .linear
    options.warmupSteps = 200
    #expect(throws: ConfigError.self) { try options.check() }
  }

  @Test func theTrainerSavesTheResolvedRecipeBesideTheCheckpoint() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "recipe-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    var options = try TrainingOptions.recipe(
      in: Self.json(
        #"{\#(Self.model), "training": {"steps": 3, "batch": 2, "validate_every": 3, "warmup_steps": 1}}"#))
    options.validationRows = 4
    options.logEvery = 1000
    let objective = try MaskedTaskObjective(
      task: AssociativeRecall(vocabularySize: 10, seed: 0),
      validationTask: AssociativeRecall(vocabularySize: 10, seed: 1),
      batch: options.batch, length: 12, lossPositions: options.lossPositions,
      validationRows: options.validationRows)
    let model = try ModelBuilder.build(Self.json("{\(Self.model)}"))
    let trainer = try Trainer(model: model, objective: objective, options: options, directory: directory)
    try trainer.run(progress: false)
    var saved = try #require(try Trainer.savedOptions(in: directory))
    saved.logEvery = options.logEvery  // console only, not part of the recipe
    #expect(saved == options)
    // Validation lines carry the accuracy beside the loss, and its plot is drawn.
    let metrics = try String(contentsOf: directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
    let validation = try #require(metrics.split(separator: "\n").first { $0.contains("val_loss") })
    #expect(validation.contains("\"val_accuracy\""))
    #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("accuracy.svg").path))
  }
}
