import LongConvTensors

/// A layer or model: an object whose trainable parameters are found by reflection.
///
/// Every stored property that is a parameter tensor (``LongConvTensors/Tensor/requiresGradient``), a
/// `Module`, an optional of either, or an array of modules contributes its parameters under
/// its property name, joined with dots (`blocks.0.mixer.inU.weight`). A type written from
/// existing ops and parameter tensors therefore needs no extra code to be trained or saved.
/// Constant tensors are not parameters. A constant that belongs to the model's state (the
/// positional features a checkpoint may hold, say) is declared `@Buffer`: checkpoints save and
/// load it beside the parameters under its property name, and it is trained only when its
/// tensor requires a gradient (then it is listed as a parameter, not a buffer).
public protocol Module: AnyObject {
  /// Parameters by dotted name, in declaration order. The default walks stored properties.
  func namedParameters() -> [(name: String, tensor: Tensor)]
}

/// A tensor that is part of a module's saved state (see ``Module``): a buffer while its
/// tensor is constant, a parameter when it requires a gradient.
@propertyWrapper
public struct Buffer: @unchecked Sendable {
  /// The tensor.
  public var wrappedValue: Tensor
  /// Wraps `wrappedValue`.
  public init(wrappedValue: Tensor) { self.wrappedValue = wrappedValue }
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
      // Lazy storage and property-wrapper backing stores carry a `$__lazy_storage_$` or `_` prefix.
      let name =
        label.hasPrefix("$__lazy_storage_$_")
        ? String(label.dropFirst(18))
        : child.value is Buffer && label.hasPrefix("_") ? String(label.dropFirst()) : label
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
    case let buffer as Buffer:
      if buffer.wrappedValue.requiresGradient == (kind == .parameters) {
        found.append((name, buffer.wrappedValue))
      }
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
