import Foundation
import LongConv
import LongConvTensors

/// The smallest diagonal state that reproduces a kernel within a tolerance, per channel, with
/// a certified error bound.
///
/// Per channel, on the kernel `t[0 ..< n]` (decay included):
///
/// 1. The Hankel matrix `H[i][j] = t[1 + i + j]` (`p = min(n/2, 2 maxStates + 1)` rows, `n - p`
///    columns, so every lag `1 ... n-1` appears) and its singular values `sigma` (LAPACK,
///    Double). Balanced truncation to rank `r` has error about `2 sum_(i>=r) sigma_i`, which
///    gives the first size to try; sizes grow by `max(1, r/8)` up to `2 maxStates` (a rank `r`
///    gives between `r/2` and `r` states; realisations over ``maxStates`` are skipped).
/// 2. Kung's realisation of rank `r`: `O = U_r sqrt(Sigma_r)`, `A = O_up^+ O_down` (the shift
///    invariance of the observability matrix), poles `= eig(A)`.
/// 3. **Pole bounds.** Every pole the converter keeps has `1e-2 <= |z| <= 1 - 1e-12`, so
///    `|z| < 1` strictly and the recurrence is stable for inputs of any length. A pole on or
///    outside the unit circle is reflected inside (`|z| -> 1/|z|`, angle kept), then clamped;
///    short windows of slowly decaying kernels (poles clustered near 1) make Kung's poles land
///    just outside, and refinement (step 5) starts from the reflected ones. A pole near 0 is
///    raised to `1e-2` (see ``smallestPoleModulus``).
/// 4. Residues by least squares on lags `1 ... n-1` against the kernel itself (poles fixed),
///    conjugate pairs folded into one mode, columns of the Vandermonde-like basis scaled to unit
///    norm before the QR; lag 0 goes into the skip exactly.
/// 5. **Refinement.** When this size misses the tolerance but is close (the fit within 3 times
///    the budget, or, when poles were reflected, the fit with the unreflected poles within 10
///    times) and has at most 32 states, at most 10 damped Gauss-Newton (Levenberg-Marquardt)
///    steps of variable projection move the poles, in log-polar coordinates with `log|z|`
///    clamped as in step 3, to reduce the least-squares error; the residues are re-fitted
///    (projected out) after every step.
/// 6. The error `e = t - t'` is measured over all `n` lags in Double. The channel is accepted
///    when `||e||_1 <= tolerance * ||t||_1`; `||e||_1` bounds the output error for every input
///    of length `n` (see ``KernelConverter``), which makes the bound certified, not estimated.
///    A realisation whose terms cancel (`sum_j |r_j| sum_(k<n) |z_j|^k + |skip| > 1e3 ||t||_1`)
///    is refused as well: the runtime rounds residues and skip to Float32, which would add up to
///    `2^-24` times that sum to the output.
///
/// A channel that no size fits is tried once more from step 1 with `min(n/2, max(p, 512))` rows
/// (when more than `p`): the longer shift-invariance window places the poles of long, slowly
/// varying kernels far better (trained Hyena filters at `n = 1024`).
///
/// A channel that cannot meet the tolerance with at most ``maxStates`` states is converted
/// exactly (ETSC) instead; the report counts those channels (and says `exact` when all are).
/// Such channels keep ETSC's poles on the circle of radius `gamma <= 1`. Beyond `n` the compact
/// kernel keeps decaying with its poles (it is not periodic); how close it stays to the true
/// kernel there depends on the kernel and is not certified.
///
/// - Complexity: per channel, one SVD of a `p x (n - p)` matrix with `p <= 2 maxStates + 1`
///   (a QR of its transpose, then a `p x p` SVD), and `O(n r^2)` per tried size `r` (a constant
///   times more when refined); a channel the first pass did not fit adds the same with at most
///   512 rows. Channels run concurrently.
public struct CompactConverter: KernelConverter {
  /// The relative `l1` tolerance on each channel's kernel.
  public let tolerance: Double
  /// The largest state per channel before falling back to exact.
  public let maxStates: Int

