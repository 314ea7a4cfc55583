import Foundation

/// A scalar function applied element-wise, with its derivative for the pullback: what
/// ``Tensor/applying(_:)`` runs, and what an activation of a layer is made of.
public protocol ElementwiseFunction: SendableMetatype {
  /// The function's name (an activation's config name).
  static var name: String { get }
  /// `y = f(x)`.
  static func value(_ x: Float) -> Float
  /// `dy/dx` at `x`, given `y = f(x)` too (cheaper for exp, sigmoid, tanh).
  static func derivative(_ x: Float, _ y: Float) -> Float
  /// `x.applying(Self.self)` (a requirement, so that a metatype held as
  /// `any ElementwiseFunction.Type` reaches the generic op).
  static func applied(to x: Tensor) -> Tensor
  /// The same function and derivative over whole arrays in vector code (``VectorMath``), used by
  /// ``Tensor/applying(_:)`` when present; nil (the default): `value` and `derivative` per element.
  static var arrayKernels: ElementwiseArrayKernels? { get }
}

extension ElementwiseFunction {
  /// `x.applying(Self.self)`.
  public static func applied(to x: Tensor) -> Tensor { x.applying(Self.self) }
  /// None: element by element.
  public static var arrayKernels: ElementwiseArrayKernels? { nil }
}

extension Tensor {
  /// Applies `F` element-wise and records `g * F'(x)` as the pullback.
  public func applying<F: ElementwiseFunction>(_: F.Type) -> Tensor {
    let out = TensorStorage(uninitializedCount: count)
    let x = SendablePointer(storage.base)
    let y = SendablePointer(out.base)
    let kernels = F.arrayKernels
    parallelRanges(count, grain: 1 << 14) { range in
      if let kernels {
        kernels.forward(x.base + range.lowerBound, y.base + range.lowerBound, range.count)
      } else {
        for i in range { y.base[i] = F.value(x.base[i]) }
      }
    }
    return Tensor.recorded(F.name, shape: shape, storage: out, inputs: [self]) { [self] g in
      let dx = TensorStorage(uninitializedCount: g.count)
      let (gp, xp, yp, dp) = (
        SendablePointer(g.storage.base), SendablePointer(storage.base), SendablePointer(out.base),
        SendablePointer(dx.base)
      )
      parallelRanges(g.count, grain: 1 << 14) { range in
        if let kernels {
          let i = range.lowerBound
          kernels.backward(gp.base + i, xp.base + i, dp.base + i, range.count)
        } else {
          for i in range { dp.base[i] = gp.base[i] * F.derivative(xp.base[i], yp.base[i]) }
        }
      }
      return [Tensor(shape: shape, storage: dx)]
    }
  }

  /// `max(x, 0)`.
  public func relu() -> Tensor { applying(ReLUFunction.self) }
  /// `x * sigmoid(x)` (also called swish).
  public func silu() -> Tensor { applying(SiLUFunction.self) }
  /// `x * Phi(x)` with the exact normal CDF `Phi` (PyTorch's default GELU).
  public func gelu() -> Tensor { applying(GELUFunction.self) }
  /// GELU with the tanh approximation of the normal CDF, PyTorch's `gelu(approximate='tanh')`:
  /// `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
  public func geluTanh() -> Tensor { applying(GELUTanhFunction.self) }
  /// `1 / (1 + exp(-x))`.
  public func sigmoid() -> Tensor { applying(SigmoidFunction.self) }
  /// Hyperbolic tangent.
  public func tanh() -> Tensor { applying(TanhFunction.self) }
  /// Sine.
  public func sin() -> Tensor { applying(SinFunction.self) }
  /// Cosine.
  public func cos() -> Tensor { applying(CosFunction.self) }
  /// `e^x`.
  public func exp() -> Tensor { applying(ExpFunction.self) }
  /// Natural logarithm.
  public func log() -> Tensor { applying(LogFunction.self) }
  /// `log(1 + e^x)`, computed without overflow.
  public func softplus() -> Tensor { applying(SoftplusFunction.self) }
  /// `|x|`; its derivative is taken as 0 at 0.
  public func abs() -> Tensor { applying(AbsFunction.self) }
  /// Square root.
  public func sqrt() -> Tensor { applying(SqrtFunction.self) }
  /// `x^2`.
  public func squared() -> Tensor { applying(SquareFunction.self) }
  /// `-1, 0, 1` by the sign of `x`; a constant for differentiation (derivative 0).
  public func sign() -> Tensor { applying(SignFunction.self) }
}

/// `x`: the identity, for layers whose activation is none.
public enum IdentityFunction: ElementwiseFunction {
  /// The config name.
  public static let name = "id"
  /// `f(x)`.
  @inlinable @inline(__always) public static func value(_ x: Float) -> Float { x }
  /// `f'(x)`.
  @inline(__always) public static func derivative(_ x: Float, _ y: Float) -> Float { 1 }
}

/// `max(x, 0)`.
public enum ReLUFunction: ElementwiseFunction {
  /// The config name.
  public static let name = "relu"
  /// `f(x)`.
  @inlinable public static func value(_ x: Float) -> Float { x > 0 ? x : 0 }
  /// `f'(x)`.
  public static func derivative(_ x: Float, _ y: Float) -> Float { x > 0 ? 1 : 0 }
}

/// `1 / (1 + e^-x)`.
public enum SigmoidFunction: ElementwiseFunction {
  /// The config name.
  public static let name = "sigmoid"
  /// `f(x)`.
  @inlinable public static func value(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }
  /// `f'(x)`.
  public static func derivative(_ x: Float, _ y: Float) -> Float { y * (1 - y) }
}

