/// The S4D block of `s4d.py` (Gu et al., 2022), generic over its kernel: a depthwise long
/// convolution with skip, GELU, then a GLU output projection.
///
/// ```
/// u = sum_k t[k] x[i - k] + skip * x[i]      (kernel.convolve, per channel)
/// h = GELU(u)
/// [a, b] = W h + bias                        (Linear(D, 2D): a = first D outputs, b = the rest)
/// y = a * sigmoid(b)                         (GLU)
/// ```
///
/// Dropout is omitted. Any ``LongConvKernel`` works (S4D, EMA, TNN ...); the kernel's own
/// direction decides whether the block is causal.
///
/// Config (`type: "ssm"`):
/// - `kernel` (required): the kernel's config object, for example `{ "type": "s4d" }`; it is
///   built with the block's width as its channels and the model's direction and max length.
public final class SSMBlock<Kernel: LongConvKernel>: LongConvMixer {
  /// The kernel; its channels are the block's width.
  public let kernel: Kernel
  /// `Linear(D, 2D)` before the GLU.
  public let output: Linear

  /// A block around `kernel`, as wide as the kernel has channels.
  public init(kernel: Kernel, generator: inout SeededGenerator) {
    self.kernel = kernel
    output = Linear(kernel.channels, 2 * kernel.channels, generator: &generator)
  }

  /// `D`: the kernel's channels.
  public var width: Int { kernel.channels }

  /// `[B, L, D] -> [B, L, D]`: `a * sigmoid(b)` with `[a, b] = W GELU(kernel.convolve(x)) + bias`; throws the
  /// kernel's ``KernelError`` when it cannot serve the length `L`.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    let d = width
    let z = output(try kernel.convolve(x).gelu())
    return z.slice(axis: -1, 0..<d) * z.slice(axis: -1, d..<2 * d).sigmoid()
  }
}

/// Builds `SSMBlock<K>` for the dynamic type of `kernel` (the existential is opened here).
func makeSSMBlock<K: LongConvKernel>(kernel: K, generator: inout SeededGenerator) -> any SequenceMixer {
  SSMBlock(kernel: kernel, generator: &generator)
}

enum SSMBlockFactory {
  static let factory: MixerFactory = { config, context, generator in
    let kernel = try Registry.makeKernel(
      try config.object("kernel"),
      context: KernelContext(
        channels: context.width, direction: context.direction, maxLength: context.maxLength),
      generator: &generator)
    return makeSSMBlock(kernel: kernel, generator: &generator)
  }
}