  /// The largest pole modulus a compact channel keeps: poles are strictly inside the unit
  /// circle, so the compact recurrence is stable for inputs of any length.
  public static let largestPoleModulus = 1 - 1e-12
  /// The smallest pole modulus a compact channel keeps. A mode near 0 only reaches the first
  /// lags, with a residue (and a skip cancelling it) growing as `1/|z|`: fitting a lone early lag
  /// that way gave residues of 1e5 to 1e13, which Float32 residues at run time round by as much.
  public static let smallestPoleModulus = 1e-2
  /// A realisation is refused when its terms cancel: `sum_j |r_j| sum_(k<n) |z_j|^k + |skip|`
  /// above this factor of `||t||_1`. The runtime's Float32 residues and skip then add at most
  /// `2^-24` times that sum to the output per unit of input: at most 6e-5 of `||t||_1` here.
  static let largestRoundingGain = 1e3
  /// A size is refined when its error is within this factor of the budget (measured on TNN and
  /// Hyena kernels: refinement rescued sizes from within 2x, rarely 3x, seldom beyond).
  static let refinementGate = 3.0
  /// Or when its poles had to be reflected inside the unit circle and the fit with the unreflected
  /// poles is within this factor of the budget: a stable realisation is then usually close.
  static let reflectedRefinementGate = 10.0
  /// The most rows of the second Hankel matrix tried for a channel the first did not fit (its SVD
  /// costs `O(n retryRows^2)`).
  static let retryRows = 512
  /// Realisations with more states are not refined (a step costs `O(n states^2)`; on trained
  /// Hyena filters refinement rarely rescued such sizes).
  static let refinementStates = 32
  /// Gauss-Newton steps per refinement.
  static let refinementSteps = 10

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
    let fit = ModalFit(t)
    // Rows of the Hankel matrix: 2 maxStates + 1 first (enough to reveal that many states, and
    // cheap); a channel that no size fits is tried once more with n / 2 rows (at most
    // `retryRows`), whose longer shift-invariance window places the poles of long, slowly
    // decaying kernels far better (trained Hyena filters at n = 1024).
    let first = min(n / 2, 2 * maxStates + 1)
    let second = min(n / 2, max(first, Self.retryRows))
    for rows in first == second ? [first] : [first, second] {
      if let result = reduce(fit, rows: rows, budget: budget) { return result }
    }
    return nil
  }

  /// The smallest accepted realisation from the Hankel matrix with `rows` rows, or `nil`.
  func reduce(_ fit: ModalFit, rows: Int, budget: Double) -> ChannelResult? {
    let t = fit.t
    let n = t.count
    let columns = n - rows
    guard rows >= 2, columns >= 1 else { return nil }
    var hankel = [Double](repeating: 0, count: rows * columns)  // column-major
    for j in 0..<columns { for i in 0..<rows { hankel[j * rows + i] = t[1 + i + j] } }
    guard let (sigma, u) = LAPACK.svd(hankel, rows: rows, columns: columns) else { return nil }

    // Balanced truncation's estimate picks the first size; measurement decides.
    var suffix = [Double](repeating: 0, count: sigma.count + 1)
    for i in stride(from: sigma.count - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] + sigma[i] }
    // A size (Hankel rank) r gives between r/2 states (conjugate pairs) and r (real poles).
    let limit = min(2 * maxStates, rows - 1, sigma.count)
    guard limit >= 1 else { return nil }
    var size = (1...limit).first { 2 * suffix[$0] <= budget } ?? limit
    while size <= limit {
      if var result = realise(fit, u: u, sigma: sigma, rows: rows, size: size, budget: budget) {
        result.hankelTail = 2 * suffix[size] / fit.norm
        return result
      }
      size += max(1, size / 8)
    }
    return nil
  }

  /// Kung's realisation of rank `size`, its poles bounded, residues fitted by least squares and, when
  /// it is close, refined; the result when its measured error is within `budget` and its terms do not
  /// cancel.
  func realise(_ fit: ModalFit, u: [Double], sigma: [Double], rows: Int, size: Int, budget: Double)
    -> ChannelResult?
  {
    guard let raw = kungPoles(u: u, sigma: sigma, rows: rows, size: size), raw.count <= maxStates
    else { return nil }
    let bounds = Pole.Bounds(smallest: Self.smallestPoleModulus, largest: Self.largestPoleModulus)
    let poles = raw.map { $0.bounded(bounds) }
    let moved = zip(raw, poles).contains { $0.logModulus != $1.logModulus }

    var refine = false
    if let coefficients = fit.residues(poles) {
      let result = fit.result(poles, coefficients)
      let error = fit.measuredError(result)
      if error <= budget, fit.roundingGain(result) <= Self.largestRoundingGain { return result }
      refine = error <= Self.refinementGate * budget
    }
    // Unreflected poles are never kept, but a close fit with them says a stable one is near.
    if !refine, moved, let coefficients = fit.residues(raw) {
      refine = fit.residualNorm(raw, coefficients) <= Self.reflectedRefinementGate * budget
    }
    guard refine, poles.count <= Self.refinementStates,
      let (refined, coefficients) = fit.refine(
        poles, steps: Self.refinementSteps, budget: budget, bounds: bounds)
    else { return nil }
    let result = fit.result(refined, coefficients)
    let accepted = fit.measuredError(result) <= budget && fit.roundingGain(result) <= Self.largestRoundingGain
    return accepted ? result : nil
  }

  /// The eigenvalues of Kung's `A` for `size` states, one per real pole and per conjugate pair
  /// (the one with a positive imaginary part).
  func kungPoles(u: [Double], sigma: [Double], rows: Int, size: Int) -> [Pole]? {
    // O = U_r sqrt(Sigma_r), rows x size; A solves O[0 ..< rows-1] A = O[1 ..< rows].
    guard rows - 1 >= size else { return nil }
    var up = [Double](repeating: 0, count: (rows - 1) * size)
    var down = up
    for j in 0..<size {
      let scale = sigma[j].squareRoot()
      for i in 0..<rows - 1 {
        up[j * (rows - 1) + i] = u[j * rows + i] * scale
        down[j * (rows - 1) + i] = u[j * rows + i + 1] * scale
      }
    }
    guard let a = LAPACK.leastSquares(up, rows: rows - 1, columns: size, down, rightHandSides: size),
      let eig = LAPACK.eigenvalues(a, order: size)
    else { return nil }
    var poles: [Pole] = []
    for i in 0..<size where eig.im[i] >= 0 {
      let pole = Pole(re: eig.re[i], im: eig.im[i])
      guard !pole.logModulus.isNaN, pole.logModulus < .infinity else { return nil }
      poles.append(pole)  // a zero eigenvalue (log|z| = -inf) is raised to the smallest modulus
    }
    return poles.isEmpty ? nil : poles
  }
}

