import LongConvLayers
import LongConvTensors

/// The Hyena operator of any order `N >= 2` (Poli et al., 2023; docs/MODELS.md section 3), as
/// safari's `HyenaOperator` computes it, generic over its long-convolution kernel
/// (``HyenaFilter`` in the paper; any ``LongConvKernel`` works).
///
/// For an input `x [B, L, d]`:
///
/// 1. `u = W_in x + b_in`, `[B, L, (N+1) d]`;
/// 2. a depthwise short convolution of width `s` (3 by default) with bias on all `(N+1) d`
///    streams, always causal: `u'[i, c] = sum_(j < s) w_c[j] u[i - j, c] + beta_c` (zero
///    before the start);
/// 3. split along channels into `x_0 ... x_(N-1)` and `v` (`x_n = u'[:, :, n d ..< (n+1) d]`,
///    `v` the last `d` channels);
/// 4. for step `o = 0 ... N-2`: `v = v * x_(N-1-o)` (with `outer_mixing`,
///    `v = v * sum_c x_(N-1-o)[c]`: safari's outer product summed over one side, with one head),
///    then the long convolution with the step's filter and skip, `v = h_o * v + D_o v`, then
///    (with `post_order_ffn`) `v = w_o v`;
/// 5. output `W_out act(v * x_0) + b_out` (`act` the identity unless `activation` says).
///
/// The kernel has `(N - 1) d` channels in safari's layout: channel `c` is step `c % (N-1)` of
/// model channel `c / (N-1)` (its `(v o)` rearrangement), so step `o`'s filter is channels
/// `o, o + (N-1), o + 2(N-1), ...`. For `N = 2` that is the kernel itself.
///
/// The long convolution follows the kernel's direction (the model's: causal for a language
/// model, bidirectional for an encoder). The short convolution stays causal in both cases,
/// as in the reference (a `Conv1d` padded by `s - 1` and cut to the first `L` outputs, also in
/// its bidirectional uses).
///
/// Weight layout: `shortFilter [(N+1)d, s]` is stored in lag order (column `j` multiplies
/// `u[i - j]`); PyTorch's `Conv1d` weight `[(N+1)d, 1, s]` is the same with columns reversed
/// (`ours[c, j] = torch[c, 0, s - 1 - j]`). Parameters: `inProj`, `shortFilter`,
/// `shortFilterBias`, `kernel.*`, `outProj`, `orderScales` (the reference's `in_proj`,
/// `short_filter`, `filter_fn`, `out_proj`, `ord_proj_w` `[N, 1, 1]` as `[N]`; safari uses
/// its first `N - 1` entries). Initialisation as PyTorch's defaults (uniform with bound
/// `1/sqrt(fan_in)`, `fan_in = s` for the short filter; `orderScales` `N(0, 1/d)`).
///
/// Config (`type: "hyena"` mixer):
/// - `kernel` (required): the long kernel's config object, built with `(N-1) d` channels, the
///   model's direction and `max_length` (for example `{"type": "hyena"}`; see ``HyenaFilter``);
/// - `order` (`N`; default 2);
/// - `short_filter_width` (`s`; default 3);
/// - `outer_mixing` (default false), `post_order_ffn` (default false);
/// - `activation` (before the output projection; default `"id"`; see ``LongConvLayers/Activation``).
///
/// safari's `num_heads`, `inner_factor` and `num_blocks` are 1 here: its own forward pass runs
/// only with those values (it splits the heads' channels by `d_model`), and importers refuse
/// others by name.
///
/// - Complexity: `O(B L d (N d + s) + N B d M log M)` with `M` about `2L`.
public final class HyenaOperator<Kernel: LongConvKernel>: LongConvMixer {
  /// `d -> (N+1) d`.
  public let inProj: Linear
  /// `[(N+1) d, s]`, lag order.
  public let shortFilter: Tensor
  /// `[(N+1) d]`.
  public let shortFilterBias: Tensor
  /// The long kernel, `(N-1) d` channels in safari's layout.
  public let kernel: Kernel
  /// `d -> d`.
  public let outProj: Linear
  /// `N`: gates per token, `N - 1` long convolutions.
  public let order: Int
  /// Gate with the sum of the gate's channels instead of channel by channel.
  public let outerMixing: Bool
  /// `[N]`: the scale after each step (`post_order_ffn`), or `nil`.
  public let orderScales: Tensor?
  /// Applied to `v * x_0` before ``outProj``.
  public let activation: Activation

  /// An operator of width `width` and order `order` around `kernel` (which must have
  /// `(order - 1) width` channels).
  public init(
    width: Int, kernel: Kernel, order: Int = 2, shortFilterWidth: Int = 3, outerMixing: Bool = false,
    postOrderScales: Bool = false, activation: Activation = .identity, generator: inout SeededGenerator
  ) {
    precondition(order >= 2, "HyenaOperator: order \(order) < 2")
    precondition(
      kernel.channels == (order - 1) * width,
      "HyenaOperator: kernel of \(kernel.channels) channels for width \(width), order \(order)")
    precondition(shortFilterWidth >= 1, "HyenaOperator: short filter width \(shortFilterWidth) < 1")
    let streams = (order + 1) * width
    inProj = Linear(width, streams, generator: &generator)
    shortFilter = uniformParameter(
      [streams, shortFilterWidth], fanIn: shortFilterWidth, generator: &generator)
    shortFilterBias = uniformParameter([streams], fanIn: shortFilterWidth, generator: &generator)
    self.kernel = kernel
    outProj = Linear(width, width, generator: &generator)
    self.order = order
    self.outerMixing = outerMixing
    orderScales =
      postOrderScales
      ? Tensor.normal([order], std: 1 / Float(width).squareRoot(), generator: &generator).requiringGradient()
      : nil
    self.activation = activation
  }

