import Foundation
import LongConvCommandLine
import LongConvDistributed
import LongConvKit

/// `longconv train`: trains a model from a config on a text file or a synthetic task.
enum TrainCommand {
  static let help = """
    usage: longconv train --config FILE (--text FILE | --task TASK) --out DIR
                          [--vocab V] [--length N] [--seed S] [--threads N] [--resume]
                          [--init-from DIR] [--bucket-mb X]
                          [--steps N] [--batch N] [--lr X] [--warmup N]
                          [--schedule cosine|warmup_cosine|linear|constant] [--weight-decay X]
                          [--clip X] [--loss-positions all|answers] [--validate-every N]
                          [--validation-rows N] [--checkpoint-every N]

    Trains with AdamW (weight decay off norms, biases, decay parameters and Hyena filters), a
    learning-rate schedule and gradient clipping. The recipe comes from the config's "training"
    object (docs/CONFIG.md), every key of which the options in the last three lines override; without
    one: 1500 steps, batch 16, lr 2e-3, 100 warmup steps then cosine, weight decay 0.1,
    clipping at 1.0, validation every 100 steps. Writes DIR/metrics.jsonl (validation lines
    carry "val_accuracy" for the tasks with answers), DIR/loss.svg, DIR/accuracy.svg and
    DIR/checkpoint (atomically, every --checkpoint-every steps and at the end), with the
    resolved recipe in DIR/checkpoint/training.json. --resume continues from DIR/checkpoint
    with its saved recipe (options given again override it) and the same data options, and
    ends exactly where one uninterrupted run would. --init-from DIR starts a new run from the
    parameters and buffers of the checkpoint in DIR (another run's --out directory, or its
    checkpoint) instead of the config's initialisation: the config must describe the same
    model (names and shapes are checked), and the step, optimizer state and schedule start
    afresh (a curriculum over lengths, or fine-tuning).

    Data (--seed S draws the training rows; validation rows come from seed S + 1):
      --text FILE      bytes, last 10% for validation; --length N tokens per row (default 256)
      --task recall    safari's associative recall: --vocab V tokens (default 10: 4 keys,
                       4 values, 2 special), --length L = safari's input_seq_len (default 256):
                       L/2 key-value pairs, the separator and the query, rows of 2(L/2)+2 tokens
      --task induction safari's induction head: --vocab V (default 20), --length L (default
                       256): L tokens with one separator-token pair, then the separator; rows
                       of L+1 tokens
      --task recall-distinct   the toolkit's first recall task (distinct keys, 64 keys and
                       64 values, a pad; 129 tokens); --length N tokens per row
      --task copy      selective copying (18 tokens); --length N tokens per row
      --task listops   ListOps, for a classifier with 10 classes; --length N tokens per row
    On the tasks with answers (recall, induction, recall-distinct, copy) the training loss
    covers --loss-positions (default all: every position, as safari trains); validation loss
    and accuracy are measured on the answers of --validation-rows held-out rows (default 512).

    Data-parallel: `mpirun -np N longconv train ...` with the same options trains the same run
    on N processes: --batch is the global batch (N must divide it), each process takes its
    rows of every batch, the gradients are averaged (deterministically) before clipping, and
    rank 0 alone validates and writes. --threads defaults to the node's processors divided by
    the processes on it. A checkpoint resumes with any number of processes. The gradients are
    summed in buckets of --bucket-mb megabytes (default 4), each started as soon as the
    backward pass has finished its gradients; the result does not depend on the size.
    """

  static let recipeOptions = Set(TrainingOptions.commandLineKeys.keys)

  static func run(_ arguments: [String]) throws {
    // MPI only under a launcher: a process started on its own never calls into MPI.
    guard let world = MPIWorld.initializeIfLaunched() else {
      return try train(arguments, world: nil)
    }
    do {
      try train(arguments, world: world)
    } catch let error as UsageError {
      // Every process refuses the same arguments before any step: say it once, end together.
      if world.rank == 0 { FileHandle.standardError.write(Data("longconv: \(error.message)\n".utf8)) }
      world.finalize()
      exit(2)
    } catch {
      let message = (error as? UserError)?.message ?? "\(error)"
      FileHandle.standardError.write(
        Data("longconv: rank \(world.rank) of \(world.size): \(message)\n".utf8))
      world.abort(status: 1)
    }
    world.finalize()
  }

