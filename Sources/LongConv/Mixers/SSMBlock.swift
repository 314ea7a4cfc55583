import LongConvLayers
import LongConvTensors

/// The S4D block (Gu et al., 2022), generic over its kernel: a depthwise long convolution with
/// skip, an activation, then an output projection, a GLU as in state-spaces/s4's `s4d.py` or
/// a plain `Linear(D, D)` as in safari's S4D layer.
///
/// ```
/// u = sum_k t[k] x[i - k] + skip * x[i]      (kernel.convolve, per channel)
/// h = act(u)                                 (GELU, exact, by default)
/// GLU output:    [a, b] = W h + bias         (Linear(D, 2D): a = first D outputs, b = the rest)
///                y = a * sigmoid(b)
/// linear output: y = W h + bias              (Linear(D, D))
/// ```
///
/// Dropout is omitted. Any ``LongConvKernel`` works (S4D, EMA, TNN ...); the kernel's own
/// direction decides whether the block is causal.
///
/// Config (`type: "ssm"`):
/// - `kernel` (required): the kernel's config object, for example `{ "type": "s4d" }`; it is
///   built with the block's width as its channels and the model's direction and max length;
/// - `output`: `"glu"` (default) or `"linear"`;
/// - `activation`: an ``LongConvLayers/Activation`` name (default `"gelu"`).
public final class SSMBlock<Kernel: LongConvKernel>: LongConvMixer {
  /// The kernel; its channels are the block's width.
  public let kernel: Kernel
  /// `Linear(D, 2D)` before the GLU, or `Linear(D, D)` for a linear output.
  public let output: Linear
  /// Whether ``output`` feeds a GLU.
  public let outputGLU: Bool
  /// Applied to the convolution's output.
  public let activation: Activation

  /// A block around `kernel`, as wide as the kernel has channels.
  public init(
    kernel: Kernel, outputGLU: Bool = true, activation: Activation = .gelu, generator: inout SeededGenerator
  ) {
    self.kernel = kernel
    output = Linear(kernel.channels, (outputGLU ? 2 : 1) * kernel.channels, generator: &generator)
    self.outputGLU = outputGLU
    self.activation = activation
  }

  /// `D`: the kernel's channels.
  public var width: Int { kernel.channels }

  /// `[B, L, D] -> [B, L, D]` (formulas above); throws the kernel's ``KernelError`` when it
  /// cannot serve the length `L`.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    project(activation(try kernel.convolve(x)))
  }

  /// The output projection of the activated convolution `h [..., D]`: `W h + b`, then the GLU
  /// for a GLU output (shared by the forward pass and the recurrent form).
  public func project(_ h: Tensor) -> Tensor {
    let z = output(h)
    guard outputGLU else { return z }
    let d = width
    return z.slice(axis: -1, 0..<d) * z.slice(axis: -1, d..<2 * d).sigmoid()
  }
}

/// Builds `SSMBlock<K>` for the dynamic type of `kernel` (the existential is opened here).
func makeSSMBlock<K: LongConvKernel>(
  kernel: K, outputGLU: Bool, activation: Activation, generator: inout SeededGenerator
) -> any SequenceMixer {
  SSMBlock(kernel: kernel, outputGLU: outputGLU, activation: activation, generator: &generator)
}

/// Builds ``SSMBlock``s from configs (`"ssm"`; a generic type cannot hold a static stored factory).
public enum SSMBlockFactory: ConfigurableMixer {
  /// `"ssm"`.
  public static let typeName = "ssm"

  /// Builds the block and its kernel (the block's width in channels) from the config.
  public static func make(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator)
    throws
    -> any SequenceMixer
  {
    let kernel = try Registry.makeKernel(
      try config.object("kernel"),
      context: KernelContext(
        channels: context.width, direction: context.direction, maxLength: context.maxLength),
      generator: &generator)
    let output = try config.string("output", default: "glu", allowed: ["glu", "linear"])
    let activation = try config.string(
      "activation", default: Activation.gelu.rawValue, allowed: Activation.allCases.map(\.rawValue))
    return makeSSMBlock(
      kernel: kernel, outputGLU: output == "glu", activation: Activation(rawValue: activation)!,
      generator: &generator)
  }
}