  /// `d`: the output width of ``outProj``.
  public var width: Int { outProj.outputCount }

  /// `[B, L, d] -> [B, L, d]`; throws when the kernel cannot serve length `L`.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    precondition(x.rank == 3 && x.shape[2] == width, "HyenaOperator: input \(x.shape) for width \(width)")
    let coefficients = try kernel.coefficients(length: x.shape[1])
    return recurrence(streams: shortFiltered(x)) { o, v in
      longConvolution(v, step: o, coefficients: coefficients)
    }
  }

  /// Steps 1 and 2: the projected streams after the short filter, `[B, L, (N+1) d]`.
  public func shortFiltered(_ x: Tensor) -> Tensor {
    inProj(x).longConvolution(kernel: shortFilter, direction: .causal, bias: shortFilterBias)
  }

  /// Steps 3 to 5 on the streams `u [..., (N+1) d]`, with `longConvolution(o, v)` running
  /// step `o`'s long convolution (and skip) on `v [..., d]`: the one statement of Hyena's
  /// recurrence, shared by the forward pass and the recurrent forms.
  public func recurrence(streams u: Tensor, longConvolution: (Int, Tensor) throws -> Tensor) rethrows
    -> Tensor
  {
    let d = width
    let axis = u.rank - 1
    func stream(_ n: Int) -> Tensor { u.slice(axis: axis, n * d..<(n + 1) * d) }
    var v = stream(order)
    for o in 0..<order - 1 {
      let gate = stream(order - 1 - o)
      v = outerMixing ? v * gate.sum(alongAxis: axis, keepingAxis: true) : v * gate
      v = try longConvolution(o, v)
      if let orderScales { v = v * orderScales.slice(axis: 0, o..<o + 1) }
    }
    return outProj(activation(v * stream(0)))
  }

  /// Step `o`'s long convolution of `v [..., L, d]` by FFT, with its filter and skip taken out
  /// of the kernel's `coefficients` for length `L`.
  public func longConvolution(_ v: Tensor, step o: Int, coefficients: Tensor) -> Tensor {
    v.longConvolution(
      kernel: stepCoefficients(coefficients, step: o), direction: kernel.direction, skip: stepSkip(o))
  }

  /// Step `o`'s filter `[d, lags]` out of the kernel's `[(N-1) d, lags]` coefficients.
  public func stepCoefficients(_ coefficients: Tensor, step o: Int) -> Tensor {
    if order == 2 { return coefficients }
    let lags = coefficients.shape[1]
    return coefficients.reshaped([width, order - 1, lags]).slice(axis: 1, o..<o + 1).reshaped([width, lags])
  }

  /// Step `o`'s skip `[d]` out of the kernel's `[(N-1) d]` skip, or `nil`.
  public func stepSkip(_ o: Int) -> Tensor? {
    guard let skip = kernel.skip else { return nil }
    if order == 2 { return skip }
    return skip.reshaped([width, order - 1]).slice(axis: 1, o..<o + 1).reshaped([width])
  }
}

/// Builds ``HyenaOperator``s from configs (a generic type cannot hold a static stored factory).
public enum HyenaOperatorFactory: ConfigurableMixer {
  /// `"hyena"`.
  public static let typeName = "hyena"

  /// Builds the operator and its kernel (`(order - 1) width` channels) from the config.
  public static func make(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator)
    throws
    -> any SequenceMixer
  {
    let order = try config.int("order", default: 2, minimum: 2)
    let shortFilterWidth = try config.int("short_filter_width", default: 3, minimum: 1)
    let outerMixing = try config.bool("outer_mixing", default: false)
    let postOrder = try config.bool("post_order_ffn", default: false)
    let activationName = try config.string(
      "activation", default: Activation.identity.rawValue, allowed: Activation.allCases.map(\.rawValue))
    let kernelConfig = try config.object("kernel")
    let channels = (order - 1) * context.width
    let kernel = try Registry.makeKernel(
      kernelConfig,
      context: KernelContext(channels: channels, direction: context.direction, maxLength: context.maxLength),
      generator: &generator)
    guard kernel.channels == channels, kernel.direction == context.direction else {
      throw ConfigError(
        file: config.file, path: kernelConfig.path,
        problem: """
          kernel built with \(kernel.channels) channels, \(kernel.direction.rawValue); \
          expected \(channels), \(context.direction.rawValue)
          """)
    }
    return make(
      kernel, width: context.width, order: order, shortFilterWidth: shortFilterWidth,
      outerMixing: outerMixing,
      postOrderScales: postOrder, activation: Activation(rawValue: activationName)!, generator: &generator)
  }

  /// Opens the existential kernel into the generic operator.
  static func make<K: LongConvKernel>(
    _ kernel: K, width: Int, order: Int, shortFilterWidth: Int, outerMixing: Bool, postOrderScales: Bool,
    activation: Activation, generator: inout SeededGenerator
  ) -> any SequenceMixer {
    HyenaOperator(
      width: width, kernel: kernel, order: order, shortFilterWidth: shortFilterWidth,
      outerMixing: outerMixing,
      postOrderScales: postOrderScales, activation: activation, generator: &generator)
  }
}
