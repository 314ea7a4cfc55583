/// One layer: a sequence mixer and a channel mixer, each with a residual connection.
///
/// Pre-norm: `x = x + mixer(norm1(x))`, then `x = x + channelMixer(norm2(x))`.
/// Post-norm: `x = norm1(x + mixer(x))`, then `x = norm2(x + channelMixer(x))`.
public final class Block: Module {
  public let mixer: any SequenceMixer
  public let channelMixer: any ChannelMixer
  public let norm1: Normalization, norm2: Normalization
  public let prenorm: Bool

  public init(
    mixer: any SequenceMixer, channelMixer: any ChannelMixer, norm: NormalizationKind, prenorm: Bool
  ) {
    self.mixer = mixer
    self.channelMixer = channelMixer
    norm1 = Normalization(norm, width: mixer.width)
    norm2 = Normalization(norm, width: mixer.width)
    self.prenorm = prenorm
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    if prenorm {
      let h = x + (try mixer(norm1(x)))
      return h + channelMixer(norm2(h))
    }
    let h = norm1(x + (try mixer(x)))
    return norm2(h + channelMixer(h))
  }
}
