import LongConvTensors

/// A layer or model: an object whose parameters and buffers are found by reflection.
///
/// Every stored property that is a parameter tensor (``LongConvTensors/Tensor/requiresGradient``), a
/// `Module`, an optional of either, or an array of modules contributes its parameters under
/// its property name, joined with dots (`blocks.0.mixer.uProj.weight`). A type written from
/// existing ops and parameter tensors therefore needs no extra code to be trained or saved.
///
/// Two property wrappers name state that a plain property cannot:
/// - `@Buffer` marks a constant that belongs to the model's state (a fixed decay, the
///   positional features a checkpoint may hold): checkpoints save and load it beside the
///   parameters, and it is trained only when its tensor requires a gradient (it is then listed
///   as a parameter, not a buffer);
/// - `@Parameter(key:)` and `@Buffer(key:)` store a tensor under a key other than its Swift
///   name, so a property can say what it holds while checkpoints keep the names of the
///   reference implementation (`@Parameter(key: "D") var skipWeight`).
///
/// Other constant tensors (caches, derived values) are not state. ``Module/freeze(_:)`` keeps
/// chosen parameters out of training (``Module/trainableParameters()``) without removing
/// them from checkpoints.
public protocol Module: AnyObject {
  /// Parameters by dotted name, in declaration order. The default walks stored properties.
  func namedParameters() -> [(name: String, tensor: Tensor)]
}

/// What ``Parameter`` and ``Buffer`` wrap: a tensor, or an optional one (absent state is not
/// listed).
public protocol ModuleStateValue {
  /// The tensor, if there is one.
  var stateTensor: Tensor? { get }
}

extension Tensor: ModuleStateValue {
  /// Itself.
  public var stateTensor: Tensor? { self }
}

extension Optional: ModuleStateValue where Wrapped == Tensor {
  /// The wrapped tensor, or `nil`.
  public var stateTensor: Tensor? { self }
}

/// A parameter stored under `key` instead of its property name (see ``Module``).
@propertyWrapper
public struct Parameter<Value: ModuleStateValue>: @unchecked Sendable {
  /// The tensor (or optional tensor).
  public var wrappedValue: Value
  /// The name checkpoints use, or `nil` for the property's own name.
  public let key: String?
  /// Wraps `wrappedValue`, stored under `key`.
  public init(wrappedValue: Value, key: String? = nil) {
    self.wrappedValue = wrappedValue
    self.key = key
  }
}

/// A tensor that is part of a module's saved state (see ``Module``): a buffer while its
/// tensor is constant, a parameter when it requires a gradient; stored under `key` when given.
@propertyWrapper
public struct Buffer<Value: ModuleStateValue>: @unchecked Sendable {
  /// The tensor (or optional tensor).
  public var wrappedValue: Value
  /// The name checkpoints use, or `nil` for the property's own name.
  public let key: String?
  /// Wraps `wrappedValue`, stored under `key`.
  public init(wrappedValue: Value, key: String? = nil) {
    self.wrappedValue = wrappedValue
    self.key = key
  }
}

/// ``Parameter`` and ``Buffer`` seen by the reflection.
protocol ModuleStateWrapper {
  var key: String? { get }
  var stateTensor: Tensor? { get }
  /// Whether a constant tensor in it is a buffer (else it is not state at all).
  var holdsBuffer: Bool { get }
}

extension Parameter: ModuleStateWrapper {
  var stateTensor: Tensor? { wrappedValue.stateTensor }
  var holdsBuffer: Bool { false }
}

extension Buffer: ModuleStateWrapper {
  var stateTensor: Tensor? { wrappedValue.stateTensor }
  var holdsBuffer: Bool { true }
}

extension Module {
  /// The parameters found by reflection (see ``Module``).
  public func namedParameters() -> [(name: String, tensor: Tensor)] {
    ModuleReflection.parameters(of: self, prefix: "")
  }

  /// The constant `@Buffer` tensors by dotted name, in declaration order.
  public func namedBuffers() -> [(name: String, tensor: Tensor)] {
    ModuleReflection.buffers(of: self, prefix: "")
  }

  /// The parameters that train: ``namedParameters()`` without the frozen ones.
  public func trainableParameters() -> [(name: String, tensor: Tensor)] {
    namedParameters().filter { !$0.tensor.isFrozen }
  }

  /// Keeps the parameters whose names are in `names` (all when `nil`) out of training: they
  /// receive no gradient and optimizers built from ``trainableParameters()`` leave them alone.
  /// Throws ``ModuleError/unknownParameter(_:)`` for a name the module does not have.
  public func freeze(_ names: [String]? = nil) throws { try setFrozen(true, names) }

  /// Undoes ``freeze(_:)`` for `names` (all when `nil`).
  public func unfreeze(_ names: [String]? = nil) throws { try setFrozen(false, names) }

