import Foundation
import LongConv
import LongConvIO
import LongConvInspection
import LongConvTensors

/// Why training stopped early or could not start.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
  /// The objective needs another kind of model.
  case wrongModel(String)
  /// A loss or gradient norm that is NaN or infinite; the last checkpoint, if any, is kept.
  case nonFinite(step: Int, what: String, lastCheckpoint: String?)
  /// A training directory that cannot be resumed.
  case cannotResume(path: String, problem: String)
  /// A data-parallel run that cannot be set up (a batch the processes cannot share, processes
  /// whose parameters differ).
  case cannotShard(String)

  /// What went wrong; for a non-finite value, the step and whether a last good checkpoint was kept.
  public var description: String {
    switch self {
    case .wrongModel(let problem): problem
    case .nonFinite(let step, let what, let checkpoint):
      "step \(step): the \(what) is not finite; training stopped"
        + (checkpoint.map { " (last good checkpoint kept: \($0))" } ?? " (no checkpoint written yet)")
    case .cannotResume(let path, let problem): "\(path): cannot resume: \(problem)"
    case .cannotShard(let problem): problem
    }
  }
}

/// Trains a model on an objective with AdamW (default parameter groups), the options' schedule
/// (``TrainingOptions/makeSchedule()``) and gradient clipping, writing into `directory`:
/// - `metrics.jsonl`: one JSON object per step (`step`, `loss`, `lr`, `grad_norm`,
///   `tokens_per_s`, and in a data-parallel run `allreduce_ms`, the time the loss and gradient
///   sums were under way (``GradientExchange``), and `allreduce_exposed_ms`, the part of it the
///   step waited for, not hidden behind the backward pass) and per validation
///   (`step`, `val_loss`, and `val_accuracy` when the objective measures one);
/// - `checkpoint/`: the model, `optimizer.safetensors`, `trainer.json` (the step) and
///   `training.json` (the resolved ``TrainingOptions/json``), written atomically every
///   `checkpointEvery` steps and at the end;
/// - `loss.svg`: the loss curve, and `accuracy.svg` (validation accuracy against the step) when
///   the objective measures one, redrawn at each validation and at the end.
///
/// Resuming reloads the checkpoint and replays the objective's seeded batch stream to the same
/// position, so `N` steps, a stop and `N` more end with exactly the parameters of `2N` steps
/// in one run. A non-finite loss or gradient norm stops training with
/// ``TrainingError/nonFinite(step:what:lastCheckpoint:)``, leaving the last checkpoint intact.
public final class Trainer {
  /// The model, trained in place.
  public let model: any SequenceModel
  /// The data and loss.
  public var objective: any TrainingObjective
  /// The run's settings.
  public let options: TrainingOptions
  /// Where metrics, the plot and checkpoints are written.
  public let directory: URL
  /// AdamW over ``defaultGroups(for:weightDecay:ssmLearningRateScale:extraNoDecay:)``.
  public let optimizer: AdamW
  let schedule: any LearningRateSchedule
  /// Steps completed.
  public private(set) var step = 0
  /// The other processes of a data-parallel run, or `nil` for one process (see
  /// ``GradientReducer``): each process trains on its ``BatchShard`` of every batch, the
  /// gradients are averaged over all of them before clipping, and only rank 0 writes.
  public let reducer: (any GradientReducer)?
  /// Whether this process writes metrics, plots, progress and checkpoints (rank 0, or the only one).
  public var isWriter: Bool { (reducer?.rank ?? 0) == 0 }
  var isDistributed: Bool { (reducer?.size ?? 1) > 1 }
  /// The gradient sum of a data-parallel run, overlapped with the backward pass.
  lazy var exchange: GradientExchange? =
    isDistributed
    ? GradientExchange(
      parameters: optimizer.parameters, reducer: reducer!, bucketScalars: options.bucketScalars)
    : nil
  var losses: [(step: Int, loss: Double)] = []
  var validations: [(step: Int, loss: Double)] = []
  var accuracies: [(step: Int, accuracy: Double)] = []

  /// `directory/checkpoint`.
  public var checkpointDirectory: URL { directory.appendingPathComponent("checkpoint") }
  var metricsURL: URL { directory.appendingPathComponent("metrics.jsonl") }

