import LongConvLayers
import LongConvTensors

/// One layer: a sequence mixer and a channel mixer, each with a residual connection.
///
/// Pre-norm: `x = x + mixer(norm1(x))`, then `x = x + channelMixer(norm2(x))`.
/// Post-norm: `x = norm1(x + mixer(x))`, then `x = norm2(x + channelMixer(x))`.
///
/// With ``recomputesActivations`` the block keeps only its input for the backward pass and
/// runs again during it (``LongConvTensors/Tensor/recomputed(_:_:)``): the memory of a
/// training step no longer grows with every intermediate of every block, at the cost of one
/// more forward pass per block.
public final class Block: Module {
  /// The sequence mixer.
  public let mixer: any SequenceMixer
  /// The channel mixer.
  public let channelMixer: any ChannelMixer
  /// The norms before (pre-norm) or after (post-norm) the two mixers.
  public let norm1: Normalization, norm2: Normalization
  /// Pre-norm (`true`) or post-norm residual blocks.
  public let prenorm: Bool
  /// Whether the block recomputes its activations in the backward pass instead of keeping them.
  public let recomputesActivations: Bool

  /// A block around `mixer` and `channelMixer`, with two norms of kind `norm` over the mixer's
  /// width (with `normEpsilon` in place of the kind's default `eps`).
  public init(
    mixer: any SequenceMixer, channelMixer: any ChannelMixer, norm: NormalizationKind,
    normEpsilon: Float? = nil, prenorm: Bool, recomputesActivations: Bool = false
  ) {
    self.recomputesActivations = recomputesActivations
    self.mixer = mixer
    self.channelMixer = channelMixer
    norm1 = Normalization(norm, width: mixer.width, epsilon: normEpsilon)
    norm2 = Normalization(norm, width: mixer.width, epsilon: normEpsilon)
    self.prenorm = prenorm
  }

  /// `[B, L, D] -> [B, L, D]` (see the formulas above).
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    guard recomputesActivations else { return try forward(x) }
    return try Tensor.recomputed([x]) { [self] inputs in try forward(inputs[0]) }
  }

  private func forward(_ x: Tensor) throws -> Tensor {
    if prenorm {
      let h = x + (try mixer(norm1(x)))
      return h + channelMixer(norm2(h))
    }
    let h = norm1(x + (try mixer(x)))
    return norm2(h + channelMixer(h))
  }
}