/// One mode's pole in log-polar form: `z = exp(logModulus) (cos angle + i sin angle)`; a real pole
/// (`isReal`) has angle 0 or pi and stays real.
struct Pole {
  var logModulus: Double
  var angle: Double
  var isReal: Bool

  init(re: Double, im: Double) {
    logModulus = Foundation.log((re * re + im * im).squareRoot())
    isReal = im == 0
    angle = isReal ? (re < 0 ? Double.pi : 0) : Foundation.atan2(im, re)
  }

  init(logModulus: Double, angle: Double, isReal: Bool) {
    (self.logModulus, self.angle, self.isReal) = (logModulus, angle, isReal)
  }

  /// The pole as a complex number (a real pole's imaginary part is exactly 0).
  var value: (re: Double, im: Double) {
    let modulus = Foundation.exp(logModulus)
    if isReal { return (angle == 0 ? modulus : -modulus, 0) }
    return (modulus * Foundation.cos(angle), modulus * Foundation.sin(angle))
  }

  /// Real unknowns of its residue: one for a real pole, two for a pair.
  var unknowns: Int { isReal ? 1 : 2 }

  /// The moduli a compact channel keeps, as `log|z|`: `lower ... upper`, `upper < 0`.
  struct Bounds {
    var lower: Double, upper: Double
    init(smallest: Double, largest: Double) {
      (lower, upper) = (Foundation.log(smallest), Foundation.log(largest))
    }
    func clamped(_ logModulus: Double) -> Double { Swift.max(lower, Swift.min(upper, logModulus)) }
  }

  /// Within `bounds`: a pole above them (on or outside the unit circle) is first reflected inside
  /// (`log|z| -> -log|z|`, angle kept); then the modulus is clamped.
  func bounded(_ bounds: Bounds) -> Pole {
    let reflected = logModulus > bounds.upper ? -logModulus : logModulus
    return Pole(logModulus: bounds.clamped(reflected), angle: angle, isReal: isReal)
  }
}

/// Least-squares fits of a sum of modes `Re(sum_j c_j z_j^k)` to the lags `t[1 ... n-1]` of one
/// channel (lag 0 goes into the skip), in Double.
struct ModalFit {
  let t: [Double]
  /// `||t||_1` over all lags.
  let norm: Double
  /// Lags fitted: `1 ... n-1`.
  var lags: Int { t.count - 1 }

  init(_ t: [Double]) {
    self.t = t
    norm = t.reduce(0) { $0 + Swift.abs($1) }
  }

  /// The real basis over lags `1 ... n-1`, column-major: `Re(z^k)` per real pole; `Re(z^k)`,
  /// `-Im(z^k)` per pair.
  func basis(_ poles: [Pole]) -> (values: [Double], columns: Int) {
    let columns = poles.reduce(0) { $0 + $1.unknowns }
    var basis = [Double](repeating: 0, count: lags * columns)
    var column = 0
    for pole in poles {
      let p = pole.value
      var (zr, zi) = p
      for k in 0..<lags {
        basis[column * lags + k] = zr
        if !pole.isReal { basis[(column + 1) * lags + k] = -zi }
        (zr, zi) = (zr * p.re - zi * p.im, zr * p.im + zi * p.re)
      }
      column += pole.unknowns
    }
    return (basis, columns)
  }

