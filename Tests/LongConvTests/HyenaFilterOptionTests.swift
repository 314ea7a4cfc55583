import Foundation
import LongConv
import LongConvTensors
import Testing

/// The Hyena filter's `shift` and `normalized` options against MODELS.md's formula in Double:
/// `h[l, c] = mlp(z_l)[c] * (exp(-t_l |delta_c|) + shift)`, and with `normalized` each lag
/// divided by its l1 norm over the channels (safari's `h / ||h||_1` on the last axis of `[L, D]`).
@Suite struct HyenaFilterOptionTests {
  static func filter(shift: Float, normalized: Bool, channels: Int = 3, maxLength: Int = 6) -> HyenaFilter {
    var generator = SeededGenerator(seed: 5)
    let k = HyenaFilter(
      channels: channels, maxLength: maxLength, embeddingDimension: 5, width: 4, innerLayers: 1,
      decay: (0.3, 1.5, 1e-2), shift: shift, normalized: normalized, generator: &generator)
    k.freq.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = 0.7 + 0.2 * Float(i) } }
    return k
  }

  /// `[D, L]` in Double: the MLP's output (``HyenaFilterTests/reference`` without a window) times
  /// `window + shift`, then, when `normalized`, over the l1 norm of each lag's channels.
  static func reference(_ k: HyenaFilter, length: Int, shift: Double, normalized: Bool) -> [Double] {
    let (d, lmax) = (k.channels, k.maxLength)
    let mlp = HyenaFilterTests.reference(k, length: length, embeddingDimension: 5, decay: nil)
    let (start, end) = (log(1e-2) / 1.5, log(1e-2) / 0.3)
    var out = mlp
    for c in 0..<d {
      let delta = start + Double(c) * (end - start) / Double(d - 1)
      for l in 0..<length {
        let t = Double(l) / Double(lmax - 1)
        out[c * length + l] *= exp(-t * abs(delta)) + shift
      }
    }
    guard normalized else { return out }
    for l in 0..<length {
      let norm = (0..<d).map { abs(out[$0 * length + l]) }.reduce(0, +)
      for c in 0..<d { out[c * length + l] /= norm }
    }
    return out
  }

  @Test(arguments: [(0.0, false), (0.25, false), (-0.5, false), (0.0, true), (0.25, true)])
  func coefficientsMatchTheFormula(shift: Double, normalized: Bool) throws {
    let k = Self.filter(shift: Float(shift), normalized: normalized)
    for length in [6, 4] {
      let c = try k.coefficients(length: length)
      #expect(c.shape == [3, length])
      let want = Self.reference(k, length: length, shift: shift, normalized: normalized)
      for (i, (got, expected)) in zip(c.doubles, want).enumerated() {
        #expect(
          abs(got - expected) <= 1e-5 * max(1, abs(expected)),
          "shift \(shift) normalized \(normalized) L=\(length) [\(i / length), \(i % length)]: \(got) vs \(expected)"
        )
      }
      if normalized {
        // Each lag's channels have l1 norm 1, whatever the lags are.
        for l in 0..<length {
          let norm = (0..<3).map { abs(c.doubles[$0 * length + l]) }.reduce(0, +)
          #expect(abs(norm - 1) <= 1e-5, "lag \(l): l1 norm over channels \(norm)")
        }
      }
    }
  }

}
