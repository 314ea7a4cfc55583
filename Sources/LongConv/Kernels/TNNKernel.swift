import Foundation
import LongConvLayers
import LongConvTensors

/// The Toeplitz neural network kernel (TNN, Qin et al., ICLR 2023; docs/MODELS.md section 2):
/// a relative position encoder (RPE) MLP maps each lag to `D` coefficients, damped by a
/// per-channel exponential decay.
///
/// ```
/// RPE(k) = out(layers_{n-1}( ... layers_0(posProj(k))))      (one scalar k -> D values)
///   posProj  = Linear(1, r)
///   layers_j = Linear(r, r) . ReLU . SimpleRMSNorm            (rpe_layers of them)
///   out      = Linear(r, D) . ReLU . SimpleRMSNorm
/// t_c[k] = lambda_c^|k| RPE_c(k)                              (so t_c[0] = RPE_c(0))
/// ```
///
/// The RPE reads the raw relative positions as floats (no division by `L`): `0 ... L-1` for a
/// causal kernel (`[D, L]`), `-(L-1) ... L-1` for a bidirectional one (`[D, 2L-1]`, negative
/// lags first), with SimpleRMSNorm `x / (||x||_2 r^(-1/2) + 1e-8)`.
///
/// The decay `lambda_c` is either
/// - `"fixed"` (default): `lambda_c = gamma`, a constant `[D]` (not trained), exposed as
///   ``separableDecay``; or
/// - `"learned"` (the reference's "multi decay"):
///   `lambda_c = gamma + (1 - gamma) sigmoid(p_c)` with a parameter `p [D]` initialised
///   `N(0, 1)`, so `lambda` stays in `(gamma, 1)` (as fairseq-evo's `use_multi_decay`, where
///   `gamma` is the lower bound `lambda_`).
///
/// Config (`type: "tnn"`):
/// - `rpe_width` (default 64): the RPE's hidden width `r`;
/// - `rpe_layers` (default 3): hidden `[norm, ReLU, Linear(r, r)]` layers (0 allowed);
/// - `gamma` (default 0.99): the fixed decay, or the lower bound of the learned one, in `(0, 1]`;
/// - `decay` (default `"fixed"`): `"fixed"` or `"learned"`.
///
/// Parameters and their names in the authors' PyTorch `state_dict` (prefix
/// `token_mixer.toep.`; PyTorch `Linear.weight` is `[out, in]`, as ours):
///
/// | here | reference |
/// |---|---|
/// | `posProj.{weight,bias}` `[r, 1]`, `[r]` | `rpe.pos_proj.{weight,bias}` |
/// | `layers.{j}.linear.{weight,bias}` `[r, r]`, `[r]` | `rpe.layers.{j}.2.{weight,bias}` |
/// | `out.linear.{weight,bias}` `[D, r]`, `[D]` | `rpe.out.2.{weight,bias}` |
/// | `gamma` `[D]`: ``decayLogit`` `p` when learned, the buffer ``fixedDecay`` (`lambda`) when fixed | `gamma` `[h, 1, e]`, `h e = D` (a buffer holding `lambda` when fixed) |
///
/// - Complexity: `O(n r (r * rpe_layers + D))` for `n = L` (causal) or `2L - 1` lags: the RPE
///   is evaluated once for all lags as matrix products, and the last layer writes the
///   `[D, n]` coefficients directly as one product `[W_out | b_out] [h | 1]^T` (no transpose,
///   no separate bias pass). The decay is `exp(|k| log lambda_c)`, an outer product through one
///   `exp`. A fixed decay's `[D, n]` powers are a constant, kept for the last length asked
///   (`4 D n` bytes per kernel) so repeated calls at one length only multiply.
public final class TNNKernel: ConfigurableKernel {
  /// The config `type` of this kernel: `"tnn"`.
  public static let typeName = "tnn"

  /// How `lambda` is obtained.
  public enum Decay: String, Sendable, CaseIterable {
    /// `lambda = gamma`, a constant.
    case fixed
    /// `lambda = gamma + (1 - gamma) sigmoid(p)`, `p` trained.
    case learned
  }

