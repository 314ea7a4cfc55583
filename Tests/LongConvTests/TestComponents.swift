import Foundation
import LongConv
import LongConvLayers
import LongConvTensors

/// A kernel defined outside the library, registered the way users register theirs:
/// `t_c[k] = a_c * rho^|k|` with a learned amplitude per channel and a fixed `rho`.
final class GeometricTestKernel: ConfigurableKernel {
  static let typeName = "test_geometric"
  let amplitude: Tensor
  let rho: Float
  let channels: Int
  let direction: ConvolutionDirection

  init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator) throws {
    rho = Float(try config.double("rho", default: 0.8, range: 0...1))
    channels = context.channels
    direction = context.direction
    amplitude = Tensor.normal([context.channels, 1], std: 0.5, generator: &generator).requiringGradient()
  }

  func coefficients(length: Int) throws -> Tensor {
    guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
    let lags =
      direction == .causal ? (0..<length).map { Float($0) } : (-(length - 1)..<length).map { Float(abs($0)) }
    let powers = Tensor(lags.map { Foundation.pow(rho, $0) }).reshaped([1, lags.count])
    return amplitude * powers
  }
}

/// A mixer defined outside the library: `y = W conv(x)`.
final class ConvolveThenProject<Kernel: LongConvKernel>: SequenceMixer {
  let kernel: Kernel
  let projection: Linear

  init(kernel: Kernel, width: Int, generator: inout SeededGenerator) {
    self.kernel = kernel
    projection = Linear(width, width, generator: &generator)
  }

  var width: Int { projection.inputCount }
  func callAsFunction(_ x: Tensor) throws -> Tensor { projection(try kernel.convolve(x)) }

}

enum TestComponents {
  /// Registers the test kernel and mixer once.
  static let registered: Void = {
    try! Registry.register(kernel: GeometricTestKernel.self)
    try! Registry.register(mixer: "test_project") { config, context, generator in
      let kernel = try Registry.makeKernel(
        try config.object("kernel"),
        context: KernelContext(
          channels: context.width, direction: context.direction, maxLength: context.maxLength),
        generator: &generator)
      return makeConvolveThenProject(kernel, width: context.width, generator: &generator)
    }
  }()
}

/// Opens the kernel existential into the generic mixer.
func makeConvolveThenProject<K: LongConvKernel>(_ kernel: K, width: Int, generator: inout SeededGenerator)
  -> any SequenceMixer
{
  ConvolveThenProject<K>(kernel: kernel, width: width, generator: &generator)
}
