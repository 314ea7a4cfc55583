import Foundation
import LongConvCommandLine
import LongConvKit

/// `longconv demo`: what the toolkit can do so far, end to end, in well under a minute.
///
/// 1. Checks the FFT long convolution against the dense Toeplitz product in Double.
/// 2. Builds a language model from a config (a small TNN by default) and trains it on text
///    it generates itself, printing the loss as it falls.
struct Demo {
  var steps = 800
  var threads = ProcessInfo.processInfo.activeProcessorCount
  var seed: UInt64 = 0
  var configPath: String?
  var textPath: String?

  static let help = """
    usage: longconv demo [--steps N] [--threads N] [--seed S] [--config FILE] [--text FILE]

    Checks the long convolution against a dense product, trains a small language model on
    generated text (default 800 steps; --text FILE trains on the first 90% of that file's
    bytes and evaluates on the rest): a TNN unless --config names another model config (for
    example Configs/hyena_lm.json). Then saves, reloads and evaluates a checkpoint, converts
    the model into its exact (ETSC) and compact recurrent forms, generates from each and
    prints one table comparing them with FFT recomputation.
    """

  init(arguments: [String]) throws {
    var i = 0
    func integer(_ name: String) throws -> Int {
      i += 1
      guard i < arguments.count, let v = Int(arguments[i]), v >= 1 else {
        throw UsageError(message: "\(name) needs a positive integer")
      }
      return v
    }
    while i < arguments.count {
      switch arguments[i] {
      case "--steps": steps = try integer("--steps")
      case "--threads": threads = try integer("--threads")
      case "--seed": seed = UInt64(try integer("--seed"))
      case "--config":
        i += 1
        guard i < arguments.count else { throw UsageError(message: "--config needs a file") }
        configPath = arguments[i]
      case "--text":
        i += 1
        guard i < arguments.count else { throw UsageError(message: "--text needs a file") }
        textPath = arguments[i]
      case "-h", "--help":
        print(Demo.help)
        exit(0)
      default: throw UsageError(message: "demo: unknown option '\(arguments[i])'")
      }
      i += 1
    }
  }

  func run() throws {
    ComputeThreads.count = threads
    print("LongConvKit demo (\(threads) threads)\n")
    let model = try buildModel()  // first, so a bad config or text file fails before any work
    let text = try corpus()
    try checkConvolution()
    try train(model, text: text)
  }

  /// The FFT convolution of a random input against the dense product in Double; throws when
  /// the relative error passes 1e-5 (the demo then exits 1, naming the check).
  func checkConvolution() throws {
    var rng = SeededGenerator(seed: seed &+ 1)
    print("long convolution vs dense Toeplitz product (Double):")
    for (direction, length) in [(ConvolutionDirection.causal, 257), (.bidirectional, 100)] {
      let channels = 4
      let x = Tensor.normal([1, length, channels], generator: &rng)
      let t = Tensor.normal([channels, direction == .causal ? length : 2 * length - 1], generator: &rng)
      let y = Tensor.withoutRecording { x.longConvolution(kernel: t, direction: direction) }.scalars
      let (xs, ts) = (x.scalars, t.scalars)
      var maxError = 0.0
      var maxValue = 0.0
      for c in 0..<channels {
        for i in 0..<length {
          var sum = 0.0
          for j in 0..<length {
            let k = i - j
            if direction == .causal && k < 0 { continue }
            let column = direction == .causal ? k : k + length - 1
            sum += Double(ts[c * t.shape[1] + column]) * Double(xs[j * channels + c])
          }
          maxError = max(maxError, abs(sum - Double(y[i * channels + c])))
          maxValue = max(maxValue, abs(sum))
        }
      }
      print(
        String(
          format: "  %-13@ L = %4d   max relative error %.1e", direction.rawValue, length, maxError / maxValue
        ))
      guard maxError / maxValue <= 1e-5 else {
        throw UserError(
          message: String(
            format: "demo check failed: %@ convolution error %.1e above 1e-5", direction.rawValue,
            maxError / maxValue))
      }
    }
    print("")
  }

  /// The model the demo trains unless `--config` names another: a small TNN language model.
  static let defaultConfig = """
    {"model": "causal_lm", "vocab_size": 256, "dim": 32, "num_layers": 2, "max_length": 128,
     "layers": {"norm": "simple_rms_norm", "prenorm": true,
                "mixer": {"type": "gtu", "expand_ratio": 2,
                          "kernel": {"type": "tnn", "rpe_width": 16, "rpe_layers": 1, "gamma": 0.99}},
                "channel_mixer": {"type": "glu"}}}
    """

  /// The language model of `--config`, or of the built-in config.
  func buildModel() throws -> CausalLanguageModel {
    let built: any SequenceModel
    if let configPath {
      built = try ModelBuilder.build(contentsOf: URL(fileURLWithPath: configPath))
    } else {
      built = try ModelBuilder.build(
        JSONValue.parse(Data(Demo.defaultConfig.utf8), source: "built-in demo config"))
    }
    guard let model = built as? CausalLanguageModel else {
      throw UserError(message: "\(configPath ?? "config"): the demo trains a causal_lm model")
    }
    return model
  }

