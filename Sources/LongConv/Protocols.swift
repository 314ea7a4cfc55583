import LongConvLayers
import LongConvTensors

/// A depthwise long-convolution kernel: for a sequence length `L` it produces, per channel
/// `c` and lag `k`, a coefficient `t_c[k]`, so that a mixer computes
/// `y[i, c] = sum_k t_c[k] x[i - k, c] (+ skip_c x[i, c])` (docs/MODELS.md section 1).
///
/// A kernel only produces coefficients; the FFT engine (`Tensor.longConvolution`) applies
/// them. Coefficients are a differentiable tensor built from the kernel's parameters, so a
/// kernel written with existing ops gets its gradients for free.
///
/// Contract:
/// - ``coefficients(length:)`` returns `[D, L]` for `direction == .causal` (lags `0 ... L-1`)
///   and `[D, 2L - 1]` for `.bidirectional` (lags `-(L-1) ... L-1`, negative lags first);
/// - a length the kernel cannot produce throws ``KernelError``, never traps;
/// - ``separableDecay``, when not `nil`, is `gamma [D]` with `t_c[k] = gamma_c^|k| r_c[k]` and
///   no nonlinearity after the decay (ETSC folds it into the poles);
/// - ``stateSpace()``, when not `nil`, is an exact diagonal realisation of the causal kernel.
public protocol LongConvKernel: Module {
  /// Channels `D`.
  var channels: Int { get }
  /// The lags this instance produces.
  var direction: ConvolutionDirection { get }
  /// Coefficients for sequences of length `length` (see the contract above).
  func coefficients(length: Int) throws -> Tensor
  /// An optional per-channel skip `[D]`, added as `skip * x`.
  var skip: Tensor? { get }
  /// `gamma [D]` when the kernel is `gamma^|k| r[k]`.
  var separableDecay: Tensor? { get }
  /// `r` (same layout as ``coefficients(length:)``) when ``separableDecay`` is set, computed
  /// without the decay, so converters never divide by a vanishing `gamma^k`. `nil` (the
  /// default) means converters work on the decayed coefficients and do not fold the decay.
  func undecayedCoefficients(length: Int) throws -> Tensor?
  /// An exact diagonal state-space form of the causal kernel, if the kernel has one.
  func stateSpace() -> DiagonalStateSpace?
}

extension LongConvKernel {
  /// No skip by default.
  public var skip: Tensor? { nil }
  /// No separable decay by default.
  public var separableDecay: Tensor? { nil }
  /// No undecayed coefficients by default (there is no separable decay).
  public func undecayedCoefficients(length: Int) throws -> Tensor? { nil }
  /// No state-space form by default.
  public func stateSpace() -> DiagonalStateSpace? { nil }

  /// The long convolution of `x [B, L, D]` with this kernel (and its skip).
  public func convolve(_ x: Tensor) throws -> Tensor {
    precondition(
      x.rank == 3 && x.shape[2] == channels, "convolve: input \(x.shape) for a kernel of \(channels) channels"
    )
    return x.longConvolution(kernel: try coefficients(length: x.shape[1]), direction: direction, skip: skip)
  }
}

/// A diagonal state-space system per channel, in Double:
/// `s_i = poles * s_(i-1) + x_i`, `y_i = Re(sum_n residues_n s_i,n) + skip * x_i`, so that the
/// causal kernel is `t[k] = Re(sum_n residues_n poles_n^k)` (plus `skip` at lag 0).
public struct DiagonalStateSpace: Sendable, Equatable {
  /// Exact equality of every pole, residue and skip value.
  public static func == (a: Self, b: Self) -> Bool {
    a.polesReal == b.polesReal && a.polesImaginary == b.polesImaginary && a.residuesReal == b.residuesReal
      && a.residuesImaginary == b.residuesImaginary && a.skip == b.skip
  }
  /// `[channels][states]` parts of the complex poles and residues.
  public var polesReal: [[Double]], polesImaginary: [[Double]]
  /// `[channels][states]` real and imaginary parts of the complex residues.
  public var residuesReal: [[Double]], residuesImaginary: [[Double]]
  /// `[channels]`: the direct term `skip * x_i`, or `nil` for none.
  public var skip: [Double]?

  /// A system from its parts; every array is `[channels][states]` and the skip `[channels]`.
  public init(
    polesReal: [[Double]], polesImaginary: [[Double]], residuesReal: [[Double]],
    residuesImaginary: [[Double]],
    skip: [Double]?
  ) {
    self.polesReal = polesReal
    self.polesImaginary = polesImaginary
    self.residuesReal = residuesReal
    self.residuesImaginary = residuesImaginary
    self.skip = skip
  }
}

/// Why a kernel cannot produce coefficients.
public enum KernelError: Error, Equatable, CustomStringConvertible {
  /// The kernel is defined only up to `maximum` positions.
  case lengthBeyondMaximum(kernel: String, requested: Int, maximum: Int)
  /// A length below 1.
  case invalidLength(kernel: String, requested: Int)

  /// The kernel, the length asked for and, beyond the maximum, the `max_length` to raise.
  public var description: String {
    switch self {
    case .lengthBeyondMaximum(let kernel, let requested, let maximum):
      "\(kernel) kernel: cannot produce length \(requested); it is defined up to max_length \(maximum) (raise max_length in its config)"
    case .invalidLength(let kernel, let requested): "\(kernel) kernel: length \(requested) < 1"
    }
  }
}

/// A token mixer: `[B, L, D] -> [B, L, D]`, mixing along the sequence.
public protocol SequenceMixer: Module {
  /// Width `D` of its input and output.
  var width: Int { get }
  /// `[B, L, D] -> [B, L, D]`; throws when a kernel cannot serve the length `L`.
  func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// A sequence mixer built around one long-convolution kernel (GTU, Hyena, the SSM block).
///
/// Tools that look at kernels reach them through this protocol; for an `any SequenceMixer`,
/// ``SequenceMixer/longConvKernel`` opens it.
public protocol LongConvMixer: SequenceMixer {
  /// The type of ``kernel``.
  associatedtype Kernel: LongConvKernel
  /// The mixer's long-convolution kernel.
  var kernel: Kernel { get }
}

extension SequenceMixer {
  /// The mixer's long-convolution kernel, or `nil` when the mixer is not a ``LongConvMixer``.
  public var longConvKernel: (any LongConvKernel)? { (self as? any LongConvMixer)?.kernel }
}

/// A channel mixer: `[..., D] -> [..., D]`, position by position.
public protocol ChannelMixer: Module {
  /// Width `D` of its input and output.
  var width: Int { get }
  /// `[..., D] -> [..., D]`, each position independently.
  func callAsFunction(_ x: Tensor) -> Tensor
}
