import Foundation
import LongConv
import LongConvLayers

/// The knobs of a training run: a recipe. Defaults are the character-LM recipe of the
/// benchmarks.
///
/// A model config may carry them as its `training` object (docs/CONFIG.md, section Training),
/// which ``init(config:defaults:)`` reads; `longconv train` starts from these defaults, applies
/// the config's `training` object, then its own command-line options, and writes the resolved
/// values (``json``) beside the checkpoint as `checkpoint/training.json`.
public struct TrainingOptions: Sendable, Equatable {
  /// The learning-rate schedule's shape (``makeSchedule()``).
  public enum Schedule: String, Sendable, CaseIterable {
    /// ``WarmupCosine`` with the ``WarmupCosine/Shape/product`` shape: warmup times a cosine over
    /// the whole run.
    case cosine
    /// ``WarmupCosine`` with the ``WarmupCosine/Shape/sequential`` shape: warmup, then a cosine
    /// over the remaining steps.
    case warmupCosine = "warmup_cosine"
    /// ``LinearWarmupDecay``: warmup, then linear decay to 0 at the last step (safari's `linear_warmup`).
    case linear
    /// ``WarmupConstant``: warmup, then the peak rate.
    case constant
  }

  /// Optimizer steps in the run.
  public var steps = 1500
  /// Rows (sequences) per batch, for the objective the caller builds.
  public var batch = 16
  /// Peak learning rate of the schedule.
  public var learningRate: Float = 2e-3
  /// Linear warmup steps.
  public var warmupSteps = 100
  /// The schedule's shape.
  public var schedule = Schedule.cosine
  /// AdamW weight decay (not on norms, biases and decays).
  public var weightDecay: Float = 0.1
  /// AdamW moment decays.
  public var beta1: Float = 0.9, beta2: Float = 0.98
  /// Global gradient-norm clipping (`0` turns it off).
  public var clip: Float = 1.0
  /// For a synthetic task with answers, the positions the training loss covers.
  public var lossPositions = LossPositions.all
  /// Steps between validations.
  public var validateEvery = 100
  /// Held-out rows a synthetic task validates on.
  public var validationRows = 512
  /// Steps between checkpoints (and one at the end).
  public var checkpointEvery = 500
  /// Progress is drawn every step on a terminal; otherwise a line every `logEvery` steps.
  /// Not part of the recipe (not read from or written to a config).
  public var logEvery = 100
  /// Scalars per gradient bucket of a data-parallel run (``GradientExchange``; 2^20, 4 MB, by
  /// default). Smaller buckets start their sums sooner; the sums' bits do not depend on it.
  /// Not part of the recipe.
  public var bucketScalars = 1 << 20
  /// The defaults above.
  public init() {}

  /// The schedule for ``learningRate``, ``warmupSteps`` and ``steps``; call ``check()`` first.
  public func makeSchedule() -> any LearningRateSchedule {
    switch schedule {
    case .cosine: WarmupCosine(peak: learningRate, warmupSteps: warmupSteps, totalSteps: steps)
    case .warmupCosine:
      WarmupCosine(peak: learningRate, warmupSteps: warmupSteps, totalSteps: steps, shape: .sequential)
    case .linear: LinearWarmupDecay(peak: learningRate, warmupSteps: warmupSteps, totalSteps: steps)
    case .constant: WarmupConstant(peak: learningRate, warmupSteps: warmupSteps)
    }
  }

  /// Throws a ``LongConv/ConfigError`` at `training.<key>` for a combination no schedule accepts: a warmup
  /// longer than the run with a schedule that decays after it (`warmup_cosine`, `linear`).
  public func check() throws {
    if [.warmupCosine, .linear].contains(schedule), warmupSteps > steps {
      throw ConfigError(
        file: nil, path: "training.warmup_steps",
        problem: "\(warmupSteps) warmup steps in a run of \(steps) with schedule \(schedule.rawValue)")
    }
  }
}

