import Foundation
import LongConv
import LongConvTensors

/// ETSC, the exact Toeplitz-to-SSM conversion (Qin and Zhong, 2023; docs/MODELS.md section 5), for
/// any causal kernel, in Double.
///
/// Per channel, with the kernel `t[k] = gamma^k r[k]` (`gamma = 1` when the kernel declares
/// no separable decay) and `n` the conversion length:
///
/// ```
/// r[n]      = -sum_(k<n) r[k]                        (m = n + 1 values summing to zero)
/// b_s       = (1/m) sum_(k<=n) r[k] exp(+2 pi i s k / m)   s = 1 ... n   (b_0 = 0: dropped)
/// Lambda_s  = gamma exp(-2 pi i s / m)
/// sum_s b_s Lambda_s^k = gamma^k r[k] = t[k]          for every k < n
/// ```
///
/// `r` is real, so `b_(m-s) = conj(b_s)`: only `s = 1 ... floor(m/2)` are kept, with doubled
/// residues except the real mode `s = m/2` when `m` is even; `floor((n + 1) / 2)` complex states
/// per channel. The `b_s` come from one batched real FFT (FFTW, Double).
///
/// Beyond `n` the recurrence does not stop: its impulse response is the periodic extension,
/// `-gamma^n sum r` at lag `n`, then `gamma^(n+1+j) r[j]`. It is exact only within `n`;
/// the report's `lagBeyondLength` says how large the first wrong lag is, and generation
/// warns when it passes `n`. Folding the decay into the poles keeps that error damped by
/// `gamma^n`.
///
/// - Complexity: `O(D n log n)` time, `D floor((n + 1)/2)` states.
public struct ExactConverter: KernelConverter {
  /// The ETSC converter; it has no settings.
  public init() {}

  /// Always ``ConversionMode/exact``.
  public var mode: ConversionMode { .exact }

  /// Per channel, `floor((n + 1) / 2)` modes: poles `gamma exp(-2 pi i s / m)` and residues `b_s` from one
  /// real FFT of `r` extended to `m = n + 1` lags; the skip is passed through. The report's error is the
  /// roundoff over lags `0 ..< n`, and ``KernelConversionReport/lagBeyondLength`` the implied kernel's
  /// magnitude at lag `n`, the first one beyond them.
  public func convert(_ kernel: CausalKernelSamples) throws -> KernelConversion {
    let (d, n) = (kernel.channels, kernel.length)
    let m = n + 1
    let half = m / 2 + 1
    let r = kernel.undecayed ?? kernel.values
    let gamma = kernel.decay ?? [Double](repeating: 1, count: d)

    var extended = [Double](repeating: 0, count: d * m)
    var sums = [Double](repeating: 0, count: d)
    for c in 0..<d {
      var sum = 0.0
      for k in 0..<n {
        extended[c * m + k] = r[c * n + k]
        sum += r[c * n + k]
      }
      extended[c * m + n] = -sum
      sums[c] = sum
    }
    let spectrum = DoubleFFT.forward(extended, rows: d, length: m)

    let states = m / 2
    var system = DiagonalStateSpace(
      polesReal: [], polesImaginary: [], residuesReal: [], residuesImaginary: [], skip: kernel.skip)
    for c in 0..<d {
      var row = (pr: [Double](), pi: [Double](), rr: [Double](), ri: [Double]())
      row.pr.reserveCapacity(states)
      for s in 1...states {
        // b_s = conj(X_s) / m; conjugate pairs fold into one mode with a doubled residue.
        let weight = (m % 2 == 0 && s == m / 2) ? 1.0 : 2.0
        let angle = 2 * Double.pi * Double(s) / Double(m)
        row.pr.append(gamma[c] * Foundation.cos(angle))
        row.pi.append(-gamma[c] * Foundation.sin(angle))
        row.rr.append(weight * spectrum.re[c * half + s] / Double(m))
        row.ri.append(-weight * spectrum.im[c * half + s] / Double(m))
      }
      system.polesReal.append(row.pr)
      system.polesImaginary.append(row.pi)
      system.residuesReal.append(row.rr)
      system.residuesImaginary.append(row.ri)
    }

    // Roundoff check by the inverse transform (the spectrum with its mean mode removed gives
    // r back), scaled by the decay: O(D n log n) instead of the O(D n^2) direct sum.
    var re = spectrum.re
    var im = spectrum.im
    for c in 0..<d {
      re[c * half] = 0
      im[c * half] = 0
    }
    let back = DoubleFFT.inverse(re: re, im: im, rows: d, length: m)
    var relative = 0.0
    var absolute = 0.0
    var beyond = 0.0
    for c in 0..<d {
      var (error, norm, power) = (0.0, 0.0, 1.0)
      for k in 0..<n {
        error += Swift.abs(power * (back[c * m + k] / Double(m) - r[c * n + k]))
        norm += Swift.abs(kernel.values[c * n + k])
        power *= gamma[c]
      }
      absolute = max(absolute, error)
      relative = max(relative, norm > 0 ? error / norm : error)
      beyond = max(beyond, power * Swift.abs(sums[c]))
    }
    let report = KernelConversionReport(
      kernel: kernel.name, requestedMode: .exact, mode: .exact, channels: d, length: n, maxStates: states,
      totalStates: states * d, relativeError: relative, errorBound: absolute, lagBeyondLength: beyond)
    return KernelConversion(stateSpace: system, report: report)
  }
}