  /// A fresh run writing into `directory` (created if needed).
  public init(
    model: any SequenceModel, objective: any TrainingObjective, options: TrainingOptions, directory: URL,
    reducer: (any GradientReducer)? = nil
  )
    throws
  {
    try objective.check(model)  // before any file is written
    try options.check()
    if let reducer, reducer.size > 1, options.batch % reducer.size != 0 {
      throw TrainingError.cannotShard(
        "a batch of \(options.batch) rows cannot be shared equally by \(reducer.size) processes")
    }
    self.reducer = reducer
    self.model = model
    self.objective = objective
    self.options = options
    self.directory = directory
    optimizer = AdamW(
      groups: defaultGroups(for: model, weightDecay: options.weightDecay), learningRate: options.learningRate,
      beta1: options.beta1, beta2: options.beta2)
    schedule = options.makeSchedule()
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  /// Continues the run in `directory` from its checkpoint; `objective` must be built as for the
  /// original run (same seed), and is fast-forwarded to the checkpoint's step.
  public static func resuming(
    from directory: URL, objective: any TrainingObjective, options: TrainingOptions,
    reducer: (any GradientReducer)? = nil
  ) throws -> Trainer {
    let checkpoint = Checkpoint.location(of: directory.appendingPathComponent("checkpoint"))
    let model = try Checkpoint.load(from: checkpoint)
    let trainer = try Trainer(
      model: model, objective: objective, options: options, directory: directory, reducer: reducer)
    let stateURL = checkpoint.appendingPathComponent("trainer.json")
    guard let data = try? Data(contentsOf: stateURL),
      case .object(let fields)? = try? JSONValue.parse(data, source: stateURL.path),
      case .number(let savedStep)? = fields["step"]
    else {
      throw TrainingError.cannotResume(path: stateURL.path, problem: "missing or unreadable trainer state")
    }
    let saved = try SafeTensors.read(contentsOf: checkpoint.appendingPathComponent("optimizer.safetensors"))
    var state: [String: [Float]] = [:]
    for name in saved.names { state[name] = saved.tensor(name)!.scalars }
    do {
      try trainer.optimizer.loadState(state)
    } catch {
      throw TrainingError.cannotResume(path: checkpoint.path, problem: "optimizer state: \(error)")
    }
    trainer.step = Int(savedStep)
    try trainer.objective.skip(batches: trainer.step)
    guard trainer.isWriter else { return trainer }
    try trainer.trimMetrics(after: trainer.step)
    trainer.losses = trainer.readMetrics(upTo: trainer.step, key: "loss").map { ($0.step, $0.value) }
    trainer.validations = trainer.readMetrics(upTo: trainer.step, key: "val_loss").map { ($0.step, $0.value) }
    trainer.accuracies = trainer.readMetrics(upTo: trainer.step, key: "val_accuracy").map {
      ($0.step, $0.value)
    }
    return trainer
  }

  /// Trains until `options.steps` (or `stopAfter` steps, for a run in parts).
  public func run(stopAfter: Int? = nil, progress: Bool = isatty(STDOUT_FILENO) != 0) throws {
    let last = min(options.steps, stopAfter ?? options.steps)
    let started = Date()
    let firstStep = step
    var tokens = 0
    var lastCheckpoint: String? =
      FileManager.default.fileExists(atPath: checkpointDirectory.path) ? checkpointDirectory.path : nil
    let progress = progress && isWriter
    if isDistributed { try synchronizeParameters() }
    while step < last {
      let current = step + 1
      optimizer.learningRate = schedule.rate(at: current)
      let loss: Tensor
      let value: Float
      let batchTokens: Int
      var shareOfMean: Float = 1
      var exchangeSeconds = 0.0
      var exposedSeconds = 0.0
      if let reducer, reducer.size > 1 {
        // This process's rows; the global mean loss weighs each share by its loss positions.
        let local = try objective.nextLoss(model, shard: BatchShard(index: reducer.rank, count: reducer.size))
        loss = local.loss
        let exchangeStart = Date()
        let totals = try reducer.sum([
          Double(local.loss.scalar) * Double(local.weight), Double(local.weight), Double(local.tokens),
        ])
        value = Float(totals[0] / totals[1])
        batchTokens = Int(totals[2])
        shareOfMean = Float(Double(local.weight) / totals[1])
        exchangeSeconds += Date().timeIntervalSince(exchangeStart)
        exposedSeconds = exchangeSeconds
      } else {
        (loss, batchTokens) = try objective.nextLoss(model)
        value = loss.scalar
      }
      guard value.isFinite else {
        throw TrainingError.nonFinite(step: current, what: "loss", lastCheckpoint: lastCheckpoint)
      }
      if let exchange {
        let timing = try exchange.backward(loss, scale: shareOfMean)
        exchangeSeconds += timing.reductionSeconds
        exposedSeconds += timing.exposedSeconds
      } else {
        loss.backward()
      }
      let norm = options.clip > 0 ? clipGradientNorm(optimizer.parameters, maxNorm: options.clip) : 0
      guard norm.isFinite else {
        optimizer.zeroGradients()
        throw TrainingError.nonFinite(step: current, what: "gradient norm", lastCheckpoint: lastCheckpoint)
      }
      optimizer.step()
      optimizer.zeroGradients()
      step = current
      tokens += batchTokens
      let elapsed = Date().timeIntervalSince(started)
      let rate = Double(tokens) / max(elapsed, 1e-9)
      guard isWriter else { continue }  // rank 0 alone validates and writes; the others train on
      losses.append((step, Double(value)))
      appendMetrics(
        "{\"step\": \(step), \"loss\": \(value), \"lr\": \(optimizer.learningRate), \"grad_norm\": \(norm), \"tokens_per_s\": \(Int(rate))"
          + (isDistributed
            ? String(
              format: ", \"allreduce_ms\": %.3f, \"allreduce_exposed_ms\": %.3f", exchangeSeconds * 1000,
              exposedSeconds * 1000) : "") + "}"
      )
      report(
        loss: value, rate: rate, elapsed: elapsed, stepsThisRun: step - firstStep, progress: progress,
        last: last)

      if step % options.validateEvery == 0 || step == options.steps {
        if let validation = try objective.validate(model) {
          validations.append((step, validation.loss))
          var line = "{\"step\": \(step), \"val_loss\": \(validation.loss)"
          var text = String(format: "step %d: validation loss %.4f", step, validation.loss)
          if let accuracy = validation.accuracy {
            accuracies.append((step, accuracy))
            line += ", \"val_accuracy\": \(accuracy)"
            text += String(format: ", accuracy %.4f", accuracy)
          }
          appendMetrics(line + "}")
          if progress { print("") }
          print(text)
          fflush(nil)
        }
        try? plot()
      }
      if step % options.checkpointEvery == 0 || step == options.steps || step == last {
        // (rank 0 only: the others continued above)
        try saveCheckpoint()
        lastCheckpoint = checkpointDirectory.path
      }
    }
    if progress { print("") }
    if isWriter { try? plot() }
    // The other processes wait for rank 0's last checkpoint before they finish.
    if isDistributed { try reducer?.barrier() }
  }

  /// Rank 0's parameters on every process, then a hash of the parameters and optimizer state
  /// compared across processes (throws ``TrainingError/cannotShard(_:)`` when they differ).
  func synchronizeParameters() throws {
    guard let reducer else { return }
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for p in try reducer.broadcastState(of: model) { p.withUnsafeBufferPointer { fnv1a($0, &hash) } }
    let state = optimizer.state
    for name in state.keys.sorted() {
      state[name]!.withUnsafeBufferPointer { fnv1a($0, &hash) }
    }
    let hashes = try reducer.gather(hash)
    if Set(hashes).count != 1 {
      throw TrainingError.cannotShard(
        "the processes' parameters or optimizer states differ after the broadcast (hashes by rank: "
          + hashes.map { String($0, radix: 16) }.joined(separator: ", ") + ")")
    }
  }

  /// Writes the model, optimizer state and step atomically into `checkpoint/`.
  public func saveCheckpoint() throws {
    var tensors: [String: Tensor] = [:]
    for (name, values) in optimizer.state { tensors[name] = Tensor(values) }
    let trainerState = JSONValue.object(["step": .number(Double(step))]).serialized()
    try Checkpoint.save(
      model, to: checkpointDirectory,
      extraFiles: ["trainer.json": trainerState, "training.json": options.json.serialized()],
      extraTensorFiles: ["optimizer.safetensors": tensors])
  }

  func appendMetrics(_ line: String) {
    let data = Data((line + "\n").utf8)
    if let handle = try? FileHandle(forWritingTo: metricsURL) {
      handle.seekToEndOfFile()
      handle.write(data)
      try? handle.close()
    } else {
      try? data.write(to: metricsURL)
    }
  }

  /// Drops the metrics lines of steps after `last` (a run stopped after its last checkpoint
  /// logged steps that the resumed run repeats), so every step is logged once.
  func trimMetrics(after last: Int) throws {
    guard let text = try? String(contentsOf: metricsURL, encoding: .utf8) else { return }
    let kept = text.split(separator: "\n", omittingEmptySubsequences: true).filter { line in
      guard case .object(let f)? = try? JSONValue.parse(Data(line.utf8), source: "metrics"),
        case .number(let s)? = f["step"]
      else { return false }  // a line cut off by the stop
      return Int(s) <= last
    }
    let data = Data(kept.map { $0 + "\n" }.joined().utf8)
    try AtomicFile.write(to: metricsURL) { sink in try data.withUnsafeBytes { try sink($0) } }
  }

  /// The values of `key` logged up to `step` (for the plots after a resume).
  func readMetrics(upTo last: Int, key: String) -> [(step: Int, value: Double)] {
    guard let text = try? String(contentsOf: metricsURL, encoding: .utf8) else { return [] }
    var out: [(step: Int, value: Double)] = []
    for line in text.split(separator: "\n") {
      guard case .object(let f)? = try? JSONValue.parse(Data(line.utf8), source: "metrics"),
        case .number(let s)? = f["step"], case .number(let v)? = f[key], Int(s) <= last
      else { continue }
      out.append((Int(s), v))
    }
    return out
  }

  /// The recipe a run in `directory` saved with its checkpoint (`checkpoint/training.json`), or
  /// `nil` when there is none (a checkpoint written before recipes were saved).
  public static func savedOptions(in directory: URL) throws -> TrainingOptions? {
    let url = Checkpoint.location(of: directory.appendingPathComponent("checkpoint"))
      .appendingPathComponent("training.json")
    guard FileManager.default.fileExists(atPath: url.path) else { return nil }
    return try TrainingOptions(config: ConfigReader(JSONValue.read(contentsOf: url), file: url.path))
  }

  /// One progress update: a redrawn bar on a terminal, a plain line every `logEvery` steps otherwise.
  func report(loss: Float, rate: Double, elapsed: Double, stepsThisRun: Int, progress: Bool, last: Int) {
    let remaining = Double(last - step) * elapsed / Double(max(1, stepsThisRun))
    if progress {
      let width = 30
      let filled = width * step / max(last, 1)
      let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
      print(
        String(
          format: "\r[%@] step %d/%d  loss %.4f  %.0f tok/s  %@ left", bar, step, last, loss, rate,
          Trainer.duration(remaining)), terminator: "")
      fflush(nil)
    } else if step % options.logEvery == 0 || step == last {
      print(
        String(
          format: "step %d/%d  loss %.4f  %.0f tok/s  %@ left", step, last, loss, rate,
          Trainer.duration(remaining)))
      fflush(nil)  // a pipe or a file is block-buffered: show progress as it happens
    }
  }

  static func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600
      ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
      : String(format: "%d:%02d", s / 60, s % 60)
  }

