import LongConvLayers
import LongConvTensors

/// The explicit long-convolution kernel of "Simple Hardware-Efficient Long Convolutions for
/// Sequence Modeling" (Fu et al., 2023; docs/MODELS.md section 4): every coefficient is a free
/// parameter, regularised by soft-thresholding ("squash").
///
/// With a parameter `k [D, Lmax]` (causal, lag `l` at column `l`) or `k [D, 2 Lmax - 1]`
/// (bidirectional, lag `l` at column `l + Lmax - 1`, negative lags first):
///
/// `t_c[l] = relu(|k_c[l]| - lambda) * sign(k_c[l])`
///
/// so entries smaller than `lambda` in magnitude are exactly zero (a sparse kernel) and the
/// others are shrunk towards zero by `lambda`. Its gradient is `1` where `|k| > lambda` and
/// `0` elsewhere. `coefficients(length: L)` returns the lags `0 ... L-1` (causal) or
/// `-(L-1) ... L-1` (bidirectional) of the parameter; lengths beyond `Lmax` throw
/// ``KernelError/lengthBeyondMaximum(kernel:requested:maximum:)``. An optional learned skip
/// `D [D]` (initialised `N(0, 1)` like the reference's `D`) is added as `D * x`.
///
/// Initialisation follows the reference's `weight_init: random`: `k ~ N(0, init_std^2)` with
/// `init_std = 0.002`. Beware that with the default `lambda = 0.003` most entries start
/// below the threshold (zero, with zero gradient); the reference trains that way.
///
/// Config (`type: "explicit"`):
/// - `lambda` (soft threshold, at least 0; default 0.003, the reference's `long-conv` layer
///   config; its kernel class defaults to 0.1);
/// - `init_std` (default 0.002);
/// - `skip` (learn the skip `D`; default true);
/// - `max_length` (`Lmax`; default: the model's `max_length`, and not smaller than it).
///
/// The bidirectional parameter differs from the reference's, which keeps two causal kernels
/// of `Lmax` lags (the backward one flipped): its lag `-Lmax` can never reach an output and
/// is dropped here. Kernel dropout and moving-average smoothing are not implemented.
///
/// Parameters: `weight`, `skip`.
public final class ExplicitKernel: ConfigurableKernel {
  /// The config `type` of this kernel: `"explicit"`.
  public static let typeName = "explicit"

  /// Channels `D`: the rows of ``weight``.
  public let channels: Int
  /// Causal (``weight`` is `[D, Lmax]`) or bidirectional (`[D, 2 Lmax - 1]`).
  public let direction: ConvolutionDirection
  /// `Lmax`.
  public let maxLength: Int
  /// `[D, Lmax]` (causal) or `[D, 2 Lmax - 1]` (bidirectional), before squashing.
  public let weight: Tensor
  /// The soft threshold `lambda`.
  public let lambda: Float
  /// `[D]`: the learned skip, or `nil`.
  public let skip: Tensor?

  /// A kernel of `channels` channels over `maxLength` lags with the soft threshold `lambda`, weights `N(0, initStd^2)` and, when `skip`, a learned skip.
  public init(
    channels: Int, direction: ConvolutionDirection, maxLength: Int, lambda: Float = 0.003,
    initStd: Float = 0.002, skip: Bool = true, generator: inout SeededGenerator
  ) {
    precondition(channels >= 1 && maxLength >= 1, "ExplicitKernel: bad sizes")
    precondition(lambda >= 0, "ExplicitKernel: lambda \(lambda) < 0")
    self.channels = channels
    self.direction = direction
    self.maxLength = maxLength
    self.lambda = lambda
    let columns = direction == .causal ? maxLength : 2 * maxLength - 1
    weight = Tensor.normal([channels, columns], std: initStd, generator: &generator).requiringGradient()
    self.skip = skip ? Tensor.normal([channels], generator: &generator).requiringGradient() : nil
  }

  /// Builds the kernel from its config object (keys and defaults above), for `context`'s channels, direction and maximum length.
  public convenience init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator)
    throws
  {
    let lambda = try config.double("lambda", default: 0.003)
    guard lambda >= 0 else { throw config.error("lambda", "must be at least 0, got \(lambda)") }
    let initStd = try config.double("init_std", default: 0.002)
    guard initStd >= 0 else { throw config.error("init_std", "must be at least 0, got \(initStd)") }
    let skip = try config.bool("skip", default: true)
    let maxLength = try config.int("max_length", default: context.maxLength, minimum: context.maxLength)
    self.init(
      channels: context.channels, direction: context.direction, maxLength: maxLength, lambda: Float(lambda),
      initStd: Float(initStd), skip: skip, generator: &generator)
  }

  /// `[D, L]` or `[D, 2L - 1]`: the squashed lags of the parameter that reach length `L`.
  public func coefficients(length: Int) throws -> Tensor {
    guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
    guard length <= maxLength else {
      throw KernelError.lengthBeyondMaximum(kernel: Self.typeName, requested: length, maximum: maxLength)
    }
    let k: Tensor
    if length == maxLength {
      k = weight
    } else if direction == .causal {
      k = weight.slice(axis: 1, 0..<length)
    } else {
      k = weight.slice(axis: 1, (maxLength - length)..<(maxLength + length - 1))
    }
    return lambda == 0 ? k : (k.abs() - lambda).relu() * k.sign()
  }
}
