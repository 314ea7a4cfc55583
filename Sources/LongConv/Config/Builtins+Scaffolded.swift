import LongConvLayers
import LongConvTensors

extension BuiltinComponents {
  /// Kernels added with `swift package --allow-writing-to-package-directory new-kernel --name
  /// Name`: the plugin inserts one `Registry.register(kernel:)` line per kernel, in the order
  /// they were added, just above the closing marker below. Edit by hand freely, but keep the
  /// marker line: the plugin refuses to write without it.
  static func registerScaffolded() {
    // new-kernel: registrations above this line
  }
}
