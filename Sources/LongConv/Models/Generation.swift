import LongConvTensors

/// Generation by recomputation: each token from one forward pass over the whole prefix.
extension CausalLanguageModel {
  /// The logits `[vocabulary]` that follow `context`, from one forward pass without recording.
  ///
  /// The context is right-padded (with token 0) to ``generationLength(for:)``: the logits at a
  /// causal model's position `t` do not depend on anything after `t`, so the padding changes
  /// nothing but the FFT size, and a generation loop then runs a handful of FFT sizes, each
  /// planned once, instead of planning anew for nearly every length. The head runs at the
  /// last position only.
  public func nextTokenLogits(after context: [Int]) throws -> [Float] {
    precondition(!context.isEmpty, "nextTokenLogits: an empty context")
    let length = generationLength(for: context.count)
    let padded = context + [Int](repeating: 0, count: length - context.count)
    return try Tensor.withoutRecording {
      let h = try hidden(padded, batch: 1, length: length)
      return head(h.slice(axis: 1, context.count - 1..<context.count)).scalars
    }
  }

  /// The length a context of `count` tokens is padded to: the next of 16, 20, 24, 28, 32, 40,
  /// 48, 56, 64, ... (`2^k` times 1, 1.25, 1.5 or 1.75: at most 25% padding), but no further
  /// than ``SequenceModel/maxLength`` (and never below `count`).
  public func generationLength(for count: Int) -> Int {
    var size = 16
    while true {
      for step in 0..<4 where size + step * size / 4 >= count {
        return max(count, min(size + step * size / 4, maxLength))
      }
      size *= 2
    }
  }
}
