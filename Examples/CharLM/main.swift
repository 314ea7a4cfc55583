// char-lm: a character (byte) language model trained on a text file.
//
// Builds a small TNN language model from a JSON config (a GTU mixer with a TNN kernel,
// dim 64, 2 layers, context 128), trains it with AdamW, a warmup-cosine schedule and gradient
// clipping on random windows of the training split, and prints
//   - the training loss as it falls,
//   - the validation loss in nats and bits per byte, before and after training
//     (on the first --eval-bytes bytes of the validation split: the last 10% of the file),
//   - a continuation of --prompt, sampled one byte at a time by recomputing the logits over
//     the growing text (the last 128 bytes of it).
//
// Data: --text FILE, else the shipped Examples/Data/tinyshakespeare.txt (found from the package
// root, else from the working directory), else generated sentences (a small grammar, so there
// is structure).
//
//   swift run -c release char-lm [--text FILE] [--steps N] [--batch N] [--lr X] [--seed S]
//                                [--prompt TEXT] [--sample-length N] [--temperature T]
//                                [--eval-bytes N] [--threads N]
//
// Defaults: 1500 steps of batch 16, lr 3e-3, temperature 0.8 (0 = greedy), 200 sampled bytes,
// 32768 evaluation bytes. A run takes about a minute on two idle cores.
import Foundation
import LongConvCommandLine
import LongConvKit

struct Options {
  var text: String?
  var steps = 1500
  var batch = 16
  var learningRate: Float = 3e-3
  var seed: UInt64 = 0
  var prompt = "ROMEO:\n"
  var sampleLength = 200
  var temperature: Float = 0.8
  var evalBytes = 32768
  var threads = ProcessInfo.processInfo.activeProcessorCount
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("char-lm: \(message)\n".utf8))
  exit(2)
}

func parse(_ arguments: [String]) -> Options {
  do {
    let a = try Arguments(
      arguments, command: "char-lm",
      options: [
        "--text", "--steps", "--batch", "--lr", "--seed", "--prompt", "--sample-length", "--temperature",
        "--eval-bytes", "--threads",
      ])
    if a.wantsHelp {
      print(
        "usage: char-lm [--text FILE] [--steps N] [--batch N] [--lr X] [--seed S] [--prompt TEXT] "
          + "[--sample-length N] [--temperature T] [--eval-bytes N] [--threads N]")
      exit(0)
    }
    var o = Options()
    o.text = a.string("--text")
    o.steps = try a.positiveInteger("--steps") ?? o.steps
    o.batch = try a.positiveInteger("--batch") ?? o.batch
    o.learningRate = Float(try a.number("--lr", in: 0...1e3) ?? Double(o.learningRate))
    o.seed = UInt64(try a.nonNegativeInteger("--seed") ?? Int(o.seed))
    o.prompt = a.string("--prompt") ?? o.prompt
    o.sampleLength = try a.positiveInteger("--sample-length") ?? o.sampleLength
    o.temperature = Float(try a.number("--temperature", in: 0...1e3) ?? Double(o.temperature))
    o.evalBytes = try a.positiveInteger("--eval-bytes") ?? o.evalBytes
    o.threads = try a.positiveInteger("--threads") ?? o.threads
    return o
  } catch {
    FileHandle.standardError.write(Data("\(error) (try --help)\n".utf8))
    exit(2)
  }
}

let length = 128
let config = """
  {"model": "causal_lm", "vocab_size": 256, "dim": 64, "num_layers": 2, "max_length": \(length),
   "layers": {"norm": "simple_rms_norm", "prenorm": true,
              "mixer": {"type": "gtu", "expand_ratio": 2,
                        "kernel": {"type": "tnn", "rpe_width": 32, "rpe_layers": 1, "gamma": 0.99}},
              "channel_mixer": {"type": "glu"}}}
  """

/// The text file to train on: `--text`, else the shipped tinyshakespeare if found, else `nil`.
func textFile(_ options: Options) -> URL? {
  if let text = options.text { return URL(fileURLWithPath: text) }
  // #filePath is <package>/Examples/CharLM/main.swift; the corpus is <package>/Examples/Data.
  let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  let shipped = "Examples/Data/tinyshakespeare.txt"
  let candidates = [
    packageRoot.appendingPathComponent(shipped).standardized,
    URL(fileURLWithPath: shipped).standardized,
  ]
  return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
}

/// Sentences from a small grammar, when no text file is available.
func generatedText(bytes: Int, seed: UInt64) -> [UInt8] {
  let subjects = ["the cat", "a dog", "the kernel", "my model", "every token", "the filter", "this layer"]
  let verbs = ["sees", "learns", "convolves", "remembers", "predicts", "forgets", "mixes", "echoes"]
  let objects = ["the sequence", "a token", "the past", "the signal", "a position", "the window"]
  var rng = SeededGenerator(seed: seed)
  var out: [UInt8] = []
  while out.count < bytes {
    let s = "\(subjects.randomElement(using: &rng)!) \(verbs.randomElement(using: &rng)!) "
    out.append(contentsOf: (s + "\(objects.randomElement(using: &rng)!). ").utf8)
  }
  return out
}