  private func setFrozen(_ frozen: Bool, _ names: [String]?) throws {
    let parameters = namedParameters()
    let chosen = Set(names ?? parameters.map(\.name))
    if let unknown = chosen.subtracting(parameters.map(\.name)).sorted().first {
      throw ModuleError.unknownParameter(unknown)
    }
    for (name, tensor) in parameters where chosen.contains(name) { tensor.isFrozen = frozen }
  }

  /// What a checkpoint holds: the parameters, then the buffers.
  public func namedState() -> [(name: String, tensor: Tensor)] { namedParameters() + namedBuffers() }

  /// This module (named `""`) and every module below it, by dotted name, parents first.
  public func namedModules() -> [(name: String, module: any Module)] {
    [("", self)] + ModuleReflection.modules(of: self, prefix: "")
  }

  /// The parameters alone, in the same order.
  public var parameters: [Tensor] { namedParameters().map(\.tensor) }

  /// Total number of trainable scalars.
  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

  /// Forgets every parameter's gradient.
  public func zeroGradients() { for p in parameters { p.zeroGradient() } }
}

/// A request a module cannot serve.
public enum ModuleError: Error, Equatable, CustomStringConvertible {
  /// No parameter has this name.
  case unknownParameter(String)

  /// The name and the problem.
  public var description: String {
    switch self {
    case .unknownParameter(let name): "no parameter named \(name)"
    }
  }
}

enum ModuleReflection {
  /// Which tensors a walk collects.
  enum Kind { case parameters, buffers }

  static func parameters(of value: Any, prefix: String) -> [(name: String, tensor: Tensor)] {
    walk(value, prefix: prefix, kind: .parameters)
  }

  static func buffers(of value: Any, prefix: String) -> [(name: String, tensor: Tensor)] {
    walk(value, prefix: prefix, kind: .buffers)
  }

  static func modules(of value: Any, prefix: String) -> [(name: String, module: any Module)] {
    var found: [(name: String, module: any Module)] = []
    func visit(_ value: Any, name: String) {
      switch value {
      case let module as Module:
        found.append((name, module))
        found += modules(of: module, prefix: name + ".")
      case let modules as [Module]:
        for (i, m) in modules.enumerated() { visit(m, name: "\(name).\(i)") }
      default:
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional, let inner = mirror.children.first?.value {
          visit(inner, name: name)
        }
      }
    }
    for child in Mirror(reflecting: value).children {
      guard let label = child.label else { continue }
      visit(child.value, name: prefix + label)
    }
    return found
  }

  private static func walk(_ value: Any, prefix: String, kind: Kind) -> [(name: String, tensor: Tensor)] {
    var found: [(name: String, tensor: Tensor)] = []
    for child in Mirror(reflecting: value).children {
      guard let label = child.label else { continue }
      if let wrapper = child.value as? any ModuleStateWrapper {
        // A wrapper's backing store is `_name`; its key, when given, replaces the name.
        guard let tensor = wrapper.stateTensor else { continue }
        let name = prefix + (wrapper.key ?? String(label.dropFirst()))
        let isParameter = tensor.requiresGradient
        if kind == .parameters ? isParameter : (!isParameter && wrapper.holdsBuffer) {
          found.append((name, tensor))
        }
        continue
      }
      // Lazy storage carries a `$__lazy_storage_$_` prefix.
      let name = label.hasPrefix("$__lazy_storage_$_") ? String(label.dropFirst(18)) : label
      collect(child.value, name: prefix + name, kind: kind, into: &found)
    }
    return found
  }

  private static func collect(
    _ value: Any, name: String, kind: Kind, into found: inout [(name: String, tensor: Tensor)]
  ) {
    switch value {
    case let tensor as Tensor:
      if kind == .parameters && tensor.requiresGradient { found.append((name, tensor)) }
    case let module as Module:
      let inner = kind == .parameters ? module.namedParameters() : module.namedBuffers()
      found += inner.map { (name + "." + $0.name, $0.tensor) }
    case let modules as [Module]:
      for (i, m) in modules.enumerated() {
        let inner = kind == .parameters ? m.namedParameters() : m.namedBuffers()
        found += inner.map { ("\(name).\(i).\($0.name)", $0.tensor) }
      }
    default:
      // Optionals: look inside.
      let mirror = Mirror(reflecting: value)
      if mirror.displayStyle == .optional, let inner = mirror.children.first?.value {
        collect(inner, name: name, kind: kind, into: &found)
      }
    }
  }
}

/// PyTorch's default initialisation for layers with `fanIn` inputs: uniform on
/// `[-1/sqrt(fanIn), 1/sqrt(fanIn)]`, as a parameter.
public func uniformParameter(_ shape: [Int], fanIn: Int, generator: inout SeededGenerator) -> Tensor {
  let bound = 1 / Float(Swift.max(fanIn, 1)).squareRoot()
  return Tensor.uniform(shape, low: -bound, high: bound, generator: &generator).requiringGradient()
}
