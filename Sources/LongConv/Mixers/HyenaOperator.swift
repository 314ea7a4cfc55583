/// The Hyena operator of order 2 (Poli et al., 2023; MODELS.md section 3), generic over its
/// long-convolution kernel (``HyenaFilter`` in the paper; any ``LongConvKernel`` works).
///
/// For an input `x [B, L, d]`:
///
/// 1. `u = W_in x + b_in`, `[B, L, 3d]`;
/// 2. a depthwise short convolution of width `s` (3 by default) with bias on all `3d` streams,
///    always causal: `u'[i, c] = sum_(j < s) w_c[j] u[i - j, c] + beta_c` (zero before the start);
/// 3. split along channels into `x0 = u'[:, :, 0..<d]`, `x1 = u'[:, :, d..<2d]`,
///    `v = u'[:, :, 2d..<3d]`;
/// 4. `z = x1 * v`, then the long convolution with the kernel and its skip `D`:
///    `y = h * z + D * z`;
/// 5. output `W_out (x0 * y) + b_out`.
///
/// The long convolution follows the kernel's direction (the model's: causal for a language
/// model, bidirectional for an encoder). The short convolution stays causal in both cases,
/// as in the reference (a `Conv1d` padded by `s - 1` and cut to the first `L` outputs, also in
/// its bidirectional uses): it is a local gating feature, and keeping it causal keeps one
/// layout of its weight for every model.
///
/// Weight layout: `shortFilter [3d, s]` is stored in lag order (column `j` multiplies
/// `u[i - j]`); PyTorch's `Conv1d` weight `[3d, 1, s]` is the same with columns reversed
/// (`ours[c, j] = torch[c, 0, s - 1 - j]`). Parameters: `inProj`, `shortFilter`,
/// `shortFilterBias`, `kernel.*`, `outProj` (the reference's `in_proj`, `short_filter`,
/// `filter_fn`, `out_proj`). Initialisation as PyTorch's defaults (uniform with bound
/// `1/sqrt(fan_in)`, `fan_in = s` for the short filter).
///
/// Config (`type: "hyena"` mixer):
/// - `kernel` (required): the long kernel's config object, built with `d` channels, the
///   model's direction and `max_length` (for example `{"type": "hyena"}`; see ``HyenaFilter``);
/// - `short_filter_width` (`s`; default 3).
///
/// - Complexity: `O(B L d (d + s) + B d N log N)` with `N` about `2L`.
public final class HyenaOperator<Kernel: LongConvKernel>: LongConvMixer {
  /// `d -> 3d`.
  public let inProj: Linear
  /// `[3d, s]`, lag order.
  public let shortFilter: Tensor
  /// `[3d]`.
  public let shortFilterBias: Tensor
  /// The long kernel, `d` channels.
  public let kernel: Kernel
  /// `d -> d`.
  public let outProj: Linear

  /// An operator of width `width` around `kernel` (which must have `width` channels).
  public init(width: Int, kernel: Kernel, shortFilterWidth: Int = 3, generator: inout SeededGenerator) {
    precondition(
      kernel.channels == width, "HyenaOperator: kernel of \(kernel.channels) channels for width \(width)")
    precondition(shortFilterWidth >= 1, "HyenaOperator: short filter width \(shortFilterWidth) < 1")
    inProj = Linear(width, 3 * width, generator: &generator)
    shortFilter = uniformParameter(
      [3 * width, shortFilterWidth], fanIn: shortFilterWidth, generator: &generator)
    shortFilterBias = uniformParameter([3 * width], fanIn: shortFilterWidth, generator: &generator)
    self.kernel = kernel
    outProj = Linear(width, width, generator: &generator)
  }

  /// `d`: the output width of ``outProj``, equal to the kernel's channels.
  public var width: Int { outProj.outputCount }

  /// `[B, L, d] -> [B, L, d]`; throws when the kernel cannot serve length `L`.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    precondition(x.rank == 3 && x.shape[2] == width, "HyenaOperator: input \(x.shape) for width \(width)")
    let d = width
    let u = inProj(x).longConvolution(kernel: shortFilter, direction: .causal) + shortFilterBias
    let x0 = u.slice(axis: 2, 0..<d)
    let x1 = u.slice(axis: 2, d..<2 * d)
    let v = u.slice(axis: 2, 2 * d..<3 * d)
    let y = try kernel.convolve(x1 * v)
    return outProj(x0 * y)
  }
}

/// Builds ``HyenaOperator``s from configs (a generic type cannot hold a static stored factory).
enum HyenaOperatorFactory {
  static let factory: MixerFactory = { config, context, generator in
    let shortFilterWidth = try config.int("short_filter_width", default: 3, minimum: 1)
    let kernelConfig = try config.object("kernel")
    let kernel = try Registry.makeKernel(
      kernelConfig,
      context: KernelContext(
        channels: context.width, direction: context.direction, maxLength: context.maxLength),
      generator: &generator)
    guard kernel.channels == context.width, kernel.direction == context.direction else {
      throw ConfigError(
        file: config.file, path: kernelConfig.path,
        problem: """
          kernel built with \(kernel.channels) channels, \(kernel.direction.rawValue); \
          expected \(context.width), \(context.direction.rawValue)
          """)
    }
    return make(kernel, width: context.width, shortFilterWidth: shortFilterWidth, generator: &generator)
  }

  /// Opens the existential kernel into the generic operator.
  static func make<K: LongConvKernel>(
    _ kernel: K, width: Int, shortFilterWidth: Int, generator: inout SeededGenerator
  ) -> any SequenceMixer {
    HyenaOperator(width: width, kernel: kernel, shortFilterWidth: shortFilterWidth, generator: &generator)
  }
}