  /// One hidden RPE layer: `Linear(SimpleRMSNorm(x).relu())`.
  public final class RPELayer: Module {
    /// The layer's `Linear(r, r)` (or `Linear(r, D)` for `out`).
    public let linear: Linear
    /// A layer `inputs -> outputs`.
    public init(_ inputs: Int, _ outputs: Int, generator: inout SeededGenerator) {
      linear = Linear(inputs, outputs, generator: &generator)
    }
    /// `Linear(ReLU(SimpleRMSNorm(x)))`.
    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x.simpleRMSNorm().relu()) }
  }

  /// `Linear(1, r)` on the positions.
  public let posProj: Linear
  /// The `rpe_layers` hidden layers.
  public let layers: [RPELayer]
  /// The output layer to `D` channels (applied in the transposed layout, see ``coefficients(length:)``).
  public let out: RPELayer
  /// `[D]`: `lambda` when the decay is fixed (a constant, saved as the reference's `gamma`),
  /// else `nil`.
  @Buffer(key: "gamma") public private(set) var fixedDecay: Tensor? = nil
  /// `[D]`: the parameter `p` of a learned decay (saved as `gamma`), else `nil`.
  @Parameter(key: "gamma") public private(set) var decayLogit: Tensor? = nil
  /// Fixed or learned decay.
  public let decay: Decay
  /// The config's `gamma`: the fixed decay or the learned decay's lower bound.
  public let decayLowerBound: Float
  /// Causal (the RPE is read at lags `0 ... L-1`) or bidirectional (`-(L-1) ... L-1`).
  public let direction: ConvolutionDirection

  /// Fixed decay only: the last `[D, n]` decay matrix, reused while the length stays the same.
  private let decayCache = DecayCache()

  /// Channels `D`: the outputs of ``out``.
  public var channels: Int { out.linear.outputCount }
  /// The RPE's hidden width `r`.
  public var rpeWidth: Int { posProj.outputCount }

  /// A kernel with explicit sizes (PyTorch's default initialisation for every `Linear`).
  public init(
    channels: Int, direction: ConvolutionDirection, rpeWidth: Int = 64, rpeLayers: Int = 3,
    gamma: Float = 0.99, decay: Decay = .fixed, generator: inout SeededGenerator
  ) {
    precondition(channels >= 1 && rpeWidth >= 1 && rpeLayers >= 0, "TNNKernel: invalid sizes")
    precondition(gamma > 0 && gamma <= 1, "TNNKernel: gamma \(gamma) outside (0, 1]")
    posProj = Linear(1, rpeWidth, generator: &generator)
    layers = (0..<rpeLayers).map { _ in RPELayer(rpeWidth, rpeWidth, generator: &generator) }
    out = RPELayer(rpeWidth, channels, generator: &generator)
    self.decay = decay
    decayLowerBound = gamma
    self.direction = direction
    switch decay {
    case .fixed: fixedDecay = Tensor(repeating: gamma, shape: [channels])
    case .learned: decayLogit = Tensor.normal([channels], generator: &generator).requiringGradient()
    }
  }

  /// Builds the kernel from its config object (keys and defaults above), for `context`'s channels, direction and maximum length.
  public convenience init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator)
    throws
  {
    let width = try config.int("rpe_width", default: 64, minimum: 1)
    let layerCount = try config.int("rpe_layers", default: 3, minimum: 0)
    let gamma = try config.double("gamma", default: 0.99, range: 0...1)
    guard gamma > 0 else { throw config.error("gamma", "must be above 0, got \(gamma)") }
    let decay = Decay(
      rawValue: try config.string("decay", default: "fixed", allowed: Decay.allCases.map(\.rawValue)))!
    self.init(
      channels: context.channels, direction: context.direction, rpeWidth: width, rpeLayers: layerCount,
      gamma: Float(gamma), decay: decay, generator: &generator)
  }

  /// The relative positions of the columns, as floats: `0 ... L-1` or `-(L-1) ... L-1`.
  func lags(_ length: Int) -> [Float] {
    direction == .causal ? (0..<length).map(Float.init) : (1 - length..<length).map(Float.init)
  }

  /// The RPE before the decay, `[D, n]`.
  public func undecayed(length: Int) throws -> Tensor {
    guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
    let positions = lags(length)
    var h = posProj(Tensor(positions).reshaped([positions.count, 1]))  // [n, r]
    for layer in layers { h = layer(h) }
    // The output layer, transposed: W_out relu(norm(h))^T + b_out, [D, n], as one product
    // with the bias as an extra column of W_out against a column of ones.
    let hidden = h.simpleRMSNorm().relu()
    let w = out.linear
    guard let bias = w.bias else { return w.weight.matmul(hidden, transposeB: true) }
    let weights = Tensor.concatenate([w.weight, bias.reshaped([channels, 1])], axis: 1)
    let inputs = Tensor.concatenate([hidden, Tensor.ones([positions.count, 1])], axis: 1)
    return weights.matmul(inputs, transposeB: true)
  }

  /// `lambda [D]`: the constant, or `gamma + (1 - gamma) sigmoid(p)` (recorded) when learned.
  public var lambda: Tensor {
    switch decay {
    case .fixed: fixedDecay!
    case .learned: decayLowerBound + (1 - decayLowerBound) * decayLogit!.sigmoid()
    }
  }

  /// `lambda_c^|k|` for every channel and column, `[D, n]`, as `exp(log(lambda) |k|)`.
  public func decayPowers(length: Int) -> Tensor {
    let distances = Tensor(lags(length).map { Swift.abs($0) }).reshaped([1, -1])
    switch decay {
    case .fixed:
      return decayCache.value(length: length) {
        Tensor.withoutRecording { (fixedDecay!.log().reshaped([channels, 1]) * distances).exp() }
      }
    case .learned:
      return (lambda.log().reshaped([channels, 1]) * distances).exp()
    }
  }

  /// `t_c[k] = lambda_c^|k| RPE_c(k)`, `[D, L]` (causal) or `[D, 2L - 1]` (bidirectional):
  /// ``undecayed(length:)`` times ``decayPowers(length:)``. Throws
  /// ``KernelError/invalidLength(kernel:requested:)`` for `length < 1`.
  public func coefficients(length: Int) throws -> Tensor {
    try undecayed(length: length) * decayPowers(length: length)
  }

  /// `RPE_c(k)` without the decay, ``undecayed(length:)`` (same layout as ``coefficients(length:)``), so
  /// converters fold `lambda` into the poles.
  public func undecayedCoefficients(length: Int) throws -> Tensor? { try undecayed(length: length) }

  /// `lambda [D]` (a constant; for a learned decay, its current value).
  public var separableDecay: Tensor? { Tensor.withoutRecording { lambda.detached() } }
}

/// The last fixed-decay matrix, keyed by length (kernels may serve several threads).
private final class DecayCache: @unchecked Sendable {
  private let lock = NSLock()
  private var entry: (length: Int, powers: Tensor)?

  func value(length: Int, _ make: () -> Tensor) -> Tensor {
    lock.lock()
    defer { lock.unlock() }
    if let entry, entry.length == length { return entry.powers }
    let powers = make()
    entry = (length, powers)
    return powers
  }
}
