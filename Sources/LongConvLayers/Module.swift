import LongConvTensors

/// A layer or model: an object whose trainable parameters are found by reflection.
///
/// Every stored property that is a parameter tensor (``LongConvTensors/Tensor/requiresGradient``), a
/// `Module`, an optional of either, or an array of modules contributes its parameters under
/// its property name, joined with dots (`blocks.0.mixer.inU.weight`). A type written from
/// existing ops and parameter tensors therefore needs no extra code to be trained or saved.
/// Constant tensors (buffers such as a fixed decay) are not parameters.
public protocol Module: AnyObject {
  /// Parameters by dotted name, in declaration order. The default walks stored properties.
  func namedParameters() -> [(name: String, tensor: Tensor)]
}

extension Module {
  /// The parameters found by reflection (see ``Module``).
  public func namedParameters() -> [(name: String, tensor: Tensor)] {
    ModuleReflection.parameters(of: self, prefix: "")
  }

  /// The parameters alone, in the same order.
  public var parameters: [Tensor] { namedParameters().map(\.tensor) }

  /// Total number of trainable scalars.
  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

  /// Forgets every parameter's gradient.
  public func zeroGradients() { for p in parameters { p.zeroGradient() } }
}

enum ModuleReflection {
  static func parameters(of value: Any, prefix: String) -> [(name: String, tensor: Tensor)] {
    var found: [(name: String, tensor: Tensor)] = []
    for child in Mirror(reflecting: value).children {
      guard let label = child.label else { continue }
      // Lazy storage and property-wrapper backing stores carry a `$__lazy_storage_$` or `_` prefix.
      let name = label.hasPrefix("$__lazy_storage_$_") ? String(label.dropFirst(18)) : label
      collect(child.value, name: prefix + name, into: &found)
    }
    return found
  }

  private static func collect(_ value: Any, name: String, into found: inout [(name: String, tensor: Tensor)])
  {
    switch value {
    case let tensor as Tensor:
      if tensor.requiresGradient { found.append((name, tensor)) }
    case let module as Module:
      found += module.namedParameters().map { (name + "." + $0.name, $0.tensor) }
    case let modules as [Module]:
      for (i, m) in modules.enumerated() {
        found += m.namedParameters().map { ("\(name).\(i).\($0.name)", $0.tensor) }
      }
    default:
      // Optionals: look inside.
      let mirror = Mirror(reflecting: value)
      if mirror.displayStyle == .optional, let inner = mirror.children.first?.value {
        collect(inner, name: name, into: &found)
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
