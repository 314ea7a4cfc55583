// listops: a bidirectional long-convolution encoder classifying ListOps expressions.
//
// ListOps (Long Range Arena) rows are nested operations over digits, such as
// `[MAX 4 [MIN 7 2 ] 9 ]`, padded to a fixed length; the label is the value, 0...9. The model
// is a `"classifier"` config: a bidirectional encoder (dim 64, 2 layers, a GTU token mixer
// with a TNN kernel) whose mean-pooled output feeds a 10-way linear head. It is trained with
// AdamW, warmup-cosine and gradient clipping, and the program prints the held-out accuracy
// before and after training next to the majority-class baseline (always answering the most
// frequent label of the training rows), plus the training loss as it falls.
//
//   swift run -c release listops [--steps N] [--length N] [--depth N] [--leaf P] [--batch N]
//                                [--lr X] [--seed S] [--threads N]
//
// Defaults: 1500 steps of batch 32, length 128, nesting depth at most 3 with 2 to 6 arguments
// per operation, each argument a digit with probability --leaf 0.5 (else a nested operation
// while depth and length allow), so expressions fit in 128 tokens; lr 3e-3; 2048 held-out
// rows from another seed. About 1.5 minutes on two cores. The full LRA task (depth 10, length 2000) takes far longer to learn.
import Foundation
import LongConvCommandLine
import LongConvKit

struct Options {
  var steps = 1500
  var length = 128
  var depth = 3
  var leaf = 0.5
  var batch = 32
  var learningRate: Float = 3e-3
  var seed: UInt64 = 0
  var threads = ProcessInfo.processInfo.activeProcessorCount
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("listops: \(message)\n".utf8))
  exit(2)
}

func parse(_ arguments: [String]) -> Options {
  do {
    let a = try Arguments(
      arguments, command: "listops",
      options: ["--steps", "--length", "--depth", "--batch", "--leaf", "--lr", "--seed", "--threads"])
    if a.wantsHelp {
      print(
        "usage: listops [--steps N] [--length N] [--depth N] [--leaf P] [--batch N] [--lr X] [--seed S] [--threads N]"
      )
      exit(0)
    }
    var o = Options()
    o.steps = try a.positiveInteger("--steps") ?? o.steps
    o.length = try a.integer("--length", minimum: 8) ?? o.length
    o.depth = try a.positiveInteger("--depth") ?? o.depth
    o.batch = try a.positiveInteger("--batch") ?? o.batch
    o.leaf = try a.number("--leaf", in: 0...1) ?? o.leaf
    o.learningRate = Float(
      try a.number("--lr", in: Double.leastNonzeroMagnitude...1e3) ?? Double(o.learningRate))
    o.seed = UInt64(try a.nonNegativeInteger("--seed") ?? Int(o.seed))
    o.threads = try a.positiveInteger("--threads") ?? o.threads
    return o
  } catch {
    FileHandle.standardError.write(Data("\(error) (try --help)\n".utf8))
    exit(2)
  }
}

func config(length: Int, seed: UInt64) -> String {
  """
  {"model": "classifier", "vocab_size": \(ListOps.vocabularySize), "num_classes": \(ListOps.classCount),
   "dim": 64, "num_layers": 2, "max_length": \(length), "seed": \(seed),
   "layers": {"norm": "simple_rms_norm", "prenorm": true,
              "mixer": {"type": "gtu", "expand_ratio": 2,
                        "kernel": {"type": "tnn", "rpe_width": 32, "rpe_layers": 1, "gamma": 0.99}},
              "channel_mixer": {"type": "glu"}}}
  """
}

/// The fraction of rows whose highest logit is the label.
func accuracy(_ model: SequenceClassifier, on batches: [ListOps.Batch]) throws -> Double {
  var right = 0
  var total = 0
  for batch in batches {
    let logits = try Tensor.withoutRecording {
      try model.logits(batch.inputs, batch: batch.size, length: batch.length)
    }.scalars
    let classes = ListOps.classCount
    for (b, label) in batch.labels.enumerated() {
      let row = Array(logits[b * classes..<(b + 1) * classes])
      if row.indices.max(by: { row[$0] < row[$1] }) == label { right += 1 }
      total += 1
    }
  }
  return Double(right) / Double(total)
}

/// A token sequence as text: `[MAX 4 [MIN 7 2 ] 9 ]`.
func render(_ tokens: ArraySlice<Int>) -> String {
  tokens.map { t -> String in
    switch t {
    case ListOps.Token.min: return "[MIN"
    case ListOps.Token.max: return "[MAX"
    case ListOps.Token.median: return "[MED"
    case ListOps.Token.sumMod: return "[SUM_MOD"
    case ListOps.Token.open: return ""
    case ListOps.Token.close: return "]"
    default: return String(t)
    }
  }.filter { !$0.isEmpty }.joined(separator: " ")
}

