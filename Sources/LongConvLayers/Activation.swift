import LongConvTensors
import Synchronization

/// An element-wise nonlinearity chosen by name in a config: the one place that maps config
/// names to formulas, for tensors (training and the module path, through
/// ``LongConvTensors/Tensor/applying(_:)``) and for raw buffers (the fused decoding step runs
/// ``function``'s `value` in its loops), both from the same ``LongConvTensors/ElementwiseFunction``.
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
///
/// A new activation is one type: conform it to ``LongConvTensors/ElementwiseFunction`` and call
/// ``register(_:)``; configs then name it (`"activation": "<its name>"`) in every layer that
/// takes an activation, and the fused decoding step runs it too.
public struct Activation: Hashable, Sendable, CustomStringConvertible {
  /// The config name.
  public let rawValue: String
  /// The formula.
  public let function: any ElementwiseFunction.Type

  /// The activation of `F`, named `F.name`.
  public init<F: ElementwiseFunction>(_ function: F.Type) {
    rawValue = F.name
    self.function = function
  }

  /// The registered activation named `rawValue`, or `nil`.
  public init?(rawValue: String) {
    guard let found = Self.registry.withLock({ $0[rawValue] }) else { return nil }
    self = found
  }

  /// The activation of a config name, also accepting the aliases PyTorch code uses
  /// (`identity`, `linear` for `id`; `swish` for `silu`), or `nil`.
  public init?(configName name: String) {
    switch name {
    case "identity", "linear": self = .identity
    case "swish": self = .silu
    default: self.init(rawValue: name)
    }
  }

  /// `x`.
  public static let identity = Activation(IdentityFunction.self)
  /// `max(x, 0)`.
  public static let relu = Activation(ReLUFunction.self)
  /// `x Phi(x)` with the exact normal CDF.
  public static let gelu = Activation(GELUFunction.self)
  /// GELU with the tanh approximation.
  public static let geluTanh = Activation(GELUTanhFunction.self)
  /// `x sigmoid(x)`.
  public static let silu = Activation(SiLUFunction.self)
  /// `1 / (1 + e^-x)`.
  public static let sigmoid = Activation(SigmoidFunction.self)
  /// Hyperbolic tangent.
  public static let tanh = Activation(TanhFunction.self)

  private static let registry = Mutex<[String: Activation]>(
    Dictionary(
      uniqueKeysWithValues: [identity, relu, gelu, geluTanh, silu, sigmoid, tanh].map { ($0.rawValue, $0) }))

  /// Every registered activation, by name.
  public static var allCases: [Activation] {
    registry.withLock { $0.values.sorted { $0.rawValue < $1.rawValue } }
  }

  /// Makes `F` available to configs under `F.name`. Registering the same type again does
  /// nothing; another type under a taken name throws ``ActivationError/nameTaken(_:)``.
  @discardableResult
  public static func register<F: ElementwiseFunction>(_ function: F.Type) throws -> Activation {
    let activation = Activation(function)
    try registry.withLock { table in
      if let existing = table[F.name] {
        guard ObjectIdentifier(existing.function) == ObjectIdentifier(function) else {
          throw ActivationError.nameTaken(F.name)
        }
        return
      }
      table[F.name] = activation
    }
    return activation
  }

  /// Applies the activation element-wise (differentiable).
  public func callAsFunction(_ x: Tensor) -> Tensor {
    if ObjectIdentifier(function) == ObjectIdentifier(IdentityFunction.self) { return x }
    return function.applied(to: x)
  }

  /// The config name.
  public var description: String { rawValue }

  /// Equal when the names and formulas are.
  public static func == (a: Activation, b: Activation) -> Bool {
    a.rawValue == b.rawValue && ObjectIdentifier(a.function) == ObjectIdentifier(b.function)
  }

  /// By name.
  public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
}

/// Why an activation cannot be registered.
public enum ActivationError: Error, Equatable, CustomStringConvertible {
  /// Another function is registered under this name.
  case nameTaken(String)

  /// The name and the problem.
  public var description: String {
    switch self {
    case .nameTaken(let name): "an activation named \"\(name)\" is already registered (another function)"
    }
  }
}
