import Foundation
import LongConvCommandLine
import LongConvKit

/// `longconv generate`: byte-level text generation from a checkpoint, by FFT recomputation
/// or by a converted (recurrent) model.
enum GenerateCommand {
  static let help = """
    usage: longconv generate --checkpoint DIR [--recurrent DIR [--weights float32|bfloat16]
                             [--max-logit-error E]] --prompt TEXT --tokens N
                             [--temperature T] [--top-k K] [--seed S]

    Continues the prompt (its UTF-8 bytes; the model's vocabulary must be the 256 bytes) by N
    bytes, written to standard output as they are produced. With --recurrent (a directory
    written by `longconv convert` from this checkpoint) the prompt is prefilled once and every
    new byte costs the same whatever the position; without it, the whole prefix goes through
    the model's FFT forward pass again for every new byte. A line of timing goes to standard
    error at the end, and a warning when generation passes an exact conversion's length.

    --weights bfloat16 keeps the recurrent step's matrices in bfloat16: half the bytes a step
    reads, so close to twice as fast where the step is memory-bound, at the price of rounding
    every weight (relative error up to 2^-8). Before generating, the prompt is stepped with both
    formats and the largest logit difference is printed to standard error; with
    --max-logit-error E, generation stops there with an error when that difference exceeds E.

    Sampling: temperature 0 (the default) is greedy (the most likely byte); otherwise a byte is
    drawn from softmax(logits / T), restricted to the K most likely bytes with --top-k, with a
    generator seeded by S (default 0).
    """

