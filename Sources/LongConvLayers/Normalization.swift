import LongConvTensors

/// Which normalisation a block uses (config names in snake case).
public enum NormalizationKind: String, Sendable, CaseIterable {
  /// `x / (||x|| d^(-1/2) + 1e-8)`, no parameters (TNN).
  case simpleRMSNorm = "simple_rms_norm"
  /// `x / sqrt(mean(x^2) + 1e-6) * w`.
  case rmsNorm = "rms_norm"
  /// `(x - mean) / sqrt(var + 1e-5) * w + b`.
  case layerNorm = "layer_norm"
}

/// A normalisation over the last axis, with its parameters when it has any.
public final class Normalization: Module {
  /// Which normalisation.
  public let kind: NormalizationKind
  /// `[D]` scale (ones at first), `nil` for ``NormalizationKind/simpleRMSNorm``.
  public let weight: Tensor?
  /// `[D]` shift (zeros at first), only for ``NormalizationKind/layerNorm``.
  public let bias: Tensor?

  /// A norm of `kind` over the last axis of width `width`.
  public init(_ kind: NormalizationKind, width: Int) {
    self.kind = kind
    weight = kind == .simpleRMSNorm ? nil : Tensor.ones([width]).requiringGradient()
    bias = kind == .layerNorm ? Tensor.zeros([width]).requiringGradient() : nil
  }

  /// `[..., D] -> [..., D]` (formulas on ``NormalizationKind``).
  public func callAsFunction(_ x: Tensor) -> Tensor {
    switch kind {
    case .simpleRMSNorm: x.simpleRMSNorm()
    case .rmsNorm: x.rmsNorm(weight: weight)
    case .layerNorm: x.layerNorm(weight: weight, bias: bias)
    }
  }
}
