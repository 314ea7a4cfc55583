/// The format the fused decoding step keeps its products' weights in (every matrix: the mixers'
/// and channel mixers' projections and the tied embedding and head; norms, biases, short filters
/// and the recurrences keep theirs).
///
/// A decoding step is bound by the bytes it streams, most of them weights for a compact model,
/// so halving them nearly halves the step. The price is the rounding of each weight to
/// bfloat16, relative error at most `2^-8`; the products themselves are the Float32 sums of the
/// rounded weights. ``RecurrentLanguageModel/weightRoundingReport(tokens:)`` measures what that
/// does to a model's logits.
public enum DecodingWeights: String, Sendable, CaseIterable {
  /// The model's Float32 weights: the step gives the modules' logits up to Float32 rounding.
  case float32
  /// Weights rounded to bfloat16 (8 significant bits), widened exactly to Float32 in the
  /// kernels: opt-in.
  case bfloat16
}

/// bfloat16: the upper half of a Float32 (sign, 8 exponent bits, 7 fraction bits).
enum BFloat16 {
  /// The largest relative rounding error of a normal number: half a unit in the last of 8
  /// significant bits.
  static let unitRoundoff = 0x1p-8

  /// `x` rounded to the nearest bfloat16, ties to even; NaN stays NaN (quiet), and values
  /// beyond the largest finite bfloat16 round to infinity as IEEE rounding does.
  static func rounded(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(bits >> 16) | 0x0040 }
    let lowest = (bits >> 16) & 1
    return UInt16((bits &+ 0x7FFF &+ lowest) >> 16)
  }

  /// The Float32 of the same value (exact).
  static func value(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}

/// What a weight format does to a model's logits, measured along a sequence of tokens.
public struct WeightRoundingReport: Sendable, Equatable {
  /// The format measured.
  public let weights: DecodingWeights
  /// Tokens stepped.
  public let tokens: Int
  /// The largest `|logit - logit with Float32 weights|` over every position and vocabulary entry.
  public let maxLogitDifference: Float
  /// The largest `|logit|` with Float32 weights over the same steps: the scale of the difference.
  public let maxLogit: Float
}

extension RecurrentLanguageModel {
  /// Steps `tokens` from a fresh state twice, with this model's ``weights`` and with Float32
  /// weights, and reports how far apart their logits are (each run keeps its own states, so the
  /// difference includes what the rounding does to the states along the way).
  public func weightRoundingReport(tokens: [Int]) -> WeightRoundingReport {
    let reference = usingWeights(.float32)
    var (state, referenceState) = (makeState(), reference.makeState())
    var (difference, largest): (Float, Float) = (0, 0)
    for token in tokens {
      let (a, b) = (step(token, state: &state), reference.step(token, state: &referenceState))
      for (x, y) in zip(a, b) {
        difference = max(difference, abs(x - y))
        largest = max(largest, abs(y))
      }
    }
    return WeightRoundingReport(
      weights: weights, tokens: tokens.count, maxLogitDifference: difference, maxLogit: largest)
  }
}
