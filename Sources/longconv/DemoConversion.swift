import Foundation
import LongConvKit

/// The demo's last part: the trained model converted into its two recurrent forms, text
/// generated from each, and one table comparing them with FFT recomputation.
extension Demo {
  /// Greedy generation of `count` tokens after `prompt` with FFT recomputation of the whole
  /// prefix per token; returns the tokens and every step's logits.
  static func generateByRecomputation(_ model: CausalLanguageModel, prompt: [Int], count: Int) throws
    -> (tokens: [Int], logits: [[Float]])
  {
    var tokens = prompt
    var logits: [[Float]] = []
    for _ in 0..<count {
      logits.append(try model.nextTokenLogits(after: tokens))
      tokens.append(argmax(logits.last!))
    }
    return (tokens, logits)
  }

  /// The same with a recurrent model: prefill the prompt, then one step per token.
  static func generateRecurrently(_ model: RecurrentLanguageModel, prompt: [Int], count: Int) throws
    -> (tokens: [Int], logits: [[Float]])
  {
    var state = model.makeState()
    var tokens = prompt
    var logits = [try model.prefill(prompt, state: &state)]
    tokens.append(argmax(logits[0]))
    while tokens.count < prompt.count + count {
      logits.append(model.step(tokens.last!, state: &state))
      tokens.append(argmax(logits.last!))
    }
    return (tokens, logits)
  }

  static func argmax(_ values: [Float]) -> Int { values.indices.max { values[$0] < values[$1] }! }

  /// Converts `model` exactly and compactly, generates from each and prints the table.
  func compareRecurrentForms(_ model: CausalLanguageModel, prompt: [Int]) throws {
    let count = 160
    let length = prompt.count + count
    print("\nconstant-time generation: the model converted at length \(length)")

    var started = Date()
    let exact = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: length)
    let exactSeconds = Date().timeIntervalSince(started)
    started = Date()
    let tolerance = 1e-4
    let compact = try RecurrentLanguageModel(
      model: model, converter: CompactConverter(tolerance: tolerance), length: length)
    let compactSeconds = Date().timeIntervalSince(started)
    for (name, recurrent) in [("exact", exact), ("compact", compact)] {
      for report in recurrent.reports {
        print(
          String(
            format:
              "  %-7@ %@: %d states/channel at most (%d in all), kernel error %.1e (certified bound %.1e)",
            name, report.kernel, report.maxStates, report.totalStates, report.relativeError, report.errorBound
          ))
      }
    }
    print(String(format: "  conversion: exact %.2f s, compact %.2f s", exactSeconds, compactSeconds))

    func timed(_ body: () throws -> (tokens: [Int], logits: [[Float]])) rethrows -> (
      tokens: [Int], logits: [[Float]], seconds: Double
    ) {
      let start = Date()
      let result = try body()
      return (result.tokens, result.logits, Date().timeIntervalSince(start))
    }
    let fft = try timed { try Demo.generateByRecomputation(model, prompt: prompt, count: count) }
    let rows = [
      ("FFT recomputation", "the whole prefix", fft),
      (
        "exact (ETSC)", exact.decodingStateSummary,
        try timed {
          try Demo.generateRecurrently(exact, prompt: prompt, count: count)
        }
      ),
      (
        "compact (tol \(tolerance))", compact.decodingStateSummary,
        try timed {
          try Demo.generateRecurrently(compact, prompt: prompt, count: count)
        }
      ),
    ]
    print(
      "\n  \("form".padding(22))  \("state per sequence".padding(20))  tokens/s  max |logit - FFT|  same text"
    )
    for (name, state, result) in rows {
      let difference =
        zip(result.logits, fft.logits).map { a, b in
          zip(a, b).map { abs($0 - $1) }.max() ?? 0
        }.max() ?? 0
      print(
        String(
          format: "  %@  %@  %8.0f  %17.1e  %@", name.padding(22), state.padding(20),
          Double(count) / result.seconds, difference, result.tokens == fft.tokens ? "yes" : "no"))
    }
    // The exact form must give the FFT model's text and logits (Float32 rounding apart).
    let exactResult = rows[1].2
    let exactDifference =
      zip(exactResult.logits, fft.logits).map { a, b in zip(a, b).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
    guard exactResult.tokens == fft.tokens else {
      throw UserError(
        message: "demo check failed: the exact recurrent model's text differs from FFT recomputation")
    }
    guard exactDifference <= 1e-3 else {
      throw UserError(
        message: String(
          format: "demo check failed: exact logits differ from FFT by %.1e (above 1e-3)", exactDifference))
    }
    let text = String(decoding: fft.tokens[prompt.count...].map { UInt8($0) }, as: UTF8.self)
    print("\n  prompt: \(String(decoding: prompt.map { UInt8($0) }, as: UTF8.self).debugDescription)")
    print("  greedy continuation: \(text.debugDescription)")
  }
}

extension String {
  /// Left-aligned in `width` columns.
  func padding(_ width: Int) -> String {
    count >= width ? self : self + String(repeating: " ", count: width - count)
  }
}
