import LongConvTensors

/// An element-wise nonlinearity chosen by name in a config: the one place that maps config
/// names to formulas, for tensors (training and the module path) and for single values (the
/// fused decoding step).
///
/// | name | formula |
/// |---|---|
/// | `id` | `x` |
/// | `relu` | `max(x, 0)` |
/// | `gelu` | `x Phi(x)`, exact normal CDF (PyTorch's `nn.GELU()`) |
/// | `gelu_tanh` | `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (`approximate='tanh'`) |
/// | `silu` | `x sigmoid(x)` |
/// | `sigmoid` | `1 / (1 + e^-x)` |
/// | `tanh` | `tanh(x)` |
public enum Activation: String, Sendable, CaseIterable {
  /// `x`.
  case identity = "id"
  /// `max(x, 0)`.
  case relu
  /// `x Phi(x)` with the exact normal CDF.
  case gelu
  /// GELU with the tanh approximation.
  case geluTanh = "gelu_tanh"
  /// `x sigmoid(x)`.
  case silu
  /// `1 / (1 + e^-x)`.
  case sigmoid
  /// Hyperbolic tangent.
  case tanh

  /// The activation of a config name, also accepting the aliases PyTorch code uses
  /// (`identity`, `linear` for `id`; `swish` for `silu`), or `nil`.
  public init?(configName name: String) {
    switch name {
    case "identity", "linear": self = .identity
    case "swish": self = .silu
    default: self.init(rawValue: name)
    }
  }

  /// Applies the activation element-wise (differentiable).
  public func callAsFunction(_ x: Tensor) -> Tensor {
    switch self {
    case .identity: x
    case .relu: x.relu()
    case .gelu: x.gelu()
    case .geluTanh: x.geluTanh()
    case .silu: x.silu()
    case .sigmoid: x.sigmoid()
    case .tanh: x.tanh()
    }
  }

  /// The same formula on one value, for loops over raw buffers.
  @inline(__always)
  public func value(_ x: Float) -> Float {
    switch self {
    case .identity: x
    case .relu: ReLUFunction.value(x)
    case .gelu: GELUFunction.value(x)
    case .geluTanh: GELUTanhFunction.value(x)
    case .silu: SiLUFunction.value(x)
    case .sigmoid: SigmoidFunction.value(x)
    case .tanh: TanhFunction.value(x)
    }
  }
}