  static func run(_ arguments: [String]) throws {
    let command = "generate"
    let args = try Arguments(
      arguments, command: command,
      options: [
        "--checkpoint", "--recurrent", "--prompt", "--tokens", "--temperature", "--top-k", "--seed",
        "--weights",
        "--max-logit-error",
      ])
    if args.wantsHelp {
      print(help)
      return
    }
    let checkpointPath = try args.required("--checkpoint", command: command)
    let prompt = Array(try args.required("--prompt", command: command).utf8).map(Int.init)
    guard !prompt.isEmpty else { throw UsageError(message: "\(command): --prompt must not be empty") }
    guard let tokens = try args.positiveInteger("--tokens", command: command) else {
      throw UsageError(message: "\(command): --tokens is required")
    }
    var temperature = 0.0
    if let text = args.string("--temperature") {
      guard let value = Double(text), value.isFinite, value >= 0 else {
        throw UsageError(message: "\(command): --temperature needs a number >= 0, got '\(text)'")
      }
      temperature = value
    }
    let topK = try args.positiveInteger("--top-k", command: command)
    var seed: UInt64 = 0
    if let text = args.string("--seed") {
      guard let value = UInt64(text) else {
        throw UsageError(message: "\(command): --seed needs a non-negative integer, got '\(text)'")
      }
      seed = value
    }

    var weights = DecodingWeights.float32
    if let name = args.string("--weights") {
      guard let format = DecodingWeights(rawValue: name) else {
        throw UsageError(message: "\(command): --weights must be float32 or bfloat16, got '\(name)'")
      }
      weights = format
    }
    let maxLogitError = try args.number("--max-logit-error", in: 0...Double.greatestFiniteMagnitude)
    if args.string("--recurrent") == nil, args.string("--weights") != nil || maxLogitError != nil {
      throw UsageError(message: "\(command): --weights and --max-logit-error need --recurrent")
    }

    guard let model = try Checkpoint.load(from: URL(fileURLWithPath: checkpointPath)) as? CausalLanguageModel
    else {
      throw UserError(message: "\(checkpointPath): generate needs a causal language model checkpoint")
    }
    guard model.vocabulary == 256 else {
      throw UserError(
        message:
          "\(checkpointPath): generate works on bytes, but the model's vocabulary is \(model.vocabulary), not 256"
      )
    }
    var sampler = TokenSampler(temperature: temperature, topK: topK, seed: seed)
    let output = FileHandle.standardOutput
    func emit(_ token: Int) { output.write(Data([UInt8(token)])) }

    let started = DispatchTime.now().uptimeNanoseconds
    let description: String
    if let recurrentPath = args.string("--recurrent") {
      let recurrent = try RecurrentModelDirectory.load(
        model: model, from: URL(fileURLWithPath: recurrentPath)
      ).usingWeights(weights)
      if weights != .float32 {
        let report = recurrent.weightRoundingReport(tokens: prompt)
        FileHandle.standardError.write(
          Data(
            String(
              format:
                "longconv: %@ weights: logits within %.3g of Float32 weights over the prompt's %d tokens "
                + "(largest |logit| %.3g)\n", weights.rawValue, Double(report.maxLogitDifference),
              report.tokens,
              Double(report.maxLogit)
            ).utf8))
        if let maxLogitError, !(Double(report.maxLogitDifference) <= maxLogitError) {
          throw UserError(
            message:
              "--max-logit-error: \(weights.rawValue) weights moved the logits by \(report.maxLogitDifference) over "
              + "the prompt, more than \(maxLogitError); use --weights float32")
        }
      }
      let mode = try RecurrentModelDirectory.metadata(of: URL(fileURLWithPath: recurrentPath)).mode
      var warned = false
      var state = recurrent.makeState()
      func warnIfPassed() {
        if !warned && recurrent.passedConversionLength(state) {
          warned = true
          FileHandle.standardError.write(
            Data(
              ("\nlongconv: warning: past position \(recurrent.conversionLength), the conversion length: exact "
                + "(ETSC) kernels repeat beyond it, so the output is no longer the model's\n").utf8))
        }
      }
      var logits = try recurrent.prefill(prompt, state: &state)
      warnIfPassed()
      for i in 0..<tokens {
        let token = sampler.sample(logits)
        emit(token)
        if i + 1 < tokens {
          logits = recurrent.step(token, state: &state)
          warnIfPassed()
        }
      }
      description =
        "recurrent \(mode.rawValue), length \(recurrent.conversionLength), state \(recurrent.decodingStateSummary), "
        + "\(weights.rawValue) weights"
    } else {
      var context = prompt
      for i in 0..<tokens {
        let token = sampler.sample(try model.nextTokenLogits(after: context))
        emit(token)
        if i + 1 < tokens { context.append(token) }
      }
      description = "FFT recomputation of the whole prefix per token, context up to \(context.count)"
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
    FileHandle.standardError.write(
      Data(
        String(
          format: "\n%d tokens in %.3f s, %.1f tokens/s (%@; prompt %d bytes)\n", tokens, seconds,
          Double(tokens) / seconds, description, prompt.count
        ).utf8))
  }
}

/// Picks the next token from logits: greedy at temperature 0, else a draw from
/// `softmax(logits / T)` over the `K` largest (all when `K` is `nil`), seeded.
struct TokenSampler {
  let temperature: Double
  let topK: Int?
  var generator: SeededGenerator

  init(temperature: Double, topK: Int?, seed: UInt64) {
    self.temperature = temperature
    self.topK = topK
    generator = SeededGenerator(seed: seed)
  }

  mutating func sample(_ logits: [Float]) -> Int {
    precondition(!logits.isEmpty)
    if temperature == 0 {
      var best = 0
      for i in logits.indices where logits[i] > logits[best] { best = i }
      return best
    }
    var candidates = Array(logits.indices)
    if let topK, topK < logits.count {
      candidates.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
      candidates.removeLast(candidates.count - topK)
    }
    let largest = candidates.map { Double(logits[$0]) }.max()!
    let weights = candidates.map { Foundation.exp((Double(logits[$0]) - largest) / temperature) }
    let total = weights.reduce(0, +)
    var u = Double.random(in: 0..<1, using: &generator) * total
    for (candidate, weight) in zip(candidates, weights) {
      u -= weight
      if u < 0 { return candidate }
    }
    return candidates[weights.lastIndex { $0 > 0 } ?? 0]
  }
}
