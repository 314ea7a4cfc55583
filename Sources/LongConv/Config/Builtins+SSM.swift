import LongConvLayers
import LongConvTensors

extension BuiltinComponents {
  /// The state-space family: the S4D and EMA kernels and the `"ssm"` block.
  static func registerSSM() {
    Registry.register(kernel: S4DKernel.self)
    Registry.register(kernel: EMAKernel.self)
    Registry.register(mixer: "ssm", SSMBlockFactory.factory)
  }
}
