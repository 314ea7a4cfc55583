import LongConvLayers
import LongConvTensors

/// Gated Toeplitz unit (GTU), TNN's token mixer (docs/MODELS.md section 2), generic over its kernel:
///
/// ```
/// u = SiLU(W_u x + b_u)            [B, L, d1]
/// v = SiLU(W_v x + b_v)            [B, L, d1]
/// y = W_o (u * TNO(v)) + b_o       [B, L, d]
/// ```
///
/// with `TNO(v)` the long convolution of `v` with the kernel's `d1` channels (and its skip, if
/// it has one), and `d1 = expand_ratio * d`.
///
/// Config (`type: "gtu"`): `expand_ratio` (default 3) and `kernel`, the kernel's config object
/// (required; for example `{"type": "tnn"}`), built for `d1` channels, the model's direction
/// and maximum length.
///
/// Parameter names follow the reference's `token_mixer.{u_proj, v_proj, o}`: `uProj`,
/// `vProj`, `out`, and `kernel.*` for `token_mixer.toep.*`.
public final class GatedToeplitzUnit<Kernel: LongConvKernel>: LongConvMixer {
  /// `W_u`, `W_v`: `d -> d1`; `W_o`: `d1 -> d`.
  public let uProj: Linear, vProj: Linear, out: Linear
  /// The long-convolution kernel, `d1` channels.
  public let kernel: Kernel

  /// A GTU of width `width` around `kernel`, whose channel count is the inner width `d1`.
  public init(width: Int, kernel: Kernel, generator: inout SeededGenerator) {
    let inner = kernel.channels
    uProj = Linear(width, inner, generator: &generator)
    vProj = Linear(width, inner, generator: &generator)
    out = Linear(inner, width, generator: &generator)
    self.kernel = kernel
  }

  /// `d`: the input width of `uProj` (and the output width of `out`).
  public var width: Int { uProj.inputCount }
  /// `d1`.
  public var innerWidth: Int { kernel.channels }

  /// `[B, L, d] -> [B, L, d]`: `W_o (SiLU(W_u x + b_u) * TNO(SiLU(W_v x + b_v))) + b_o`; throws the kernel's
  /// ``KernelError`` when it cannot serve the length `L`.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    let v = vProj(x).silu()
    // SiLU(W_u x + b_u) * TNO(v) as one fused op.
    return out(uProj(x).siluGate(try kernel.convolve(v)))
  }
}

/// Builds GTUs from configs: reads `expand_ratio`, builds the `kernel` object through the
/// registry, then opens the existential kernel into `GatedToeplitzUnit<K>`.
public enum GTUFactory: ConfigurableMixer {
  /// `"gtu"`.
  public static let typeName = "gtu"

  /// Builds the GTU and its kernel (`expand_ratio * width` channels) from the config.
  public static func make(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator)
    throws
    -> any SequenceMixer
  {
    let ratio = try config.int("expand_ratio", default: 3, minimum: 1)
    let inner = ratio * context.width
    let kernel = try Registry.makeKernel(
      try config.object("kernel"),
      context: KernelContext(channels: inner, direction: context.direction, maxLength: context.maxLength),
      generator: &generator)
    func make<K: LongConvKernel>(_ k: K) -> any SequenceMixer {
      GatedToeplitzUnit(width: context.width, kernel: k, generator: &generator)
    }
    return make(kernel)
  }
}
