import Foundation
import LongConv
import LongConvTensors

/// The smallest diagonal state that reproduces a kernel within a tolerance, per channel, with
/// a certified error bound.
///
/// Per channel, on the kernel `t[0 ..< n]` (decay included):
///
/// 1. The Hankel matrix `H[i][j] = t[1 + i + j]` (`p` rows, `n - p` columns, so every lag
///    `1 ... n-1` appears) and its singular values `sigma` (LAPACK, Double). Balanced
///    truncation to `r` states has error about `2 sum_(i>=r) sigma_i`, which gives the first
///    state size to try.
/// 2. Kung's realisation of rank `r`: `O = U_r sqrt(Sigma_r)`, `A = O_up^+ O_down` (the shift
///    invariance of the observability matrix), poles `= eig(A)`. Poles outside the unit
///    circle are refused (the recurrence would blow up), and the next size is tried.
/// 3. Residues by least squares on lags `1 ... n-1` against the kernel itself (poles fixed),
///    conjugate pairs folded into one mode; lag 0 goes into the skip exactly.
/// 4. The error `e = t - t'` is measured over all `n` lags in Double. The channel is accepted
///    when `||e||_1 <= tolerance * ||t||_1`; `||e||_1` bounds the output error for every input
///    of length `n` (see ``KernelConverter``), which makes the bound certified, not estimated.
///
/// A channel that cannot meet the tolerance with at most ``maxStates`` states is converted
/// exactly (ETSC) instead; the report counts those channels (and says `exact` when all are).
/// Beyond `n` the compact kernel keeps decaying with its poles (it is not periodic); how
/// close it stays to the true kernel there depends on the kernel and is not certified.
///
/// - Complexity: per channel, one SVD of a `p x (n - p)` matrix with `p <= 2 maxStates`, and
///   `O(n r)` per tried size `r`. Channels run concurrently.
public struct CompactConverter: KernelConverter {
  /// The relative `l1` tolerance on each channel's kernel.
  public let tolerance: Double
  /// The largest state per channel before falling back to exact.
  public let maxStates: Int

  /// Throws when `tolerance` is not a positive finite number or `maxStates < 1`.
  public init(tolerance: Double, maxStates: Int = 64) throws {
    guard tolerance.isFinite, tolerance > 0 else {
      throw ConversionError(
        kernel: "compact", problem: "tolerance must be a positive number, got \(tolerance)")
    }
    guard maxStates >= 1 else {
      throw ConversionError(kernel: "compact", problem: "the state cap must be at least 1, got \(maxStates)")
    }
    self.tolerance = tolerance
    self.maxStates = maxStates
  }

  /// Always ``ConversionMode/compact`` (the report says ``ConversionMode/exact`` when every channel fell
  /// back).
  public var mode: ConversionMode { .compact }

  /// Reduces each channel (concurrently) to the smallest stable realisation of its kernel plus skip within
  /// ``tolerance``, lag 0 in the skip; channels that miss it take ``ExactConverter``'s form. The report's
  /// errors are measured against the samples.
  public func convert(_ kernel: CausalKernelSamples) throws -> KernelConversion {
    let d = kernel.channels
    var results = [ChannelResult?](repeating: nil, count: d)
    results.withUnsafeMutableBufferPointer { out in
      let base = UncheckedSendable(out.baseAddress!)
      ComputeThreads.withSingleThreadedBLAS {
        ComputeThreads.perform(tasks: d) { c in
          base.value[c] = reduce(totalResponse(kernel, channel: c))
        }
      }
    }
    // Channels that missed the tolerance take their exact form.
    let missed = results.indices.filter { results[$0] == nil }
    let exact = missed.isEmpty ? nil : try ExactConverter().convert(kernel).stateSpace

    var system = DiagonalStateSpace(
      polesReal: [], polesImaginary: [], residuesReal: [], residuesImaginary: [], skip: [])
    var tail = 0.0
    for c in 0..<d {
      if let result = results[c] {
        system.polesReal.append(result.polesReal)
        system.polesImaginary.append(result.polesImaginary)
        system.residuesReal.append(result.residuesReal)
        system.residuesImaginary.append(result.residuesImaginary)
        system.skip!.append(result.skip)
        tail = max(tail, result.hankelTail)
      } else {
        system.polesReal.append(exact!.polesReal[c])
        system.polesImaginary.append(exact!.polesImaginary[c])
        system.residuesReal.append(exact!.residuesReal[c])
        system.residuesImaginary.append(exact!.residuesImaginary[c])
        system.skip!.append(kernel.skip?[c] ?? 0)
      }
    }
    let (relative, absolute) = measure(system, against: kernel)
    let counts = (0..<d).map(system.states)
    let allExact = missed.count == d
    let report = KernelConversionReport(
      kernel: kernel.name, requestedMode: .compact, mode: allExact ? .exact : .compact, channels: d,
      length: kernel.length, maxStates: counts.max() ?? 0, totalStates: counts.reduce(0, +),
      relativeError: relative, errorBound: absolute, tolerance: tolerance, hankelTail: tail,
      exactChannels: missed.count,
      note: missed.isEmpty
        ? nil
        : "\(missed.count) of \(d) channels need more than \(maxStates) states for tolerance \(tolerance); converted exactly"
    )
    return KernelConversion(stateSpace: system, report: report)
  }

  /// One channel's reduced form.
  struct ChannelResult {
    var polesReal: [Double], polesImaginary: [Double]
    var residuesReal: [Double], residuesImaginary: [Double]
    var skip: Double
    var hankelTail: Double
  }

