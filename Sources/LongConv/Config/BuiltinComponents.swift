/// The kernels, mixers and channel mixers that ship with the toolkit: every registration in
/// one place, through the same typed registrations a user's components use
/// (``Registry/register(kernel:replacing:)`` and its siblings; here without first loading the
/// built-ins, which this is).
enum BuiltinComponents {
  static func register() {
    do {
      // TNN: the RPE kernel and the gated Toeplitz unit (generic over any kernel).
      try Registry.add(kernel: TNNKernel.self)
      try Registry.add(mixer: GTUFactory.self)
      // Hyena: the implicit filter, the explicit kernel of "Simple Hardware-Efficient Long
      // Convolutions", and the Hyena operator of any order.
      try Registry.add(kernel: HyenaFilter.self)
      try Registry.add(kernel: ExplicitKernel.self)
      try Registry.add(mixer: HyenaOperatorFactory.self)
      // State spaces: S4D, EMA and the SSM block.
      try Registry.add(kernel: S4DKernel.self)
      try Registry.add(kernel: EMAKernel.self)
      try Registry.add(mixer: SSMBlockFactory.self)
      // Channel mixers.
      try Registry.add(channelMixer: GLU.self)
      try Registry.add(channelMixer: MLP.self)
      try registerScaffolded()
    } catch {
      preconditionFailure("BuiltinComponents: \(error)")
    }
  }

  /// Kernels added with `swift package --allow-writing-to-package-directory new-kernel --name
  /// Name`: the plugin inserts one `try Registry.add(kernel:)` line per kernel, in the order
  /// they were added, just above the closing marker below. Edit by hand freely, but keep the
  /// marker line: the plugin refuses to write without it.
  static func registerScaffolded() throws {
    // new-kernel: registrations above this line
  }
}