extension TrainingOptions {
  /// Reads a `training` object, every key optional (absent keys keep `defaults`' values), and
  /// refuses any other key by name (``LongConv/ConfigReader/rejectUnknownKeys()``). Keys, as in
  /// docs/CONFIG.md: `steps`, `batch`, `learning_rate`, `warmup_steps`, `schedule`,
  /// `weight_decay`, `beta1`, `beta2`, `gradient_clip`, `loss_positions`, `validate_every`,
  /// `validation_rows`, `checkpoint_every`.
  public init(config: ConfigReader, defaults: TrainingOptions = TrainingOptions()) throws {
    self = defaults
    steps = try config.int("steps", default: defaults.steps, minimum: 1)
    batch = try config.int("batch", default: defaults.batch, minimum: 1)
    learningRate = try Self.positive(config, "learning_rate", defaults.learningRate)
    warmupSteps = try config.int("warmup_steps", default: defaults.warmupSteps, minimum: 0)
    schedule = Schedule(
      rawValue: try config.string(
        "schedule", default: defaults.schedule.rawValue, allowed: Schedule.allCases.map(\.rawValue)))!
    weightDecay = Float(
      try config.double("weight_decay", default: decimal(defaults.weightDecay), range: 0...1))
    beta1 = Float(try config.double("beta1", default: decimal(defaults.beta1), range: 0...0.999_999))
    beta2 = Float(try config.double("beta2", default: decimal(defaults.beta2), range: 0...0.999_999))
    clip = Float(
      try config.double(
        "gradient_clip", default: decimal(defaults.clip), range: 0...Double.greatestFiniteMagnitude))
    lossPositions = LossPositions(
      rawValue: try config.string(
        "loss_positions", default: defaults.lossPositions.rawValue,
        allowed: LossPositions.allCases.map(\.rawValue)))!
    validateEvery = try config.int("validate_every", default: defaults.validateEvery, minimum: 1)
    validationRows = try config.int("validation_rows", default: defaults.validationRows, minimum: 1)
    checkpointEvery = try config.int("checkpoint_every", default: defaults.checkpointEvery, minimum: 1)
    try config.rejectUnknownKeys()
  }

  /// The recipe in a model config: its `training` object read over `defaults`, or `defaults`
  /// when the config has none. Unknown keys in it are refused by name (`training.<key>: unknown key`).
  public static func recipe(
    in modelConfig: JSONValue, file: String? = nil, defaults: TrainingOptions = TrainingOptions()
  ) throws -> TrainingOptions {
    let top = try ConfigReader(modelConfig, file: file)
    guard let section = top.raw("training") else { return defaults }
    return try TrainingOptions(
      config: ConfigReader(section, path: "training", file: file), defaults: defaults)
  }

  /// Every recipe key with its value, as ``init(config:defaults:)`` reads it (rates written in
  /// their shortest decimal form: `0.0005`, not the Float's binary expansion).
  public var json: JSONValue {
    func number(_ x: Float) -> JSONValue { .number(decimal(x)) }
    return .object([
      "steps": .number(Double(steps)), "batch": .number(Double(batch)), "learning_rate": number(learningRate),
      "warmup_steps": .number(Double(warmupSteps)), "schedule": .string(schedule.rawValue),
      "weight_decay": number(weightDecay), "beta1": number(beta1), "beta2": number(beta2),
      "gradient_clip": number(clip), "loss_positions": .string(lossPositions.rawValue),
      "validate_every": .number(Double(validateEvery)), "validation_rows": .number(Double(validationRows)),
      "checkpoint_every": .number(Double(checkpointEvery)),
    ])
  }

  /// The command-line options of `longconv train` that override a recipe key, by option name.
  public static let commandLineKeys: [String: String] = [
    "--steps": "steps", "--batch": "batch", "--lr": "learning_rate", "--warmup": "warmup_steps",
    "--schedule": "schedule", "--weight-decay": "weight_decay", "--clip": "gradient_clip",
    "--loss-positions": "loss_positions", "--validate-every": "validate_every",
    "--validation-rows": "validation_rows", "--checkpoint-every": "checkpoint_every",
  ]

  /// These options with the command-line values in `options` (option name to text, for
  /// example `["--lr": "1e-3"]`) read over them, through the same checks as a config's
  /// `training` object; a bad value throws a ``LongConv/ConfigError`` naming the option. Options not in
  /// ``commandLineKeys`` are refused.
  public func overriding(commandLine options: [String: String]) throws -> TrainingOptions {
    var object: [String: JSONValue] = [:]
    for (option, text) in options {
      guard let key = Self.commandLineKeys[option] else {
        throw ConfigError(file: nil, path: option, problem: "not a recipe option")
      }
      object[key] = Double(text).map(JSONValue.number) ?? .string(text)
    }
    do {
      return try TrainingOptions(config: ConfigReader(.object(object), path: ""), defaults: self)
    } catch let error as ConfigError {
      let option = Self.commandLineKeys.first { $0.value == error.path }?.key ?? error.path
      throw ConfigError(file: nil, path: option, problem: error.problem)
    }
  }

  private static func positive(_ config: ConfigReader, _ key: String, _ fallback: Float) throws -> Float {
    let value = try config.double(key, default: decimal(fallback))
    guard value > 0, value.isFinite else {
      throw config.error(key, "must be a positive number, got \(value)")
    }
    return Float(value)
  }
}

/// `x` as the Double of its shortest decimal form (`Float(0.1)` gives `0.1`, not `0.100000001`).
private func decimal(_ x: Float) -> Double { Double("\(x)") ?? Double(x) }
