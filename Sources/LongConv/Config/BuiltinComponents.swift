import LongConvLayers
import LongConvTensors

/// The kernels, mixers and channel mixers that ship with the toolkit, registered through the
/// same calls a user's own components use.
enum BuiltinComponents {
  static func register() {
    Registry.register(channelMixer: "glu", GLU.factory)
    Registry.register(channelMixer: "mlp", MLP.factory)
    registerTNN()
    registerHyena()
    registerSSM()
    registerScaffolded()
  }
}
