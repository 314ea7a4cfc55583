import Foundation
import LongConvLayers
import LongConvTensors

/// Hyena's implicit long filter (Poli et al., 2023; docs/MODELS.md section 3), as safari's
/// `HyenaFilter` defines it: a small MLP maps positional features of each lag to one
/// coefficient per channel, and an exponential window per channel makes the filter decay.
///
/// For `Lmax` positions (the kernel's maximum length) and lag `l = 0 ... Lmax-1`:
///
/// - time `t_l = l / (Lmax - 1)` in `[0, 1]` (`t_0 = 0` when `Lmax = 1`);
/// - angle `w_l = 2 pi l / Lmax`, frequencies `f_b` spaced linearly from `1e-4` to `bands - 1`
///   (`b = 0 ... bands-1`; a single band has `f_0 = 1e-4`);
/// - features `z_l = [t_l, cos(f_0 w_l) ... cos(f_(bands-1) w_l), -sin(f_0 w_l) ...
///   -sin(f_(bands-1) w_l)]` of size `emb_dim = 1 + 2 bands` (the real and imaginary parts of
///   `exp(-i f w)`, cosines first, as in the reference `PositionalEmbedding`);
/// - the MLP `h = W_out Sin(... Sin(W_1 Sin(W_0 z + b_0) + b_1) ...)`: `Linear(emb_dim, w)`,
///   `Sin`, then `num_inner_layers` times `[Linear(w, w), Sin]`, then `Linear(w, D)` without
///   bias; `Sin(a) = sin(freq * a)` element-wise with one learned `freq` vector of size `w`
///   **shared by every Sin** of the MLP (the reference appends the same `Sin` module each time);
/// - the window `t_c[l] = h_c(z_l) (exp(-t_l |delta_c|) + shift)` with `delta_c` spaced
///   linearly from `ln(target) / slow_decay_pct` to `ln(target) / fast_decay_pct` over the
///   channels: the slowest channel decays to `target` at `t = slow_decay_pct`, the fastest at
///   `t = fast_decay_pct`;
/// - with `normalized`, each lag's coefficients are divided by their L1 norm over the
///   channels, `t_c[l] / sum_c' |t_c'[l]|` (safari's `torch.norm(h, dim=-1, p=1)` on
///   `h [1, L, D]`: over channels, not over lags).
///
/// `z`, `t` and `delta` are the formulas above for a new filter, but they are stored state
/// (`@Buffer`): a checkpoint saves and loads them, so a model imported from safari, whose
/// checkpoint may hold other values (safari trains `z` at a small learning rate), keeps them.
/// With `train_positional_features` `z` is a parameter and trains.
///
/// `coefficients(length: L)` evaluates the first `L` positions of that `Lmax` grid (time stays
/// normalised by `Lmax`, as in the reference), so a filter trained at `Lmax` gives the same
/// leading coefficients for every shorter sequence. Lengths beyond `Lmax` throw
/// ``KernelError/lengthBeyondMaximum(kernel:requested:maximum:)``: the features are only
/// defined on that grid. A learned per-channel skip `D` (`skip`, initialised `N(0, 1)` like
/// the reference's `bias`) is added as `D * x`. Causal only.
///
/// Config (`type: "hyena"`):
/// - `emb_dim` (odd, at least 3; default 33, the reference's language-model setting;
///   `bands = (emb_dim - 1) / 2`);
/// - `filter_width` (`w`, the MLP width; default 64);
/// - `num_inner_layers` (hidden `Linear(w, w) -> Sin` layers; default 2);
/// - `sin_frequency` (initial value of every entry of `freq`; default 1, the reference class
///   default; its Pile configs use 14);
/// - `modulate` (apply the exponential window; default true);
/// - `fast_decay_pct` (default 0.3), `slow_decay_pct` (default 1.5), `decay_target` (default 0.01);
/// - `shift` (added to the window; default 0);
/// - `normalized` (L1 normalisation over channels; default false);
/// - `train_positional_features` (`z` a parameter; default false);
/// - `skip` (learn the skip `D`; default true);
/// - `max_length` (`Lmax`; default: the model's `max_length`, and not smaller than it).
///
/// Parameters: `implicitFilter.{0 ... n+1}.{weight,bias}` (the reference's
/// `implicit_filter.{0,2,4,6}`), `freq` (`implicit_filter.1.freq`), `skip` (`bias`); buffers
/// `positionalFeatures` (`pos_emb.z`, `[Lmax, emb_dim]`), `times` (`pos_emb.t`, `[Lmax, 1]`),
/// `deltas` (`modulation.deltas`, `[D]`, signed as stored). Filter dropout is not implemented
/// (it is 0 in every safari config).
///
/// - Complexity: `O(L w (emb_dim + n w + D))` per call of ``coefficients(length:)``.
public final class HyenaFilter: ConfigurableKernel {
  /// The config `type` of this kernel: `"hyena"`.
  public static let typeName = "hyena"