  /// The residues' real unknowns for fixed `poles` (least squares by QR, each column scaled to unit
  /// norm first so that clustered poles of different decay do not spoil the conditioning); `nil`
  /// when the columns are dependent or a coefficient is not finite.
  func residues(_ poles: [Pole]) -> [Double]? {
    var (a, columns) = basis(poles)
    guard lags >= columns, columns >= 1 else { return nil }
    var scale = [Double](repeating: 1, count: columns)
    for j in 0..<columns {
      var sum = 0.0
      for k in 0..<lags { sum += a[j * lags + k] * a[j * lags + k] }
      guard sum > 0, sum.isFinite else { return nil }
      scale[j] = 1 / sum.squareRoot()
      for k in 0..<lags { a[j * lags + k] *= scale[j] }
    }
    guard var x = LAPACK.leastSquares(a, rows: lags, columns: columns, Array(t[1...]), rightHandSides: 1)
    else { return nil }
    for j in 0..<columns { x[j] *= scale[j] }
    return x.allSatisfy(\.isFinite) ? x : nil
  }

  /// `t[1 ...] - model` for `poles` and their residues' unknowns.
  func residual(_ poles: [Pole], _ coefficients: [Double]) -> [Double] {
    var r = Array(t[1...])
    var column = 0
    for pole in poles {
      let p = pole.value
      let (a, b) = (coefficients[column], pole.isReal ? 0 : coefficients[column + 1])
      var (zr, zi) = p
      for k in 0..<lags {
        r[k] -= a * zr - b * zi
        (zr, zi) = (zr * p.re - zi * p.im, zr * p.im + zi * p.re)
      }
      column += pole.unknowns
    }
    return r
  }

  /// `sum |t[k] - model[k]|` over lags `1 ... n-1`.
  func residualNorm(_ poles: [Pole], _ coefficients: [Double]) -> Double {
    residual(poles, coefficients).reduce(0) { $0 + Swift.abs($1) }
  }

  /// The channel's form: poles (upper half plane), residues, and the skip that makes lag 0 exact.
  func result(_ poles: [Pole], _ coefficients: [Double]) -> CompactConverter.ChannelResult {
    var result = CompactConverter.ChannelResult(
      polesReal: [], polesImaginary: [], residuesReal: [], residuesImaginary: [], skip: t[0], hankelTail: 0)
    var column = 0
    for pole in poles {
      var p = pole.value
      var (re, im) = (coefficients[column], pole.isReal ? 0 : coefficients[column + 1])
      // Re(c z^k) = Re(conj(c) conj(z)^k): keep the pole with a non-negative imaginary part.
      if p.im < 0 { (p.im, im) = (-p.im, -im) }
      result.polesReal.append(p.re)
      result.polesImaginary.append(p.im)
      result.residuesReal.append(re)
      result.residuesImaginary.append(im)
      result.skip -= re  // lag 0 of the modes is Re(sum residues); the skip makes it exact
      column += pole.unknowns
    }
    return result
  }

  /// How much the terms of `result` cancel: `(sum_j |r_j| sum_(k<n) |z_j|^k + |skip|) / ||t||_1`
  /// (at least 1 for a result that reproduces `t`). Rounding the residues and the skip to Float32,
  /// as the runtime does, changes the output by at most `2^-24` times this, times `||t||_1 max|x|`.
  func roundingGain(_ result: CompactConverter.ChannelResult) -> Double {
    var sum = Swift.abs(result.skip)
    let n = Double(t.count)
    for j in result.polesReal.indices {
      let (re, im) = (result.polesReal[j], result.polesImaginary[j])
      let logModulus = Foundation.log((re * re + im * im).squareRoot())
      // sum_(k<n) |z|^k = (1 - |z|^n) / (1 - |z|), without cancellation near |z| = 1.
      let geometric = logModulus == 0 ? n : Foundation.expm1(n * logModulus) / Foundation.expm1(logModulus)
      let residue =
        (result.residuesReal[j] * result.residuesReal[j] + result.residuesImaginary[j]
        * result.residuesImaginary[j]).squareRoot()
      sum += residue * geometric
    }
    return sum / max(norm, .leastNormalMagnitude)
  }

