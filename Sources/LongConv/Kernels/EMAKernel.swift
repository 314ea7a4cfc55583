import Foundation
import LongConvLayers
import LongConvTensors

/// Mega's multi-dimensional damped exponential moving average (Ma et al., "Mega: Moving
/// Average Equipped Gated Attention", 2023), as a long-convolution kernel: a real diagonal
/// state-space model (docs/MODELS.md section 4).
///
/// Per channel `c`, `n = ndim` real modes:
///
/// ```
/// p_n  = sigmoid(delta[c, n])               damping-free weight of the input
/// q_n  = 1 - p_n sigmoid(alpha[c, n])       the decay, in (0, 1)
/// K[l] = sum_n s gamma[c, n] p_n beta[c, n] q_n^l,   l = 0 ... L-1,   s = sqrt(1 / ndim)
/// y[i] = sum_k K[k] x[i - k] + omega[c] x[i]
/// ```
///
/// The fixed scale `s = sqrt(1/ndim)` is Mega's `self.scale` (folded into `gamma` in
/// docs/MODELS.md's `K[l] = sum_n gamma_n p_n beta_n q_n^l`). `q_n^l` is computed as
/// `exp(l log q_n)` over a `[rows, ndim, L]` broadcast and reduced over modes by a batched
/// product, so every parameter gets its gradient from the ordinary pullbacks. (As in Mega,
/// `q` rounding to exactly 0 in Float32, which needs `delta` and `alpha` both above about 17,
/// would make `log q` infinite and the lag-0 coefficient NaN.)
///
/// Step form (exact, `ndim` real states per channel): `s = q * s + u`,
/// `y = sum_n (s gamma p beta)_n s_n + omega u`; ``stateSpace()`` returns the real poles `q`
/// and residues `s gamma p beta`.
///
/// **Bidirectional** (Mega's `bidirectional=True`): the parameters `delta`, `alpha`, `beta`,
/// `gamma` have `2D` rows, rows `0 ..< D` the forward kernel `K` and rows `D ..< 2D` the
/// backward kernel `Kb`; as in Mega both include lag 0:
/// `t[k] = K[k]` (`k > 0`), `t[0] = K[0] + Kb[0]`, `t[-k] = Kb[k]` (`k > 0`), giving `[D, 2L - 1]`
/// with lags `-(L-1) ... L-1`. ``stateSpace()`` is `nil` then.
///
/// Parameter shapes are Mega's without its trailing unit axis: `[rows, ndim]` instead of
/// `[rows, ndim, 1]` for `delta`, `alpha`, `beta`.
///
/// Initialisation (as Mega): `delta`, `alpha` normal with std 0.2; `beta` the alternating
/// signs `1, -1, 1, ...` plus normal noise with std 0.02; `gamma` and `omega` standard normal.
///
/// Config (`type: "ema"`):
/// - `ndim` (default 16): real modes per channel, at least 1;
/// - `skip` (default `true`): whether the kernel has Mega's skip `omega`.
///
/// - Complexity: `O(D ndim L)` time and memory for ``coefficients(length:)``.
public final class EMAKernel: ConfigurableKernel {
  /// The config `type` of this kernel: `"ema"`.
  public static let typeName = "ema"

  /// `[rows, ndim]`, `rows = D` (causal) or `2D` (bidirectional).
  public let delta: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor
  /// `[D]`: the skip, when present.
  public let omega: Tensor?
  /// Channels `D`: the parameter rows (causal) or half of them (bidirectional).
  public let channels: Int
  /// Causal (`D` rows, lags `0 ... L-1`) or bidirectional (`2D` rows, lags `-(L-1) ... L-1`).
  public let direction: ConvolutionDirection

  /// A kernel from its parameter tensors (for example loaded from a checkpoint).
  public init(
    delta: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor, omega: Tensor?,
    direction: ConvolutionDirection = .causal
  ) {
    let rows = delta.shape.first ?? 0
    let ndim = delta.shape.last ?? 0
    let channels = direction == .causal ? rows : rows / 2
    precondition(
      delta.rank == 2 && ndim >= 1 && channels >= 1 && (direction == .causal || rows % 2 == 0),
      "EMAKernel: delta \(delta.shape) for a \(direction.rawValue) kernel")
    for (name, t) in [("alpha", alpha), ("beta", beta), ("gamma", gamma)] {
      precondition(t.shape == delta.shape, "EMAKernel: \(name) is \(t.shape), expected \(delta.shape)")
    }
    if let omega {
      precondition(omega.shape == [channels], "EMAKernel: omega \(omega.shape), expected [\(channels)]")
    }
    self.delta = delta
    self.alpha = alpha
    self.beta = beta
    self.gamma = gamma
    self.omega = omega
    self.channels = channels
    self.direction = direction
  }