  /// Channels `D`: the outputs of the MLP's last layer.
  public let channels: Int
  /// `Lmax`: the grid of the positional features.
  public let maxLength: Int
  /// The MLP's linear layers, input to output (the last has no bias).
  public let implicitFilter: [Linear]
  /// `[w]`: frequency of every `Sin` activation (shared).
  public let freq: Tensor
  /// `[D]`: the learned skip, or `nil`.
  public let skip: Tensor?
  /// `[Lmax, emb_dim]`: the positional features `z_l` (a parameter when trained).
  @Buffer public private(set) var positionalFeatures: Tensor
  /// `[Lmax, 1]`: the times `t_l` of the window.
  @Buffer public private(set) var times: Tensor
  /// `[D]`: the window's `delta_c` (its rate is `|delta_c|`).
  @Buffer public private(set) var deltas: Tensor
  /// Whether the exponential window is applied.
  public let modulate: Bool
  /// Added to the window: `exp(-t |delta|) + shift`.
  public let shift: Float
  /// Whether each lag is divided by its L1 norm over the channels.
  public let normalized: Bool

  /// Always causal: the filter has lags `0 ... L-1` only.
  public var direction: ConvolutionDirection { .causal }

  /// A filter of `channels` channels over `maxLength` positions.
  ///
  /// - Parameters:
  ///   - channels: `D`, the filter's output channels.
  ///   - maxLength: `Lmax`, the longest length the filter is defined for.
  ///   - embeddingDimension: `emb_dim = 1 + 2 bands`, odd and at least 3.
  ///   - width: `w`, the MLP width.
  ///   - innerLayers: hidden `Linear(w, w) -> Sin` layers.
  ///   - sinFrequency: the initial value of every entry of the Sin activations' `freq`.
  ///   - decay: `(fast, slow, target)` of the exponential window, `nil` for none.
  ///   - shift: added to the window.
  ///   - normalized: divide each lag by its L1 norm over the channels.
  ///   - trainPositionalFeatures: make `z` a parameter.
  ///   - skip: whether to learn the skip `D`.
  ///   - generator: the seeded source of the initial weights.
  public init(
    channels: Int, maxLength: Int, embeddingDimension: Int = 33, width: Int = 64, innerLayers: Int = 2,
    sinFrequency: Float = 1, decay: (fast: Double, slow: Double, target: Double)? = (0.3, 1.5, 1e-2),
    shift: Float = 0, normalized: Bool = false, trainPositionalFeatures: Bool = false,
    skip: Bool = true, generator: inout SeededGenerator
  ) {
    precondition(channels >= 1 && maxLength >= 1 && width >= 1 && innerLayers >= 0, "HyenaFilter: bad sizes")
    precondition(
      embeddingDimension >= 3 && embeddingDimension % 2 == 1,
      "HyenaFilter: emb_dim must be odd and at least 3, got \(embeddingDimension)")
    self.channels = channels
    self.maxLength = maxLength
    var layers = [Linear(embeddingDimension, width, generator: &generator)]
    for _ in 0..<innerLayers { layers.append(Linear(width, width, generator: &generator)) }
    layers.append(Linear(width, channels, bias: false, generator: &generator))
    implicitFilter = layers
    freq = Tensor(repeating: sinFrequency, shape: [width]).requiringGradient()
    self.skip = skip ? Tensor.normal([channels], generator: &generator).requiringGradient() : nil
    let z = try! Tensor(
      shape: [maxLength, embeddingDimension],
      doubles: Self.positionalFeatures(maxLength: maxLength, bands: (embeddingDimension - 1) / 2))
    positionalFeatures = trainPositionalFeatures ? z.requiringGradient() : z
    times = try! Tensor(shape: [maxLength, 1], doubles: (0..<maxLength).map { Self.time($0, maxLength) })
    let window = decay ?? (0.3, 1.5, 1e-2)
    deltas = Tensor(
      Self.deltas(channels: channels, fast: window.fast, slow: window.slow, target: window.target).map {
        Float($0)
      })
    modulate = decay != nil
    self.shift = shift
    self.normalized = normalized
  }

