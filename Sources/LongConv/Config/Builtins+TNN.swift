import LongConvLayers
import LongConvTensors

extension BuiltinComponents {
  /// The TNN kernel (`"tnn"`) and the gated Toeplitz unit (`"gtu"`, generic over any kernel).
  static func registerTNN() {
    Registry.register(kernel: TNNKernel.self)
    Registry.register(mixer: "gtu", GTUFactory.factory)
  }
}
