// associative-recall: one model, three long-convolution kernels, one in-context recall task.
//
// Each row is key-value pairs followed by a query key (`k1 v1 k2 v2 ... kP vP q`); the model
// must answer with the value paired with `q`. The loss is taken only at that last position:
// its logits are cut out of `[B, L, vocab]` with `slice` and scored with `crossEntropy`.
//
// The same causal language model (dim 64, 2 layers, a GTU token mixer) is trained with a TNN,
// a Hyena and an S4D kernel: the three configs differ only in the GTU's `kernel` object. The
// table reports each kernel's parameter count, its accuracy on held-out rows before and after
// training (chance is 1 / values), and the training time. Few steps on a tiny model: the point
// is the comparison and the recipe, not a solved task, and the numbers are printed as measured.
//
//   swift run -c release associative-recall [--steps N] [--length N] [--keys N] [--batch N]
//                                           [--lr X] [--kernels tnn,hyena,s4d] [--seed S]
//                                           [--threads N]
//
// Defaults: 1500 steps of batch 32 per kernel, length 32 (15 pairs), 16 keys and 16 values,
// lr 3e-3; held-out accuracy over 1024 rows from another seed. About 2 minutes on two cores.
import Foundation
import LongConvKit

struct Options {
  var steps = 1500
  var length = 32
  var keys = 16
  var batch = 32
  var learningRate: Float = 3e-3
  var kernels = ["tnn", "hyena", "s4d"]
  var seed: UInt64 = 0
  var threads = ProcessInfo.processInfo.activeProcessorCount
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("associative-recall: \(message)\n".utf8))
  exit(2)
}

func parse(_ arguments: [String]) -> Options {
  var o = Options()
  var i = 0
  func value(_ name: String) -> String {
    i += 1
    guard i < arguments.count else { fail("\(name) needs a value") }
    return arguments[i]
  }
  func positive(_ name: String, minimum: Int = 1) -> Int {
    guard let v = Int(value(name)), v >= minimum else { fail("\(name) needs an integer >= \(minimum)") }
    return v
  }
  while i < arguments.count {
    switch arguments[i] {
    case "--steps": o.steps = positive("--steps")
    case "--length": o.length = positive("--length", minimum: 3)
    case "--keys": o.keys = positive("--keys", minimum: 2)
    case "--batch": o.batch = positive("--batch")
    case "--lr":
      guard let v = Float(value("--lr")), v > 0, v.isFinite else { fail("--lr needs a positive number") }
      o.learningRate = v
    case "--kernels":
      o.kernels = value("--kernels").split(separator: ",").map(String.init)
      for k in o.kernels where kernelConfigs[k] == nil {
        fail("--kernels: unknown kernel '\(k)' (choose from tnn, hyena, s4d)")
      }
      if o.kernels.isEmpty { fail("--kernels needs at least one kernel") }
    case "--seed":
      guard let v = UInt64(value("--seed")) else { fail("--seed needs a non-negative integer") }
      o.seed = v
    case "--threads": o.threads = positive("--threads")
    case "-h", "--help":
      print(
        "usage: associative-recall [--steps N] [--length N] [--keys N] [--batch N] [--lr X] "
          + "[--kernels tnn,hyena,s4d] [--seed S] [--threads N]")
      exit(0)
    default: fail("unknown option '\(arguments[i])' (try --help)")
    }
    i += 1
  }
  return o
}

/// The GTU's kernel object for each kernel; everything else in the config is shared.
let kernelConfigs = [
  "tnn": #"{"type": "tnn", "rpe_width": 32, "rpe_layers": 1, "gamma": 0.99}"#,
  "hyena": #"{"type": "hyena", "emb_dim": 9, "filter_width": 32, "num_inner_layers": 1}"#,
  "s4d": #"{"type": "s4d", "state_size": 32}"#,
]

func config(kernel: String, vocabulary: Int, length: Int, seed: UInt64) -> String {
  """
  {"model": "causal_lm", "vocab_size": \(vocabulary), "dim": 64, "num_layers": 2, "max_length": \(length),
   "seed": \(seed),
   "layers": {"norm": "simple_rms_norm", "prenorm": true,
              "mixer": {"type": "gtu", "expand_ratio": 2, "kernel": \(kernelConfigs[kernel]!)},
              "channel_mixer": {"type": "glu"}}}
  """
}

