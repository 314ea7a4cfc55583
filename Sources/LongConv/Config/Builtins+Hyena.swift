import LongConvLayers
import LongConvTensors

/// Hyena's components: the implicit filter (kernel `"hyena"`), the explicit kernel of
/// "Simple Hardware-Efficient Long Convolutions" (kernel `"explicit"`) and the order-2
/// Hyena operator (mixer `"hyena"`).
extension BuiltinComponents {
  static func registerHyena() {
    Registry.register(kernel: HyenaFilter.self)
    Registry.register(kernel: ExplicitKernel.self)
    Registry.register(mixer: "hyena", HyenaOperatorFactory.factory)
  }
}
