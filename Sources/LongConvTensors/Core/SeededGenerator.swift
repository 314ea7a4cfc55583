import Foundation

/// A reproducible random number generator (xoshiro256**, seeded through SplitMix64).
///
/// The same seed gives the same stream on every machine, so initialisations, dropout masks
/// and data order are reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var state: (UInt64, UInt64, UInt64, UInt64)
  private var spareNormal: Float?

  /// A generator whose stream is determined by `seed`.
  public init(seed: UInt64) {
    var s = seed
    func splitMix() -> UInt64 {
      s &+= 0x9E37_79B9_7F4A_7C15
      var z = s
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    state = (splitMix(), splitMix(), splitMix(), splitMix())
  }

  /// The next 64 random bits of the stream.
  public mutating func next() -> UInt64 {
    let result = rotl(state.1 &* 5, 7) &* 9
    let t = state.1 << 17
    state.2 ^= state.0
    state.3 ^= state.1
    state.1 ^= state.2
    state.0 ^= state.3
    state.2 ^= t
    state.3 = rotl(state.3, 45)
    return result
  }

  private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

  /// Uniform on `[0, 1)` with 24 random bits.
  public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

  /// Uniform on `[0, 1)` with 53 random bits.
  public mutating func nextUniformDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

  /// Standard normal sample (Box-Muller in Double, pairs cached).
  public mutating func nextNormal() -> Float {
    if let spare = spareNormal {
      spareNormal = nil
      return spare
    }
    let u1 = 1 - nextUniformDouble()  // in (0, 1]
    let u2 = nextUniformDouble()
    let radius = (-2 * log(u1)).squareRoot()
    let angle = 2 * Double.pi * u2
    spareNormal = Float(radius * sin(angle))
    return Float(radius * cos(angle))
  }
}