/// `count` bytes continuing `prompt`, each drawn from the softmax of the last position's logits
/// divided by `temperature` (the most likely byte when it is 0), the model reading the last
/// `length` bytes of the text so far.
func sample(
  _ model: CausalLanguageModel, prompt: [Int], count: Int, temperature: Float,
  generator: inout SeededGenerator
) throws -> [Int] {
  var text = prompt
  for _ in 0..<count {
    let window = Array(text.suffix(length))
    let logits = try Tensor.withoutRecording {
      try model.logits(window, batch: 1, length: window.count).slice(axis: 1, window.count - 1..<window.count)
    }.scalars
    var next = logits.indices.max { logits[$0] < logits[$1] }!
    if temperature > 0 {
      let top = logits[next]
      let weights = logits.map { Double(exp(($0 - top) / temperature)) }
      var u = Double.random(in: 0..<weights.reduce(0, +), using: &generator)
      for (i, w) in weights.enumerated() {
        u -= w
        if u < 0 {
          next = i
          break
        }
      }
    }
    text.append(next)
  }
  return Array(text[prompt.count...])
}

func printable(_ tokens: [Int]) -> String {
  String(decoding: tokens.map { UInt8($0) }, as: UTF8.self)
}

func run(_ options: Options) throws {
  ComputeThreads.count = options.threads
  let dataset: TextDataset
  if let url = textFile(options) {
    dataset = try TextDataset(contentsOf: url)
  } else {
    print("(no --text and no tinyshakespeare.txt found: training on generated sentences)")
    dataset = try TextDataset(bytes: generatedText(bytes: 300_000, seed: options.seed), source: "generated")
  }
  print(
    "text: \(dataset.source), \(dataset.train.count) training bytes, \(dataset.validation.count) validation bytes"
  )
  let evalTokens = dataset.validation.prefix(options.evalBytes).map(Int.init)
  guard evalTokens.count > 1 else { fail("the validation split is too short to evaluate") }

  guard
    let model = try ModelBuilder.build(JSONValue.parse(Data(config.utf8), source: "char-lm config"))
      as? CausalLanguageModel
  else { fail("the config does not describe a causal_lm") }
  print(
    "model: TNN language model, dim 64, \(model.blocks.count) layers, context \(length), "
      + "\(model.parameterCount) parameters")

  let optimizer = AdamW(
    groups: defaultGroups(for: model, weightDecay: 0.01), learningRate: options.learningRate)
  let schedule = WarmupCosine(
    peak: options.learningRate, warmupSteps: max(1, options.steps / 10), totalSteps: options.steps)
  var rng = SeededGenerator(seed: options.seed &+ 1)

  let before = try model.evaluate(tokens: evalTokens, length: length)
  print(
    String(
      format: "validation before training: %.3f nats, %.3f bits/byte (uniform over 256 bytes: %.3f, 8 bits)",
      before.lossNats, before.bitsPerByte, log(256.0)))

  print("  step   train loss (nats, mean since last line)   lr")
  let started = Date()
  var running = 0.0
  var runningCount = 0
  for step in 1...options.steps {
    optimizer.learningRate = schedule.rate(at: step)
    let (inputs, targets) = try dataset.randomBatch(batch: options.batch, length: length, generator: &rng)
    let loss = try model.loss(inputs: inputs, targets: targets, batch: options.batch, length: length)
    loss.backward()
    _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
    optimizer.step()
    optimizer.zeroGradients()
    running += Double(loss.scalar)
    runningCount += 1
    if step * 8 / options.steps != (step - 1) * 8 / options.steps {
      print(
        String(
          format: "  %4d   %6.3f                                    %.2e", step,
          running / Double(runningCount),
          optimizer.learningRate))
      running = 0
      runningCount = 0
    }
  }
  let seconds = Date().timeIntervalSince(started)
  print(
    String(
      format: "trained %d steps in %.1f s (%.0f tokens/s)", options.steps, seconds,
      Double(options.steps * options.batch * length) / seconds))

  let after = try model.evaluate(tokens: evalTokens, length: length)
  print(
    String(
      format:
        "validation after training:  %.3f nats, %.3f bits/byte (before: %.3f bits/byte; %d predictions)",
      after.lossNats, after.bitsPerByte, before.bitsPerByte, after.tokens))

  let prompt = Array(options.prompt.utf8).map(Int.init)
  guard !prompt.isEmpty else { fail("--prompt must not be empty") }
  let continuation = try sample(
    model, prompt: prompt, count: options.sampleLength, temperature: options.temperature, generator: &rng)
  let how = options.temperature > 0 ? "sampled at temperature \(options.temperature)" : "greedy"
  print("\ncontinuation of the prompt (\(how)):\n---\n\(options.prompt)\(printable(continuation))\n---")
}

do {
  try run(parse(Array(CommandLine.arguments.dropFirst())))
} catch {
  FileHandle.standardError.write(Data("char-lm: \(error)\n".utf8))
  exit(1)
}