func run(_ options: Options) throws {
  ComputeThreads.count = options.threads
  var task = try ListOps(
    seed: options.seed, maxDepth: options.depth, minArity: 2, maxArity: 6, leafProbability: options.leaf)
  var heldOutTask = try ListOps(
    seed: options.seed &+ 1000, maxDepth: options.depth, minArity: 2, maxArity: 6,
    leafProbability: options.leaf)
  let heldOut = try (0..<32).map { _ in try heldOutTask.batch(size: 64, length: options.length) }

  // The majority-class baseline: the most frequent label of 4096 training rows, scored on held-out rows.
  var counter = try ListOps(
    seed: options.seed &+ 2000, maxDepth: options.depth, minArity: 2, maxArity: 6,
    leafProbability: options.leaf)
  var counts = [Int](repeating: 0, count: ListOps.classCount)
  for _ in 0..<64 {
    for label in try counter.batch(size: 64, length: options.length).labels { counts[label] += 1 }
  }
  let majority = counts.indices.max { counts[$0] < counts[$1] }!
  let heldOutLabels = heldOut.flatMap(\.labels)
  let baseline = Double(heldOutLabels.filter { $0 == majority }.count) / Double(heldOutLabels.count)
  let meanLength = Double(heldOut.flatMap(\.lengths).reduce(0, +)) / Double(heldOutLabels.count)

  let example = heldOut[0]
  print(
    "ListOps: depth <= \(options.depth), 2-6 arguments, padded to \(options.length) tokens "
      + String(format: "(mean expression %.1f tokens); for example", meanLength))
  print("  \(render(example.inputs[0..<example.lengths[0]])) = \(example.labels[0])")
  print(
    String(
      format: "majority-class baseline: always %d, right on %.3f of %d held-out rows", majority, baseline,
      heldOutLabels.count))

  guard
    let model = try ModelBuilder.build(
      JSONValue.parse(Data(config(length: options.length, seed: options.seed).utf8), source: "listops config")
    )
      as? SequenceClassifier
  else { fail("the config does not describe a classifier") }
  print(
    "model: bidirectional TNN encoder, dim 64, \(model.blocks.count) layers, \(model.parameterCount) parameters"
  )
  let before = try accuracy(model, on: heldOut)
  print(String(format: "held-out accuracy before training: %.3f", before))

  let optimizer = AdamW(
    groups: defaultGroups(for: model, weightDecay: 0.01), learningRate: options.learningRate)
  let schedule = WarmupCosine(
    peak: options.learningRate, warmupSteps: max(1, options.steps / 10), totalSteps: options.steps)
  print("  step   train loss   train accuracy (mean since last line)")
  let started = Date()
  var (lossSum, right, seen) = (0.0, 0, 0)
  for step in 1...options.steps {
    optimizer.learningRate = schedule.rate(at: step)
    let batch = try task.batch(size: options.batch, length: options.length)
    let logits = try model.logits(batch.inputs, batch: batch.size, length: batch.length)
    let loss = logits.crossEntropy(targets: batch.labels)
    loss.backward()
    _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
    optimizer.step()
    optimizer.zeroGradients()
    let scores = logits.scalars
    for (b, label) in batch.labels.enumerated() {
      let row = Array(scores[b * ListOps.classCount..<(b + 1) * ListOps.classCount])
      if row.indices.max(by: { row[$0] < row[$1] }) == label { right += 1 }
    }
    lossSum += Double(loss.scalar)
    seen += 1
    if step * 8 / options.steps != (step - 1) * 8 / options.steps {
      print(
        String(
          format: "  %4d   %10.3f   %14.3f", step, lossSum / Double(seen),
          Double(right) / Double(seen * options.batch)))
      (lossSum, right, seen) = (0, 0, 0)
    }
  }
  let seconds = Date().timeIntervalSince(started)
  let after = try accuracy(model, on: heldOut)
  print(String(format: "trained %d steps in %.1f s", options.steps, seconds))
  print(
    String(
      format:
        "held-out accuracy: %.3f before, %.3f after training; majority-class baseline %.3f, chance 0.100",
      before, after, baseline))
}

do {
  try run(parse(Array(CommandLine.arguments.dropFirst())))
} catch {
  FileHandle.standardError.write(Data("listops: \(error)\n".utf8))
  exit(1)
}