  /// A freshly initialised kernel of `channels` channels and `ndim` modes each.
  public convenience init(
    channels: Int, ndim: Int = 16, skip: Bool = true, direction: ConvolutionDirection = .causal,
    generator: inout SeededGenerator
  ) {
    precondition(channels >= 1 && ndim >= 1, "EMAKernel: \(channels) channels, ndim \(ndim)")
    let rows = direction == .causal ? channels : 2 * channels
    let shape = [rows, ndim]
    let delta = Tensor.normal(shape, std: 0.2, generator: &generator)
    let alpha = Tensor.normal(shape, std: 0.2, generator: &generator)
    let signs = (0..<rows * ndim).map { Float($0 % ndim % 2 == 0 ? 1 : -1) }
    let beta =
      Tensor.normal(shape, std: 0.02, generator: &generator) + (try! Tensor(shape: shape, scalars: signs))
    let gamma = Tensor.normal(shape, generator: &generator)
    let omega = skip ? Tensor.normal([channels], generator: &generator).requiringGradient() : nil
    self.init(
      delta: delta.requiringGradient(), alpha: alpha.requiringGradient(), beta: beta.requiringGradient(),
      gamma: gamma.requiringGradient(), omega: omega, direction: direction)
  }

  /// Builds the kernel from its config object (keys and defaults above), for `context`'s channels, direction and maximum length.
  public convenience init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator)
    throws
  {
    self.init(
      channels: context.channels, ndim: try config.int("ndim", default: 16, minimum: 1),
      skip: try config.bool("skip", default: true), direction: context.direction, generator: &generator)
  }

  /// Real modes per channel.
  public var ndim: Int { delta.shape[1] }
  /// The skip `omega`, when present.
  public var skip: Tensor? { omega }
  /// Mega's fixed scale of `gamma`, `sqrt(1 / ndim)`.
  public var scale: Float { (1 / Float(ndim)).squareRoot() }

  /// The kernel of every row (`[rows, length]`), causal lags `0 ..< length`.
  private func rowKernels(length: Int) -> Tensor {
    let (rows, n) = (delta.shape[0], ndim)
    let p = delta.sigmoid()
    let q = 1 - p * alpha.sigmoid()
    let lags = Tensor.arange(0, Float(length)).reshaped([1, 1, length])
    let vandermonde = (q.log().reshaped([rows, n, 1]) * lags).exp()
    let weights = (scale * gamma * p * beta).reshaped([rows, 1, n])
    return weights.matmul(vandermonde).reshaped([rows, length])
  }

  /// `[D, L]`, `K[l] = sum_n s gamma p beta q^l` (causal), or `[D, 2L - 1]`: `Kb[L-1] ... Kb[1]`, then
  /// `K[0] + Kb[0]`, then `K[1] ... K[L-1]` (bidirectional); the skip `omega` is not included. Throws
  /// ``KernelError/invalidLength(kernel:requested:)`` for `length < 1`.
  public func coefficients(length: Int) throws -> Tensor {
    guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
    let k = rowKernels(length: length)
    guard direction == .bidirectional else { return k }
    let forward = k.slice(axis: 0, 0..<channels)
    let backward = k.slice(axis: 0, channels..<2 * channels)
    let lagZero = forward.slice(axis: 1, 0..<1) + backward.slice(axis: 1, 0..<1)
    guard length > 1 else { return lagZero }
    return Tensor.concatenate(
      [backward.slice(axis: 1, 1..<length).flipped(axis: 1), lagZero, forward.slice(axis: 1, 1..<length)],
      axis: 1)
  }

  /// The exact recurrence of the causal kernel in Double: real poles `q`, residues
  /// `scale gamma p beta`, skip `omega`. `nil` for a bidirectional kernel.
  public func stateSpace() -> DiagonalStateSpace? {
    guard direction == .causal else { return nil }
    let n = ndim
    let (delta, alpha, beta, gamma) = (
      self.delta.scalars, self.alpha.scalars, self.beta.scalars, self.gamma.scalars
    )
    func sigmoid(_ x: Float) -> Double { 1 / (1 + Foundation.exp(-Double(x))) }
    let scale = (1 / Double(n)).squareRoot()
    var poles = [[Double]]()
    var residues = [[Double]]()
    for c in 0..<channels {
      let range = c * n..<(c + 1) * n
      poles.append(range.map { 1 - sigmoid(delta[$0]) * sigmoid(alpha[$0]) })
      residues.append(range.map { scale * Double(gamma[$0]) * sigmoid(delta[$0]) * Double(beta[$0]) })
    }
    let zeros = [[Double]](repeating: [Double](repeating: 0, count: n), count: channels)
    return DiagonalStateSpace(
      polesReal: poles, polesImaginary: zeros, residuesReal: residues, residuesImaginary: zeros,
      skip: omega?.scalars.map(Double.init))
  }
}
