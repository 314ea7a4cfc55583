import LongConvTensors

/// Which normalisation a block uses (config names in snake case).
public enum NormalizationKind: String, Sendable, CaseIterable {
  /// `x / (||x|| d^(-1/2) + eps)`, no parameters (TNN); `eps` 1e-8 by default.
  case simpleRMSNorm = "simple_rms_norm"
  /// `x / sqrt(mean(x^2) + eps) * w`; `eps` 1e-6 by default.
  case rmsNorm = "rms_norm"
  /// `(x - mean) / sqrt(var + eps) * w + b`; `eps` 1e-5 by default.
  case layerNorm = "layer_norm"

  /// The row formula with `epsilon` (``LongConvTensors/RowNormalization``).
  public func formula(epsilon: Float) -> RowNormalization {
    switch self {
    case .simpleRMSNorm: .simpleRMS(epsilon: epsilon)
    case .rmsNorm: .rms(epsilon: epsilon)
    case .layerNorm: .layer(epsilon: epsilon)
    }
  }

  /// The `eps` of the formula unless a config sets another (`norm_epsilon`).
  public var defaultEpsilon: Float {
    switch self {
    case .simpleRMSNorm: 1e-8
    case .rmsNorm: 1e-6
    case .layerNorm: 1e-5
    }
  }
}

/// A normalisation over the last axis, with its parameters when it has any.
public final class Normalization: Module {
  /// Which normalisation.
  public let kind: NormalizationKind
  /// `[D]` scale (ones at first), `nil` for ``NormalizationKind/simpleRMSNorm``.
  public let weight: Tensor?
  /// `[D]` shift (zeros at first), only for ``NormalizationKind/layerNorm``.
  public let bias: Tensor?
  /// The `eps` of the formula (``NormalizationKind/defaultEpsilon`` unless set).
  public let epsilon: Float

  /// The row formula this norm applies.
  public var formula: RowNormalization { kind.formula(epsilon: epsilon) }

  /// A norm of `kind` over the last axis of width `width`, with `epsilon` in place of the
  /// kind's default.
  public init(_ kind: NormalizationKind, width: Int, epsilon: Float? = nil) {
    self.kind = kind
    self.epsilon = epsilon ?? kind.defaultEpsilon
    weight = kind == .simpleRMSNorm ? nil : Tensor.ones([width]).requiringGradient()
    bias = kind == .layerNorm ? Tensor.zeros([width]).requiringGradient() : nil
  }

  /// `[..., D] -> [..., D]` (formulas on ``NormalizationKind``).
  public func callAsFunction(_ x: Tensor) -> Tensor {
    x.normalized(formula, weight: weight, bias: bias)
  }
}