/// `x sigmoid(x)`, through ``FastMath`` so the loops vectorise (SiLU sits on the widest
/// activations of GTU and GLU layers).
public enum SiLUFunction: ElementwiseFunction {
  /// The config name.
  public static let name = "silu"
  /// `f(x)`.
  @inlinable @inline(__always) public static func value(_ x: Float) -> Float { x * FastMath.sigmoid(x) }
  /// `f'(x)`.
  @inline(__always) public static func derivative(_ x: Float, _ y: Float) -> Float {
    let s = FastMath.sigmoid(x)
    return s * (1 + x * (1 - s))
  }
  /// The same in vector code (``VectorMath``).
  public static var arrayKernels: ElementwiseArrayKernels? {
    ElementwiseArrayKernels(forward: VectorMath.best.silu, backward: VectorMath.best.silu_backward)
  }
}

/// `x Phi(x)` with the exact normal CDF.
public enum GELUFunction: ElementwiseFunction {
  /// The config name.
  public static let name = "gelu"
  /// `f(x)`.
  @inlinable public static func value(_ x: Float) -> Float {
    0.5 * x * (1 + erf(x * 0.707_106_781_186_547_5))
  }
  /// `f'(x)`.
  public static func derivative(_ x: Float, _ y: Float) -> Float {
    let cdf = 0.5 * (1 + erf(x * 0.707_106_781_186_547_5))
    let pdf = Foundation.exp(-0.5 * x * x) * 0.398_942_280_401_432_7
    return cdf + x * pdf
  }
}

/// GELU with the tanh approximation (`approximate='tanh'` in PyTorch, safari's MLP):
/// `y = x/2 (1 + tanh(u))`, `u = a (x + b x^3)`, `a = sqrt(2/pi)`, `b = 0.044715`.
///
/// Computed as `y = x s` with `s = (1 + tanh(u))/2 = sigmoid(2u)` (the same function, with no
/// cancellation near `1 + tanh(u) = 0`), through ``FastMath`` so the loops vectorise (libm's
/// `tanhf` took a third of a Hyena recall model's training step);
/// `dy/dx = s + 2 x s (1 - s) a (1 + 3 b x^2)`.
public enum GELUTanhFunction: ElementwiseFunction {
  /// The config name.
  public static let name = "gelu_tanh"
  @usableFromInline static let a: Float = 0.797_884_560_802_865_4
  @usableFromInline static let b: Float = 0.044_715
  /// `sigmoid(2u) = (1 + tanh(u))/2`.
  @inlinable @inline(__always) static func halfOnePlusTanh(_ x: Float) -> Float {
    FastMath.sigmoid(2 * a * (x + b * x * x * x))
  }
  /// `f(x)`.
  @inlinable @inline(__always) public static func value(_ x: Float) -> Float { x * halfOnePlusTanh(x) }
  /// `f'(x)`.
  @inlinable @inline(__always) public static func derivative(_ x: Float, _ y: Float) -> Float {
    let s = halfOnePlusTanh(x)
    return s + 2 * x * s * (1 - s) * a * (1 + 3 * b * x * x)
  }
  /// The same in vector code (``VectorMath``).
  public static var arrayKernels: ElementwiseArrayKernels? {
    ElementwiseArrayKernels(forward: VectorMath.best.gelu_tanh, backward: VectorMath.best.gelu_tanh_backward)
  }
}

/// Hyperbolic tangent.
public enum TanhFunction: ElementwiseFunction {
  /// The config name.
  public static let name = "tanh"
  /// `f(x)`.
  @inlinable public static func value(_ x: Float) -> Float { Foundation.tanh(x) }
  /// `f'(x)`.
  public static func derivative(_ x: Float, _ y: Float) -> Float { 1 - y * y }
}

enum SinFunction: ElementwiseFunction {
  static let name = "sin"
  static func value(_ x: Float) -> Float { Foundation.sin(x) }
  static func derivative(_ x: Float, _ y: Float) -> Float { Foundation.cos(x) }
}

enum CosFunction: ElementwiseFunction {
  static let name = "cos"
  static func value(_ x: Float) -> Float { Foundation.cos(x) }
  static func derivative(_ x: Float, _ y: Float) -> Float { -Foundation.sin(x) }
}

enum ExpFunction: ElementwiseFunction {
  static let name = "exp"
  static func value(_ x: Float) -> Float { Foundation.exp(x) }
  static func derivative(_ x: Float, _ y: Float) -> Float { y }
}

enum LogFunction: ElementwiseFunction {
  static let name = "log"
  static func value(_ x: Float) -> Float { Foundation.log(x) }
  static func derivative(_ x: Float, _ y: Float) -> Float { 1 / x }
}

enum SoftplusFunction: ElementwiseFunction {
  static let name = "softplus"
  static func value(_ x: Float) -> Float { Swift.max(x, 0) + log1p(Foundation.exp(-Swift.abs(x))) }
  static func derivative(_ x: Float, _ y: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }
}

enum AbsFunction: ElementwiseFunction {
  static let name = "abs"
  static func value(_ x: Float) -> Float { Swift.abs(x) }
  static func derivative(_ x: Float, _ y: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) }
}

enum SqrtFunction: ElementwiseFunction {
  static let name = "sqrt"
  static func value(_ x: Float) -> Float { x.squareRoot() }
  static func derivative(_ x: Float, _ y: Float) -> Float { 0.5 / y }
}

enum SquareFunction: ElementwiseFunction {
  static let name = "squared"
  static func value(_ x: Float) -> Float { x * x }
  static func derivative(_ x: Float, _ y: Float) -> Float { 2 * x }
}

enum SignFunction: ElementwiseFunction {
  static let name = "sign"
  static func value(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) }
  static func derivative(_ x: Float, _ y: Float) -> Float { 0 }
}
