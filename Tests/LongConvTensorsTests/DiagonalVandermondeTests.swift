import Foundation
import LongConvTestSupport
import Testing

@testable import LongConvTensors

/// `diagonalVandermonde` against its closed form evaluated in Double with `exp`, `cos` and `sin`
/// of each lag's phase (not the op's recurrence), and its pullback against central differences
/// of that Double form.
@Suite struct DiagonalVandermondeTests {
  /// Modes with decays from slow to fast and phases up to a few radians per lag, `[D, H]`.
  static func modes(channels: Int, modes: Int, seed: UInt64) -> [Tensor] {
    [
      uniformTensor([channels, modes], seed: seed, low: -0.3, high: -0.001),
      uniformTensor([channels, modes], seed: seed + 1, low: -3, high: 3),
      uniformTensor([channels, modes], seed: seed + 2),
      uniformTensor([channels, modes], seed: seed + 3),
    ]
  }

  /// `sum_{d,l} w[d, l] K[d, l]` (or `K` itself when `weights` is nil) in Double.
  static func closedForm(_ p: [[Double]], channels: Int, modes: Int, length: Int) -> [Double] {
    var k = [Double](repeating: 0, count: channels * length)
    for d in 0..<channels {
      for n in 0..<modes {
        let i = d * modes + n
        let (a, b, cr, ci) = (p[0][i], p[1][i], p[2][i], p[3][i])
        for l in 0..<length {
          let (magnitude, angle) = (exp(a * Double(l)), b * Double(l))
          k[d * length + l] += 2 * magnitude * (cr * cos(angle) - ci * sin(angle))
        }
      }
    }
    return k
  }

  @Test(arguments: [(3, 5, 37), (2, 4, 1), (1, 1, 300), (4, 9, 64)])
  func valuesMatchTheClosedForm(shape: (channels: Int, modes: Int, length: Int)) {
    let inputs = Self.modes(channels: shape.channels, modes: shape.modes, seed: 5)
    let k = Tensor.diagonalVandermonde(
      poleLogReal: inputs[0], poleLogImaginary: inputs[1], residueReal: inputs[2],
      residueImaginary: inputs[3],
      length: shape.length)
    #expect(k.shape == [shape.channels, shape.length])
    let expected = Self.closedForm(
      inputs.map(\.doubles), channels: shape.channels, modes: shape.modes, length: shape.length)
    // The Float inputs are exact in Double; only the output's rounding and the recurrence remain.
    expectClose(k, expected, tolerance: 1e-6, "K \(shape)")
  }

  /// Central differences of `sum w K` in Double (step 1e-6, Richardson-extrapolated error about
  /// 1e-12) against the pullback, per input, relative to the input's largest gradient.
  @Test(arguments: [(3, 5, 37), (2, 6, 200)])
  func pullbackMatchesDoubleFiniteDifferences(shape: (channels: Int, modes: Int, length: Int)) {
    let (channels, modes, length) = shape
    let inputs = Self.modes(channels: channels, modes: modes, seed: 9).map { $0.requiringGradient() }
    let weights = uniformTensor([channels, length], seed: 13)
    let k = Tensor.diagonalVandermonde(
      poleLogReal: inputs[0], poleLogImaginary: inputs[1], residueReal: inputs[2],
      residueImaginary: inputs[3],
      length: length)
    (k * weights).sum().backward()

    let w = weights.doubles
    func loss(_ p: [[Double]]) -> Double {
      zip(Self.closedForm(p, channels: channels, modes: modes, length: length), w).reduce(0) {
        $0 + $1.0 * $1.1
      }
    }
    let base = inputs.map(\.doubles)
    let h = 1e-6
    for (index, name) in ["a", "b", "cr", "ci"].enumerated() {
      var numeric = [Double](repeating: 0, count: base[index].count)
      for j in numeric.indices {
        func shifted(_ delta: Double) -> Double {
          var p = base
          p[index][j] += delta
          return loss(p)
        }
        let coarse = (shifted(h) - shifted(-h)) / (2 * h)
        let fine = (shifted(h / 2) - shifted(-h / 2)) / h
        numeric[j] = (4 * fine - coarse) / 3
      }
      let analytic = inputs[index].gradient
      #expect(analytic != nil, "no gradient for \(name)")
      if let analytic { expectClose(analytic, numeric, tolerance: 2e-6, "d/d\(name) \(shape)") }
    }
  }
}