  static func train(_ arguments: [String], world: MPIWorld?) throws {
    let command = "train"
    let args = try Arguments(
      arguments, command: command,
      options: recipeOptions.union([
        "--config", "--text", "--task", "--out", "--vocab", "--length", "--seed", "--threads", "--bucket-mb",
        "--init-from",
      ]), switches: ["--resume"])
    if args.wantsHelp {
      print(help)
      return
    }
    let out = URL(fileURLWithPath: try args.required("--out", command: command))
    if let threads = try args.positiveInteger("--threads", command: command) {
      ComputeThreads.count = threads
    } else if let world {
      ComputeThreads.count = world.defaultThreads()
    }
    let writer = (world?.rank ?? 0) == 0

    // The recipe: defaults, then the saved one (resume) or the config's, then the options.
    let resume = args.flag("--resume")
    let initFrom = args.string("--init-from")
    if resume, initFrom != nil {
      throw UsageError(
        message:
          "train: --init-from starts a new run from another checkpoint; it cannot be combined with --resume")
    }
    let configURL = args.string("--config").map { URL(fileURLWithPath: $0) }
    let configJSON = try configURL.map { try JSONValue.read(contentsOf: $0) }
    var options: TrainingOptions
    if resume, let saved = try Trainer.savedOptions(in: out) {
      options = saved
    } else if let configJSON {
      options = try TrainingOptions.recipe(in: configJSON, file: configURL?.path)
    } else {
      options = TrainingOptions()
    }
    do {
      options = try options.overriding(
        commandLine: Dictionary(
          uniqueKeysWithValues: recipeOptions.compactMap { o in args.string(o).map { (o, $0) } }))
    } catch let error as ConfigError {
      throw UsageError(message: "train: \(error)")
    }
    try options.check()
    if let megabytes = try args.number("--bucket-mb", in: 1e-6...65536) {
      options.bucketScalars = max(1, Int(megabytes * 1_048_576 / 4))
    }
    if let world, world.size > 1, options.batch % world.size != 0 {
      throw UsageError(
        message:
          "train: --batch \(options.batch) (the global batch) cannot be shared by \(world.size) processes: give a multiple of \(world.size)"
      )
    }

    let objective = try makeObjective(args, options: options, command: command)
    let trainer: Trainer
    if resume {
      trainer = try Trainer.resuming(from: out, objective: objective, options: options, reducer: world)
      if writer { print("resuming at step \(trainer.step) of \(options.steps)") }
    } else {
      guard let configJSON else { throw UsageError(message: "train: --config is required") }
      let model = try ModelBuilder.build(configJSON, file: configURL?.path)
      if let initFrom { try Checkpoint.loadState(into: model, from: checkpointDirectory(initFrom)) }
      try checkMemory(model, args: args, options: options, command: command, world: world)
      if FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint").path) {
        throw UserError(
          message: "\(out.path): holds a checkpoint already; pass --resume to continue it, or another --out")
      }
      trainer = try Trainer(
        model: model, objective: objective, options: options, directory: out, reducer: world)
      if writer {
        print("training \(model.parameterCount) parameters for \(options.steps) steps into \(out.path)")
        if let initFrom { print("starting from the weights in \(initFrom)") }
        if let world, world.size > 1 {
          print(
            "data-parallel: \(world.size) processes, \(options.batch / world.size) rows each, \(ComputeThreads.count) threads each"
          )
        }
        print("recipe: \(String(decoding: options.json.serialized(), as: UTF8.self))")
        fflush(nil)
      }
    }
    try trainer.run()
    if writer {
      print("done: checkpoint in \(trainer.checkpointDirectory.path), metrics and plots in \(out.path)")
    }
  }

  /// The checkpoint `--init-from` names: `path` itself when it holds weights, else the
  /// checkpoint of the run directory `path`.
  static func checkpointDirectory(_ path: String) -> URL {
    let given = URL(fileURLWithPath: path)
    let weights = given.appendingPathComponent(Checkpoint.weightsFile).path
    return FileManager.default.fileExists(atPath: weights)
      ? given : Checkpoint.location(of: given.appendingPathComponent("checkpoint"))
  }

  /// Refuses, before the first step, a batch whose activations (with the parameters, their
  /// gradients and the optimizer's two moments) cannot fit (``MemoryEstimate``).
  static func checkMemory(
    _ model: any SequenceModel, args: Arguments, options: TrainingOptions, command: String, world: MPIWorld?
  )
    throws
  {
    let length = try args.positiveInteger("--length", command: command) ?? 256
    let rows = (model as? CausalLanguageModel)?.vocabulary ?? 0
    let width = model.blocks.first?.mixer.width ?? 0
    // Each process holds the model and its share of the batch; this node runs `localSize` of them.
    let processes = world?.size ?? 1
    let onThisNode = Double(world?.localSize ?? 1)
    let needed =
      onThisNode
      * (MemoryEstimate.activationBytes(
        rows: rows, dim: width, layers: model.blocks.count, batch: options.batch / processes, length: length)
        + 16 * Double(model.parameterCount))
    if let available = MemoryEstimate.availableBytes(), needed > available {
      let who = onThisNode > 1 ? " on \(Int(onThisNode)) processes of this node" : ""
      throw UserError(
        message: """
          train: a batch of \(options.batch) x \(length) needs about \(MemoryEstimate.describe(needed))\(who) \
          (an estimate); this machine has \(MemoryEstimate.describe(available)) available: lower --batch or --length
          """)
    }
  }

  /// The data and loss the arguments describe.
  static func makeObjective(_ args: Arguments, options: TrainingOptions, command: String) throws
    -> any TrainingObjective
  {
    let length = try args.positiveInteger("--length", command: command) ?? 256
    let vocabulary = try args.positiveInteger("--vocab", command: command)
    let seed = UInt64(try args.nonNegativeInteger("--seed", command: command) ?? 0)
    let task = args.string("--task")
    if vocabulary != nil, task != "recall", task != "induction" {
      throw UsageError(message: "train: --vocab is for --task recall or induction")
    }
    func masked(_ make: (UInt64) throws -> any MaskedSequenceTask, rowLength: Int) throws
      -> any TrainingObjective
    {
      try MaskedTaskObjective(
        task: make(seed), validationTask: make(seed &+ 1), batch: options.batch, length: rowLength,
        lossPositions: options.lossPositions, validationRows: options.validationRows)
    }
    switch (args.string("--text"), task) {
    case (let text?, nil):
      let data = try TextDataset(contentsOf: URL(fileURLWithPath: text))
      return TextObjective(data: data, batch: options.batch, length: length, seed: seed)
    case (nil, "recall"?):
      return try masked(
        { try AssociativeRecall(vocabularySize: vocabulary ?? 10, seed: $0) },
        rowLength: AssociativeRecall.rowLength(inputLength: length))
    case (nil, "induction"?):
      return try masked(
        { try InductionHead(vocabularySize: vocabulary ?? 20, seed: $0) },
        rowLength: InductionHead.rowLength(inputLength: length))
    case (nil, "recall-distinct"?):
      return try masked({ try DistinctKeyRecall(seed: $0) }, rowLength: length)
    case (nil, "copy"?):
      return try masked({ try SelectiveCopying(seed: $0) }, rowLength: length)
    case (nil, "listops"?):
      return try ListOpsObjective(seed: seed, batch: options.batch, length: length)
    case (nil, let task?):
      throw UsageError(
        message: "train: unknown task '\(task)' (recall, induction, recall-distinct, copy or listops)")
    case (nil, nil), (_?, _?):
      throw UsageError(message: "train: give exactly one of --text FILE and --task NAME")
    }
  }
}