  /// Builds the kernel from its config object (keys and defaults above), for `context`'s channels, direction and maximum length.
  public convenience init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator)
    throws
  {
    try requireDirection(context.direction, supported: [.causal], kernel: Self.typeName, config: config)
    let embeddingDimension = try config.int("emb_dim", default: 33, minimum: 3)
    guard embeddingDimension % 2 == 1 else {
      throw config.error("emb_dim", "must be odd (1 + 2 bands), got \(embeddingDimension)")
    }
    let width = try config.int("filter_width", default: 64, minimum: 1)
    let innerLayers = try config.int("num_inner_layers", default: 2, minimum: 0)
    let sinFrequency = try config.double("sin_frequency", default: 1)
    let modulate = try config.bool("modulate", default: true)
    let fast = try config.double("fast_decay_pct", default: 0.3)
    let slow = try config.double("slow_decay_pct", default: 1.5)
    let target = try config.double("decay_target", default: 1e-2)
    guard fast > 0 else { throw config.error("fast_decay_pct", "must be positive, got \(fast)") }
    guard slow > 0 else { throw config.error("slow_decay_pct", "must be positive, got \(slow)") }
    guard target > 0 && target < 1 else {
      throw config.error("decay_target", "must be in (0, 1), got \(target)")
    }
    let shift = try config.double("shift", default: 0)
    let normalized = try config.bool("normalized", default: false)
    let trainPositional = try config.bool("train_positional_features", default: false)
    let skip = try config.bool("skip", default: true)
    let maxLength = try config.int("max_length", default: context.maxLength, minimum: context.maxLength)
    self.init(
      channels: context.channels, maxLength: maxLength, embeddingDimension: embeddingDimension, width: width,
      innerLayers: innerLayers, sinFrequency: Float(sinFrequency),
      decay: modulate ? (fast, slow, target) : nil, shift: Float(shift), normalized: normalized,
      trainPositionalFeatures: trainPositional, skip: skip, generator: &generator)
  }

  /// `[D, L]`: the MLP at the first `L` positions, times the window, channels first.
  public func coefficients(length: Int) throws -> Tensor {
    guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
    guard length <= maxLength else {
      throw KernelError.lengthBeyondMaximum(kernel: Self.typeName, requested: length, maximum: maxLength)
    }
    var h = length == maxLength ? positionalFeatures : positionalFeatures.slice(axis: 0, 0..<length)
    for layer in implicitFilter.dropLast() { h = (layer(h) * freq).sin() }
    h = implicitFilter[implicitFilter.count - 1](h)  // [L, D]
    if modulate {
      let t = length == maxLength ? times : times.slice(axis: 0, 0..<length)
      let window = (-1 * (t * deltas.abs())).exp()
      h = h * (shift == 0 ? window : window + shift)
    }
    if normalized { h = h / h.abs().sum(alongAxis: 1, keepingAxis: true) }
    return h.transposed()
  }

  /// `t_l = l / (Lmax - 1)`.
  static func time(_ l: Int, _ maxLength: Int) -> Double {
    maxLength > 1 ? Double(l) / Double(maxLength - 1) : 0
  }

  /// `f_b`, linear from `1e-4` to `bands - 1`.
  static func frequencies(bands: Int) -> [Double] {
    let (start, end) = (1e-4, Double(bands - 1))
    return bands == 1 ? [start] : (0..<bands).map { start + Double($0) * (end - start) / Double(bands - 1) }
  }

  /// Row-major `[Lmax, 1 + 2 bands]` features `[t, cos(f w), -sin(f w)]`.
  static func positionalFeatures(maxLength: Int, bands: Int) -> [Double] {
    let f = frequencies(bands: bands)
    var z: [Double] = []
    z.reserveCapacity(maxLength * (1 + 2 * bands))
    for l in 0..<maxLength {
      let w = 2 * Double.pi * Double(l) / Double(maxLength)
      z.append(time(l, maxLength))
      z += f.map { Foundation.cos($0 * w) }
      z += f.map { -Foundation.sin($0 * w) }
    }
    return z
  }

  /// `delta_c`, linear from `ln(target) / slow` to `ln(target) / fast` (negative).
  static func deltas(channels: Int, fast: Double, slow: Double, target: Double) -> [Double] {
    let (start, end) = (Foundation.log(target) / slow, Foundation.log(target) / fast)
    if channels == 1 { return [start] }
    return (0..<channels).map { start + Double($0) * (end - start) / Double(channels - 1) }
  }
}