  /// The smallest accepted realisation of the total response `t` (kernel + skip at lag 0),
  /// or `nil` when none meets the tolerance within the cap.
  func reduce(_ t: ArraySlice<Double>) -> ChannelResult? {
    let t = Array(t)
    let n = t.count
    let norm = t.reduce(0) { $0 + Swift.abs($1) }
    let budget = tolerance * norm
    let tailNorm = t.dropFirst().reduce(0) { $0 + Swift.abs($1) }
    // Lag 0 alone (or nothing at all) already within tolerance: no state.
    if tailNorm <= budget {
      return ChannelResult(
        polesReal: [], polesImaginary: [], residuesReal: [], residuesImaginary: [], skip: t[0],
        hankelTail: tailNorm / max(norm, .leastNormalMagnitude))
    }
    let rows = min(n / 2, 2 * maxStates + 1)
    let columns = n - rows
    guard rows >= 2, columns >= 1 else { return nil }
    var hankel = [Double](repeating: 0, count: rows * columns)  // column-major
    for j in 0..<columns { for i in 0..<rows { hankel[j * rows + i] = t[1 + i + j] } }
    guard let (sigma, u) = LAPACK.svd(hankel, rows: rows, columns: columns) else { return nil }

    // Balanced truncation's estimate picks the first size; measurement decides.
    var suffix = [Double](repeating: 0, count: sigma.count + 1)
    for i in stride(from: sigma.count - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] + sigma[i] }
    let limit = min(maxStates, rows - 1, sigma.count)
    guard limit >= 1 else { return nil }
    var size = (1...limit).first { 2 * suffix[$0] <= budget } ?? limit
    while size <= limit {
      if var result = realise(t, u: u, sigma: sigma, rows: rows, size: size) {
        let response = DiagonalStateSpace(
          polesReal: [result.polesReal], polesImaginary: [result.polesImaginary],
          residuesReal: [result.residuesReal], residuesImaginary: [result.residuesImaginary],
          skip: [result.skip]
        ).impulseResponse(channel: 0, length: n)
        if l1Distance(t[...], response).error <= budget {
          result.hankelTail = 2 * suffix[size] / norm
          return result
        }
      }
      size += max(1, size / 8)
    }
    return nil
  }

  /// Kung's realisation with `size` states, residues fitted by least squares.
  func realise(_ t: [Double], u: [Double], sigma: [Double], rows: Int, size: Int) -> ChannelResult? {
    let n = t.count
    // O = U_r sqrt(Sigma_r), rows x size; A solves O[0 ..< rows-1] A = O[1 ..< rows].
    var up = [Double](repeating: 0, count: (rows - 1) * size)
    var down = up
    for j in 0..<size {
      let scale = sigma[j].squareRoot()
      for i in 0..<rows - 1 {
        up[j * (rows - 1) + i] = u[j * rows + i] * scale
        down[j * (rows - 1) + i] = u[j * rows + i + 1] * scale
      }
    }
    guard rows - 1 >= size,
      let a = LAPACK.leastSquares(up, rows: rows - 1, columns: size, down, rightHandSides: size),
      let eig = LAPACK.eigenvalues(a, order: size)
    else { return nil }

    // One mode per real pole and per conjugate pair (the one with a positive imaginary part).
    var poles: [(re: Double, im: Double)] = []
    for i in 0..<size where eig.im[i] >= 0 {
      let magnitude = (eig.re[i] * eig.re[i] + eig.im[i] * eig.im[i]).squareRoot()
      guard magnitude.isFinite, magnitude <= 1 + 1e-9 else { return nil }
      poles.append((eig.re[i], eig.im[i]))
    }
    // Columns over lags 1 ... n-1: Re(p^k) per real pole; Re(p^k), -Im(p^k) per pair.
    let unknowns = poles.reduce(0) { $0 + ($1.im == 0 ? 1 : 2) }
    let lags = n - 1
    guard lags >= unknowns else { return nil }
    var basis = [Double](repeating: 0, count: lags * unknowns)  // column-major
    var column = 0
    for pole in poles {
      var (zr, zi) = pole
      for k in 0..<lags {
        basis[column * lags + k] = zr
        if pole.im != 0 { basis[(column + 1) * lags + k] = -zi }
        (zr, zi) = (zr * pole.re - zi * pole.im, zr * pole.im + zi * pole.re)
      }
      column += pole.im == 0 ? 1 : 2
    }
    guard
      let coefficients = LAPACK.leastSquares(
        basis, rows: lags, columns: unknowns, Array(t[1...]), rightHandSides: 1),
      coefficients.allSatisfy(\.isFinite)
    else { return nil }

    var result = ChannelResult(
      polesReal: [], polesImaginary: [], residuesReal: [], residuesImaginary: [], skip: t[0], hankelTail: 0)
    column = 0
    for pole in poles {
      let re = coefficients[column]
      let im = pole.im == 0 ? 0 : coefficients[column + 1]
      result.polesReal.append(pole.re)
      result.polesImaginary.append(pole.im)
      result.residuesReal.append(re)
      result.residuesImaginary.append(im)
      result.skip -= re  // lag 0 of the modes is Re(sum residues); the skip makes it exact
      column += pole.im == 0 ? 1 : 2
    }
    return result
  }
}

/// A value handed to concurrent workers that write disjoint parts of it.
struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}
