import Foundation
import LongConvLayers
import LongConvTensors

/// Next-token cross-entropy of a language model over a byte stream.
public struct LanguageModelEvaluation: Sendable, Equatable {
  /// Mean cross-entropy in nats over all predictions.
  public var lossNats: Double
  /// Number of predictions (every byte but the first).
  public var tokens: Int
  /// The chunk length used.
  public var length: Int
  /// `lossNats / ln 2`: bits per byte when tokens are bytes.
  public var bitsPerByte: Double { lossNats / M_LN2 }
}

extension CausalLanguageModel {
  /// Evaluates on `tokens` cut into consecutive chunks of `length` predictions: chunk `k`
  /// reads tokens `kN ... kN+N-1` and predicts `kN+1 ... kN+N`, so every token but the first is
  /// predicted exactly once and the last chunk may be shorter. Runs without recording; full
  /// chunks go through the model `batch` at a time.
  public func evaluate(tokens: [Int], length: Int, batch: Int = 8) throws -> LanguageModelEvaluation {
    precondition(length >= 1 && batch >= 1, "evaluate: length \(length), batch \(batch)")
    let predictions = max(0, tokens.count - 1)
    var total = 0.0
    try Tensor.withoutRecording {
      var start = 0
      while start < predictions {
        let width = min(length, predictions - start)
        // Full chunks of the same width, up to `batch` of them.
        var rows = 1
        while rows < batch && width == length && start + (rows + 1) * length <= predictions { rows += 1 }
        var inputs: [Int] = []
        var targets: [Int] = []
        for row in 0..<rows {
          let s = start + row * width
          inputs += tokens[s..<s + width]
          targets += tokens[s + 1...s + width]
        }
        let loss = try self.loss(inputs: inputs, targets: targets, batch: rows, length: width)
        total += Double(loss.scalar) * Double(rows * width)
        start += rows * width
      }
    }
    return LanguageModelEvaluation(
      lossNats: predictions == 0 ? 0 : total / Double(predictions), tokens: predictions, length: length)
  }
}
