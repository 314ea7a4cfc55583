import Foundation
import LongConvTensors

/// Plain Adam for tests that need a loss to fall over a few steps (the training module
/// brings the real optimizers).
public struct TestAdam {
  /// The tensors ``update()`` changes in place.
  public let parameters: [Tensor]
  /// The step size `lr` of the Adam update.
  public var learningRate: Float
  var first: [[Float]], second: [[Float]]
  var step = 0

  /// Adam over `parameters` with zero moments, `beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8`.
  public init(parameters: [Tensor], learningRate: Float = 1e-2) {
    self.parameters = parameters
    self.learningRate = learningRate
    first = parameters.map { [Float](repeating: 0, count: $0.count) }
    second = first
  }

  /// One update from the accumulated gradients, which it then clears.
  public mutating func update() {
    step += 1
    let (b1, b2): (Float, Float) = (0.9, 0.999)
    let c1 = 1 - pow(b1, Float(step))
    let c2 = 1 - pow(b2, Float(step))
    for (i, p) in parameters.enumerated() {
      guard let g = p.gradient?.scalars else { continue }
      p.withUnsafeMutableBufferPointer { value in
        for j in 0..<value.count {
          first[i][j] = b1 * first[i][j] + (1 - b1) * g[j]
          second[i][j] = b2 * second[i][j] + (1 - b2) * g[j] * g[j]
          value[j] -= learningRate * (first[i][j] / c1) / ((second[i][j] / c2).squareRoot() + 1e-8)
        }
      }
      p.zeroGradient()
    }
  }
}

private func pow(_ x: Float, _ n: Float) -> Float { Float(Foundation.pow(Double(x), Double(n))) }
