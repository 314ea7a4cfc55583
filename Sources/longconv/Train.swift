import Foundation
import LongConvKit

/// `longconv train`: trains a model from a config on a text file or a synthetic task.
enum TrainCommand {
  static let help = """
    usage: longconv train --config FILE (--text FILE | --task recall|copy|listops) --out DIR
                          [--steps N] [--batch N] [--length N] [--lr X] [--seed S]
                          [--validate-every N] [--checkpoint-every N] [--resume]

    Trains with AdamW (weight decay 0.1 off norms, biases and decay parameters), 100 warmup
    steps then cosine, gradient clipping at 1.0. Writes DIR/metrics.jsonl, DIR/loss.svg and
    DIR/checkpoint (atomically, every --checkpoint-every steps and at the end). --resume
    continues from DIR/checkpoint with the same arguments and ends exactly where one
    uninterrupted run would. Defaults: 1500 steps, batch 16, length 256, lr 2e-3, seed 0.
    Text: bytes, last 10% for validation. Tasks: recall and copy need a causal_lm whose
    vocabulary holds the task's tokens (129 and 18); listops needs a classifier with 10 classes
    and a vocabulary of at least 17.
    """

  static func run(_ arguments: [String]) throws {
    let command = "train"
    let args = try Arguments(
      arguments, command: command,
      options: [
        "--config", "--text", "--task", "--out", "--steps", "--batch", "--length", "--lr", "--seed",
        "--validate-every", "--checkpoint-every",
      ], switches: ["--resume"])
    if args.wantsHelp {
      print(help)
      return
    }
    let out = URL(fileURLWithPath: try args.required("--out", command: command))
    var options = TrainingOptions()
    options.steps = try args.positiveInteger("--steps", command: command) ?? options.steps
    options.validateEvery =
      try args.positiveInteger("--validate-every", command: command) ?? options.validateEvery
    options.checkpointEvery =
      try args.positiveInteger("--checkpoint-every", command: command) ?? options.checkpointEvery
    if let lr = args.string("--lr") {
      guard let value = Float(lr), value > 0, value.isFinite else {
        throw UsageError(message: "train: --lr needs a positive number, got '\(lr)'")
      }
      options.learningRate = value
    }
    let batch = try args.positiveInteger("--batch", command: command) ?? 16
    let length = try args.positiveInteger("--length", command: command) ?? 256
    let seed = UInt64(try args.positiveInteger("--seed", command: command) ?? 0)

    let objective: any TrainingObjective
    switch (args.string("--text"), args.string("--task")) {
    case (let text?, nil):
      let data = try TextDataset(contentsOf: URL(fileURLWithPath: text))
      objective = TextObjective(data: data, batch: batch, length: length, seed: seed)
    case (nil, "recall"?):
      objective = MaskedTaskObjective(
        task: try AssociativeRecall(seed: seed), validationTask: try AssociativeRecall(seed: seed &+ 1),
        batch: batch, length: length)
    case (nil, "copy"?):
      objective = MaskedTaskObjective(
        task: try SelectiveCopying(seed: seed), validationTask: try SelectiveCopying(seed: seed &+ 1),
        batch: batch, length: length)
    case (nil, "listops"?):
      objective = try ListOpsObjective(seed: seed, batch: batch, length: length)
    case (nil, let task?):
      throw UsageError(message: "train: unknown task '\(task)' (recall, copy or listops)")
    case (nil, nil), (_?, _?):
      throw UsageError(message: "train: give exactly one of --text FILE and --task NAME")
    }

    let trainer: Trainer
    if args.flag("--resume") {
      trainer = try Trainer.resuming(from: out, objective: objective, options: options)
      print("resuming at step \(trainer.step) of \(options.steps)")
    } else {
      let configPath = try args.required("--config", command: command)
      let model = try ModelBuilder.build(contentsOf: URL(fileURLWithPath: configPath))
      if FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint").path) {
        throw UserError(
          message: "\(out.path): holds a checkpoint already; pass --resume to continue it, or another --out")
      }
      trainer = try Trainer(model: model, objective: objective, options: options, directory: out)
      print("training \(model.parameterCount) parameters for \(options.steps) steps into \(out.path)")
      fflush(nil)
    }
    try trainer.run()
    print("done: checkpoint in \(trainer.checkpointDirectory.path), metrics and loss.svg in \(out.path)")
  }
}