  /// `loss.svg`: training loss (grey) and validation loss (points) against the step; and
  /// `accuracy.svg`, validation accuracy against the step, when there is one.
  public func plot() throws {
    guard let first = losses.first else { return }
    let all = losses.map(\.loss) + validations.map(\.loss)
    let area = PlotArea(
      x: 56, y: 40, width: 560, height: 280,
      xRange: Double(first.step)...Double(max(losses.last!.step, first.step + 1)),
      yRange: all.min()!...all.max()!)
    var svg = SVGDocument(width: 640, height: 360)
    svg.text("loss (nats): training (grey), validation (red)", x: area.x, y: 18)
    area.drawAxes(in: &svg, xLabel: "step", yLabel: "", format: { String(format: "%.3f", $0) })
    svg.polyline(losses.map { (area.px(Double($0.step)), area.py($0.loss)) }, stroke: "#888")
    for v in validations {
      svg.circle(x: area.px(Double(v.step)), y: area.py(v.loss), radius: 3, fill: "#c33")
    }
    try svg.write(to: directory.appendingPathComponent("loss.svg"))
    if !accuracies.isEmpty {
      try Self.accuracyPlot(accuracies, title: "validation accuracy on the answers")
        .write(to: directory.appendingPathComponent("accuracy.svg"))
    }
  }

  /// Accuracy (0 to 1) against the step: a line through the points, each marked.
  public static func accuracyPlot(_ points: [(step: Int, accuracy: Double)], title: String) -> SVGDocument {
    let steps = points.map(\.step)
    let area = PlotArea(
      x: 56, y: 40, width: 560, height: 280,
      xRange: Double(min(0, steps.min() ?? 0))...Double(max(steps.max() ?? 1, 1)), yRange: 0...1)
    var svg = SVGDocument(width: 640, height: 360)
    svg.text(title, x: area.x, y: 18)
    area.drawAxes(in: &svg, xLabel: "step", yLabel: "", format: { String(format: "%.2f", $0) })
    svg.polyline(points.map { (area.px(Double($0.step)), area.py($0.accuracy)) }, stroke: "#c33")
    for p in points {
      svg.circle(x: area.px(Double(p.step)), y: area.py(p.accuracy), radius: 3, fill: "#c33")
    }
    return svg
  }
}
