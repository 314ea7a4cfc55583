import Foundation
import LongConv

/// How a kernel becomes a diagonal state-space recurrence.
public enum ConversionMode: String, Sendable, CaseIterable, Codable {
  /// The kernel's own exact form (S4D, EMA); kernels without one are converted exactly.
  case native
  /// ETSC: the DFT construction of docs/MODELS.md section 5, exact over the conversion length.
  case exact
  /// The smallest state meeting a tolerance (Hankel-based reduction), else exact.
  case compact
}

/// Turns a sampled causal kernel into a ``LongConv/DiagonalStateSpace`` and says how well it did.
///
/// Contract: the returned system's impulse response `Re(sum_n residues_n poles_n^k)` plus
/// `skip` at lag 0 reproduces the kernel (plus its skip) over lags `0 ..< length` to within
/// what the report states, and the report's `errorBound` is a certified bound: for every
/// input of at most `length` positions, `max_i |y_i - y'_i| <= errorBound * max_i |x_i|`
/// (and the same factor bounds the Euclidean norm), because it is the largest per-channel
/// `l1` norm of the kernel error (Young's inequality).
public protocol KernelConverter: Sendable {
  /// The mode this converter implements.
  var mode: ConversionMode { get }
  /// Converts `kernel` into a system and report that meet the contract above; throws ``ConversionError`` when
  /// it cannot.
  func convert(_ kernel: CausalKernelSamples) throws -> KernelConversion
}

/// A converted kernel: the recurrence and its report.
public struct KernelConversion: Sendable {
  /// The recurrence: poles and residues `[channels][states]`, and the skip.
  public var stateSpace: DiagonalStateSpace
  /// How it was converted and how close it is over lags `0 ..< length`.
  public var report: KernelConversionReport
}

/// What a conversion produced, per kernel.
public struct KernelConversionReport: Codable, Sendable, Equatable {
  /// The kernel's name (its parameter path in a model).
  public var kernel: String
  /// The mode asked for (the converter's ``KernelConverter/mode``).
  public var requestedMode: ConversionMode
  /// The form produced (``ConversionMode/exact`` when compact or native fell back).
  public var mode: ConversionMode
  /// Channels `D` of the kernel.
  public var channels: Int
  /// The conversion length `n`.
  public var length: Int
  /// The largest number of complex states in a channel, and the total over channels.
  public var maxStates: Int
  /// Complex states summed over all channels.
  public var totalStates: Int
  /// `max_c ||t_c - t'_c||_1 / ||t_c||_1` over lags `0 ..< length` (in Double).
  public var relativeError: Double
  /// `max_c ||t_c - t'_c||_1`: a certified bound on the output error per unit of input (see
  /// ``KernelConverter``).
  public var errorBound: Double
  /// Compact: the requested relative tolerance.
  public var tolerance: Double?
  /// Compact: `max_c 2 sum(discarded Hankel singular values) / ||t_c||_1`, the balanced-
  /// truncation estimate of the error (of the finite Hankel matrix; indicative, not certified).
  public var hankelTail: Double?
  /// Compact: channels that could not meet the tolerance under the state cap and were
  /// converted exactly instead.
  public var exactChannels: Int?
  /// Exact: `max_c gamma_c^n |sum_k r_c[k]|`, the implied kernel's value at lag `n` (beyond
  /// `n` the exact form repeats the kernel periodically, damped by `gamma^n`).
  public var lagBeyondLength: Double?
  /// Anything a reader should know (a fallback and why).
  public var note: String?
}

extension DiagonalStateSpace {
  /// Channels.
  public var channels: Int { polesReal.count }
  /// Complex states of channel `c`.
  public func states(_ c: Int) -> Int { polesReal[c].count }

  /// The impulse response of channel `c` over `length` lags, in Double:
  /// `Re(sum_n residues_n poles_n^k)`, plus `skip` at lag 0.
  public func impulseResponse(channel c: Int, length: Int) -> [Double] {
    var out = [Double](repeating: 0, count: length)
    for n in 0..<states(c) {
      let (pr, pi) = (polesReal[c][n], polesImaginary[c][n])
      var (zr, zi) = (residuesReal[c][n], residuesImaginary[c][n])  // residue * pole^k
      for k in 0..<length {
        out[k] += zr
        (zr, zi) = (zr * pr - zi * pi, zr * pi + zi * pr)
      }
    }
    if let skip { out[0] += skip[c] }
    return out
  }
}

/// `sum |a_k - b_k|` and `sum |a_k|`.
func l1Distance(_ a: ArraySlice<Double>, _ b: [Double]) -> (error: Double, norm: Double) {
  var error = 0.0
  var norm = 0.0
  for (x, y) in zip(a, b) {
    error += Swift.abs(x - y)
    norm += Swift.abs(x)
  }
  return (error, norm)
}

/// The per-channel total impulse response of the samples: the kernel plus its skip at lag 0.
func totalResponse(_ kernel: CausalKernelSamples, channel c: Int) -> ArraySlice<Double> {
  var row = kernel.channel(c)
  if let skip = kernel.skip { row[row.startIndex] += skip[c] }
  return row
}

/// Measures a state space against the samples channel by channel, in Double (`O(n S)` per
/// channel): the largest relative and absolute `l1` errors.
func measure(_ system: DiagonalStateSpace, against kernel: CausalKernelSamples) -> (
  relative: Double, absolute: Double
) {
  var relative = 0.0
  var absolute = 0.0
  for c in 0..<kernel.channels {
    let (error, norm) = l1Distance(
      totalResponse(kernel, channel: c), system.impulseResponse(channel: c, length: kernel.length))
    absolute = max(absolute, error)
    relative = max(relative, norm > 0 ? error / norm : error)
  }
  return (relative, absolute)
}
