import Foundation
import LongConv
import LongConvTensors
import LongConvTestSupport

// Double references shared by the S4D, EMA and SSM block tests.

/// A complex number in Double, just enough for the references.
struct ComplexDouble {
  var re: Double, im: Double
  init(_ re: Double, _ im: Double = 0) {
    self.re = re
    self.im = im
  }
  static func + (a: Self, b: Self) -> Self { Self(a.re + b.re, a.im + b.im) }
  static func - (a: Self, b: Self) -> Self { Self(a.re - b.re, a.im - b.im) }
  static func * (a: Self, b: Self) -> Self { Self(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re) }
  static func / (a: Self, b: Self) -> Self {
    let d = b.re * b.re + b.im * b.im
    return Self((a.re * b.re + a.im * b.im) / d, (a.im * b.re - a.re * b.im) / d)
  }
  static func exp(_ z: Self) -> Self {
    Self(Foundation.exp(z.re) * cos(z.im), Foundation.exp(z.re) * sin(z.im))
  }
}

enum SSMReference {
  /// Runs `s_i = poles * s_(i-1) + x_i`, `y_i = Re(sum residues s_i) + skip x_i` step by step.
  static func recurrence(
    _ system: DiagonalStateSpace, _ x: [Double], batch: Int, length: Int, channels: Int
  ) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    for b in 0..<batch {
      for c in 0..<channels {
        let states = system.polesReal[c].count
        var s = [ComplexDouble](repeating: ComplexDouble(0), count: states)
        for i in 0..<length {
          let u = x[(b * length + i) * channels + c]
          var out = (system.skip?[c] ?? 0) * u
          for n in 0..<states {
            let pole = ComplexDouble(system.polesReal[c][n], system.polesImaginary[c][n])
            s[n] = pole * s[n] + ComplexDouble(u)
            out += (ComplexDouble(system.residuesReal[c][n], system.residuesImaginary[c][n]) * s[n]).re
          }
          y[(b * length + i) * channels + c] = out
        }
      }
    }
    return y
  }

  /// `t[c][k] = Re(sum_n residues_n poles_n^k)` for `k < length`.
  static func kernel(of system: DiagonalStateSpace, length: Int) -> [[Double]] {
    system.polesReal.indices.map { c in
      var powers = system.polesReal[c].indices.map { _ in ComplexDouble(1) }
      return (0..<length).map { _ in
        var acc = 0.0
        for n in powers.indices {
          let residue = ComplexDouble(system.residuesReal[c][n], system.residuesImaginary[c][n])
          acc += (residue * powers[n]).re
          powers[n] = powers[n] * ComplexDouble(system.polesReal[c][n], system.polesImaginary[c][n])
        }
        return acc
      }
    }
  }

}