  /// `||t - t'||_1` over all lags, `t'` being the result's impulse response as the recurrence
  /// defines it.
  func measuredError(_ result: CompactConverter.ChannelResult) -> Double {
    let response = DiagonalStateSpace(
      polesReal: [result.polesReal], polesImaginary: [result.polesImaginary],
      residuesReal: [result.residuesReal], residuesImaginary: [result.residuesImaginary],
      skip: [result.skip]
    ).impulseResponse(channel: 0, length: t.count)
    return l1Distance(t[...], response).error
  }

  /// Variable projection by Levenberg-Marquardt: at most `steps` damped Gauss-Newton steps on the
  /// poles' `(log|z|, angle)` (log|z| clamped to `bounds`), minimising the squared residual with
  /// the residues re-fitted (projected out) at every step. The step solves, in least squares,
  /// `[B D; 0 sqrt(lambda) I] [dc; dp] = [r; 0]` with `B` the basis, `D` the derivatives of the model
  /// in the poles' parameters (columns scaled to unit norm): its `dp` is Kaufman's variable-projection
  /// step. Stops early once the `l1` residual is within `budget`. `nil` when no step is possible.
  func refine(_ start: [Pole], steps: Int, budget: Double, bounds: Pole.Bounds) -> ([Pole], [Double])? {
    guard var coefficients = residues(start) else { return nil }
    var poles = start
    var r = residual(poles, coefficients)
    var cost = r.reduce(0) { $0 + $1 * $1 }
    var lambda = 1e-2
    let parameters = poles.reduce(0) { $0 + ($1.isReal ? 1 : 2) }
    for _ in 0..<steps {
      if r.reduce(0, { $0 + Swift.abs($1) }) <= budget { break }
      let (b, columns) = basis(poles)
      let unknowns = columns + parameters
      let height = lags + parameters
      guard lags >= columns else { return (poles, coefficients) }
      // [B D], column-major, every column scaled to unit norm.
      var system = [Double](repeating: 0, count: height * unknowns)
      var scale = [Double](repeating: 1, count: unknowns)
      for j in 0..<columns { for k in 0..<lags { system[j * height + k] = b[j * lags + k] } }
      var column = columns
      var coefficientColumn = 0
      for pole in poles {
        // d/d log|z| of Re(c z^k) = Re(c k z^k); d/d angle = Re(i c k z^k) = -Im(c k z^k).
        let p = pole.value
        let (a, bb) = (coefficients[coefficientColumn], pole.isReal ? 0 : coefficients[coefficientColumn + 1])
        var (wr, wi) = (a * p.re - bb * p.im, a * p.im + bb * p.re)  // c z^k at k = 1
        for k in 0..<lags {
          let lag = Double(k + 1)
          system[column * height + k] = lag * wr
          if !pole.isReal { system[(column + 1) * height + k] = -lag * wi }
          (wr, wi) = (wr * p.re - wi * p.im, wr * p.im + wi * p.re)
        }
        column += pole.isReal ? 1 : 2
        coefficientColumn += pole.unknowns
      }
      for j in 0..<unknowns {
        var sum = 0.0
        for k in 0..<lags { sum += system[j * height + k] * system[j * height + k] }
        guard sum.isFinite else { return (poles, coefficients) }
        if sum > 0 { scale[j] = 1 / sum.squareRoot() }
        for k in 0..<lags { system[j * height + k] *= scale[j] }
      }
      var rhs = [Double](repeating: 0, count: height)
      for k in 0..<lags { rhs[k] = r[k] }

      var improved = false
      for _ in 0..<6 {
        var damped = system
        for i in 0..<parameters { damped[(columns + i) * height + lags + i] = lambda.squareRoot() }
        guard
          let x = LAPACK.leastSquares(damped, rows: height, columns: unknowns, rhs, rightHandSides: 1),
          x.allSatisfy(\.isFinite)
        else {
          lambda *= 10
          continue
        }
        var trial = poles
        var i = columns
        for j in trial.indices {
          let step = x[i] * scale[i]
          trial[j].logModulus = bounds.clamped(trial[j].logModulus + step)
          if !trial[j].isReal { trial[j].angle += x[i + 1] * scale[i + 1] }
          i += trial[j].isReal ? 1 : 2
        }
        if let c = residues(trial) {
          let rTrial = residual(trial, c)
          let costTrial = rTrial.reduce(0) { $0 + $1 * $1 }
          if costTrial < cost {
            (poles, coefficients, r, cost) = (trial, c, rTrial, costTrial)
            lambda = max(lambda / 10, 1e-12)
            improved = true
            break
          }
        }
        lambda *= 10
      }
      if !improved { break }
    }
    return (poles, coefficients)
  }
}

/// A value handed to concurrent workers that write disjoint parts of it.
struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}