  /// Training and unseen bytes: the `--text` file split 90/10, or generated text.
  func corpus() throws -> (training: [Int], unseen: [Int]) {
    guard let textPath else {
      return (
        Demo.generatedText(bytes: 200_000, seed: seed), Demo.generatedText(bytes: 20_000, seed: seed &+ 1000)
      )
    }
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: textPath))
    } catch {
      throw UserError(message: "\(textPath): cannot read the file (\(error.localizedDescription))")
    }
    let bytes = data.map(Int.init)
    let split = bytes.count * 9 / 10
    guard split > 2 * Demo.length + 2, bytes.count - split > Demo.length + 1 else {
      throw UserError(
        message: "\(textPath): \(bytes.count) bytes is too short (needs at least \(30 * Demo.length) bytes)")
    }
    return (Array(bytes[..<split]), Array(bytes[split...]))
  }

  /// Training window.
  static let length = 128

  /// Trains `model` on the corpus, printing the loss as it falls.
  func train(_ model: CausalLanguageModel, text corpus: (training: [Int], unseen: [Int])) throws {
    let (length, batch) = (Demo.length, 8)
    let text = corpus.training
    var rng = SeededGenerator(seed: seed &+ 2)
    let optimizer = AdamW(
      groups: defaultGroups(for: model, weightDecay: 0), learningRate: 3e-3, beta1: 0.9, beta2: 0.99)

    func loss(at starts: [Int]) throws -> Tensor {
      let inputs = starts.flatMap { text[$0..<$0 + length] }
      let targets = starts.flatMap { text[$0 + 1..<$0 + length + 1] }
      return try model.loss(inputs: inputs, targets: targets, batch: batch, length: length)
    }

    let mixer = model.blocks.first.map { String(describing: type(of: $0.mixer)) } ?? "none"
    print(
      "training \(mixer) language model: \(model.blocks.count) layers, \(model.parameterCount) parameters")
    print("  step   loss (nats)   bits/byte")
    let started = Date()
    var validation: [Int] = []
    for _ in 0..<batch { validation.append(Int(rng.next() % UInt64(text.count - length - 1))) }
    let initial = try Tensor.withoutRecording { try loss(at: validation).scalar }
    print(String(format: "  %4d   %11.3f   %9.3f   (held-out windows)", 0, initial, initial / log(2)))
    for step in 1...steps {
      let starts = (0..<batch).map { _ in Int(rng.next() % UInt64(text.count - length - 1)) }
      let l = try loss(at: starts)
      l.backward()
      optimizer.step()
      optimizer.zeroGradients()
      if step % max(1, steps / 6) == 0 || step == steps {
        print(String(format: "  %4d   %11.3f   %9.3f", step, l.scalar, l.scalar / log(2)))
      }
    }
    let seconds = Date().timeIntervalSince(started)
    let final = try Tensor.withoutRecording { try loss(at: validation).scalar }
    print(
      String(format: "  held-out loss: %.3f -> %.3f nats (uniform guess: %.3f)", initial, final, log(256.0)))
    print(String(format: "  %.1f s, %.0f tokens/s", seconds, Double(steps * batch * length) / seconds))

    // Through a checkpoint: save, reload, and evaluate on text the model has not seen.
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("longconv-demo-\(ProcessInfo.processInfo.processIdentifier)")
    defer { try? FileManager.default.removeItem(at: directory) }
    try Checkpoint.save(model, to: directory)
    guard let reloaded = try Checkpoint.load(from: directory) as? CausalLanguageModel else {
      throw UserError(message: "\(directory.path): the reloaded checkpoint is not a language model")
    }
    let unseen = corpus.unseen
    let evaluation = try reloaded.evaluate(tokens: unseen, length: length)
    print(
      String(
        format:
          "\ncheckpoint saved and reloaded; on unseen text: %.3f nats, %.3f bits/byte over %d predictions",
        evaluation.lossNats, evaluation.bitsPerByte, evaluation.tokens))
    try compareRecurrentForms(reloaded, prompt: Array(unseen[0..<32]))
  }

  /// Deterministic text: sentences drawn from a small grammar, so there is structure to learn.
  static func generatedText(bytes: Int, seed: UInt64) -> [Int] {
    let subjects = [
      "the cat", "a dog", "the long kernel", "my model", "the toeplitz matrix", "a state", "every token",
      "the decay", "our filter", "a recurrence", "the spectrum", "this layer",
    ]
    let verbs = [
      "sees", "learns", "decays into", "convolves", "remembers", "predicts", "forgets", "mixes", "follows",
      "extends", "filters", "echoes",
    ]
    let adjectives = ["", "", "long ", "quiet ", "causal ", "hidden ", "distant ", "first "]
    let objects = [
      "sequence", "token", "lag", "past", "signal", "recurrence", "position", "channel", "state", "window",
    ]
    var rng = SeededGenerator(seed: seed &+ 3)
    var out: [Int] = []
    out.reserveCapacity(bytes + 64)
    func pick(_ words: [String]) -> String { words[Int(rng.next() % UInt64(words.count))] }
    while out.count < bytes {
      let sentence = "\(pick(subjects)) \(pick(verbs)) the \(pick(adjectives))\(pick(objects)). "
      out.append(contentsOf: sentence.utf8.map(Int.init))
    }
    return out
  }
}