/// Logits `[B, vocabulary]` at the last (scored) position of each row.
func lastLogits(_ model: CausalLanguageModel, _ batch: MaskedSequenceBatch) throws -> Tensor {
  let (b, l) = (batch.size, batch.length)
  return try model.logits(batch.inputs, batch: b, length: l).slice(axis: 1, l - 1..<l)
    .reshaped([b, model.vocabulary])
}

/// The answers: the targets at the last position of each row (the only scored one).
func answers(_ batch: MaskedSequenceBatch) -> [Int] {
  (0..<batch.size).map { b in
    precondition(
      batch.scoredPositions[b] == [batch.length - 1], "associative recall scores the last position")
    return batch.targets[b * batch.length + batch.length - 1]
  }
}

/// The fraction of rows whose highest logit is the right value.
func accuracy(_ model: CausalLanguageModel, on batches: [MaskedSequenceBatch]) throws -> Double {
  var right = 0
  var total = 0
  for batch in batches {
    let logits = try Tensor.withoutRecording { try lastLogits(model, batch) }.scalars
    let v = model.vocabulary
    for (b, answer) in answers(batch).enumerated() {
      let row = Array(logits[b * v..<(b + 1) * v])
      if row.indices.max(by: { row[$0] < row[$1] }) == answer { right += 1 }
      total += 1
    }
  }
  return Double(right) / Double(total)
}

func run(_ options: Options) throws {
  ComputeThreads.count = options.threads
  var heldOutTask = try AssociativeRecall(
    seed: options.seed &+ 1000, keyCount: options.keys, valueCount: options.keys)
  let heldOut = try (0..<16).map { _ in try heldOutTask.batch(size: 64, length: options.length) }
  let pairs = (options.length - 1) / 2
  print(
    "associative recall: length \(options.length) (\(pairs) pairs, then the query), \(options.keys) keys, "
      + "\(options.keys) values; chance accuracy \(String(format: "%.3f", 1 / Double(options.keys)))")
  print(
    "training \(options.steps) steps of batch \(options.batch) per kernel; accuracy on "
      + "\(heldOut.count * 64) held-out rows\n")

  var rows: [String] = []
  for kernel in options.kernels {
    var task = try AssociativeRecall(seed: options.seed, keyCount: options.keys, valueCount: options.keys)
    let json = config(
      kernel: kernel, vocabulary: task.vocabularySize, length: options.length, seed: options.seed)
    guard
      let model = try ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "\(kernel) config"))
        as? CausalLanguageModel
    else { fail("the \(kernel) config does not describe a causal_lm") }
    let optimizer = AdamW(
      groups: defaultGroups(for: model, weightDecay: 0.01), learningRate: options.learningRate)
    let schedule = WarmupCosine(
      peak: options.learningRate, warmupSteps: max(1, options.steps / 10), totalSteps: options.steps)
    let before = try accuracy(model, on: heldOut)
    print("\(kernel): \(model.parameterCount) parameters; step, training loss (mean of the last steps)")
    let started = Date()
    var running = 0.0
    var count = 0
    var line = ""
    for step in 1...options.steps {
      optimizer.learningRate = schedule.rate(at: step)
      let batch = try task.batch(size: options.batch, length: options.length)
      let loss = try lastLogits(model, batch).crossEntropy(targets: answers(batch))
      loss.backward()
      _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
      optimizer.step()
      optimizer.zeroGradients()
      running += Double(loss.scalar)
      count += 1
      if step * 6 / options.steps != (step - 1) * 6 / options.steps {
        line += String(format: "  %d: %.3f", step, running / Double(count))
        running = 0
        count = 0
      }
    }
    let seconds = Date().timeIntervalSince(started)
    print(line)
    let after = try accuracy(model, on: heldOut)
    print(String(format: "  held-out accuracy %.3f -> %.3f in %.1f s\n", before, after, seconds))
    rows.append(
      kernel.padding(toLength: 7, withPad: " ", startingAt: 0)
        + String(
          format: "%10d   %15.3f   %14.3f   %7.1f", model.parameterCount, before, after, seconds))
  }
  print("kernel  parameters   accuracy before   accuracy after   seconds")
  for row in rows { print(row) }
  print(String(format: "(chance: %.3f)", 1 / Double(options.keys)))
}

do {
  try run(parse(Array(CommandLine.arguments.dropFirst())))
} catch {
  FileHandle.standardError.write(Data("associative-recall: \(error)\n".utf8))
  exit(1)
}
