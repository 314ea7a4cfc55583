import LongConvTensors
import Testing

// Checks hand-written pullbacks against central finite differences evaluated in Double.
//
// The loss is `sum(f(inputs) * R)` for a fixed, seeded random weighting `R` of the output's
// shape, so every output scalar contributes and errors cannot cancel by symmetry. The
// analytic gradient comes from one `backward()`; the numeric one perturbs each input
// scalar by `±h` and `±h/2` (recording off), accumulates the loss in Double, and combines
// the two central differences by Richardson extrapolation, `(4 D(h/2) - D(h)) / 3`, whose
// truncation error is `O(h^4)` instead of `O(h^2)`.
//
// Why a tolerance of 1e-3 is safe: the ops compute in Float32, so every output scalar
// carries a rounding error of a few ulps (`~1e-7` relative). Through the loss that is a noise
// of about `n * 1e-7 * |f|` for `n` output scalars, and dividing by the step (`h = 1e-2`)
// amplifies it to `~n * 1e-5 * |f|`: around 1e-4 for the few dozen outputs the tests use
// (the largest error measured over the LongConvTensors suite is 1.3e-4).
// The truncation error after extrapolation is `~h^4 f^(5) ~ 1e-8`. A wrong pullback (a
// missing factor, a transposed operand, a dropped term) is off by O(1) relative error.

/// The outcome of a gradient check: analytic and numeric gradients for every checked input.
public struct GradientCheckResult: Sendable {
  /// One checked scalar: where it is and how far the two gradients are apart.
  public struct Entry: Sendable, CustomStringConvertible {
    /// Which input: an index into `inputs`.
    public var input: Int
    /// Which scalar of that input: its flat, row-major index.
    public var index: Int
    /// The gradient from `backward()`.
    public var analytic: Double
    /// The central difference, Richardson-extrapolated: `(4 D(h/2) - D(h)) / 3`.
    public var numeric: Double
    /// `|analytic - numeric| / max(1, |numeric|)`.
    public var error: Double

    /// The input, the scalar, both gradients and the error, on one line.
    public var description: String {
      "input \(input) scalar \(index): analytic \(analytic) vs numeric \(numeric) (error \(error))"
    }
  }

  /// Analytic gradient of each input (empty for inputs not checked); zeros where no gradient arrived.
  public var analytic: [[Double]]
  /// Numeric gradient of each input (empty for inputs not checked).
  public var numeric: [[Double]]
  /// The worst scalar of each input (`nil` for inputs not checked or empty).
  public var worst: [Entry?]

  /// The largest error over all checked scalars.
  public var maxError: Double { worst.compactMap { $0?.error }.max() ?? 0 }

  /// How many scalars of input `i` exceed `tolerance`.
  public func failures(input i: Int, tolerance: Double) -> Int {
    zip(analytic[i], numeric[i]).filter { GradientCheckResult.error($0, $1) > tolerance }.count
  }

  static func error(_ a: Double, _ n: Double) -> Double {
    guard a.isFinite && n.isFinite else { return .infinity }
    return Swift.abs(a - n) / Swift.max(1, Swift.abs(n))
  }
}

/// Computes analytic and numeric gradients of `sum(f(inputs) * R)` without recording any
/// expectation; see ``checkGradients(_:inputs:wrt:tolerance:step:seed:sourceLocation:_:)``.
///
/// - Parameters:
///   - inputs: the values to differentiate at; they are copied, never modified.
///   - wrt: the indices of the inputs to differentiate (all by default); the others are
///     passed to `f` as constants.
///   - step: the finite-difference step `h`; pick inputs at least `h` away from any kink.
///   - seed: seed of the weighting tensor `R`.
///   - f: the function under test; it must be deterministic.
public func gradientCheck(
  inputs: [Tensor], wrt: [Int]? = nil, step: Double = 1e-2, seed: UInt64 = 0x6A09_E667,
  _ f: ([Tensor]) -> Tensor
) -> GradientCheckResult {
  precondition(Tensor.isRecording, "gradientCheck: called with recording off")
  let checked = Set(wrt ?? Array(inputs.indices))
  let constants = inputs.map { $0.copy() }
  let params = constants.indices.map {
    checked.contains($0) ? constants[$0].requiringGradient() : constants[$0]
  }

  // Analytic: one backward pass through the weighted sum.
  let output = f(params)
  var rng = SeededGenerator(seed: seed)
  let weights = Tensor.normal(output.shape, generator: &rng)
  let loss = (output * weights).sum()
  if loss.requiresGradient { loss.backward() }
  let weightValues = weights.doubles

  // Numeric: the same loss in Double, inputs perturbed one scalar at a time.
  func evaluate(_ values: [Tensor]) -> Double {
    let y = Tensor.withoutRecording { f(values) }
    precondition(
      y.shape == output.shape, "gradientCheck: output shape changed from \(output.shape) to \(y.shape)")
    return y.withUnsafeBufferPointer { p in
      var acc = 0.0
      for j in 0..<p.count { acc += Double(p[j]) * weightValues[j] }
      return acc
    }
  }

  var analytic = [[Double]](repeating: [], count: inputs.count)
  var numeric = [[Double]](repeating: [], count: inputs.count)
  var worst = [GradientCheckResult.Entry?](repeating: nil, count: inputs.count)
  for i in inputs.indices where checked.contains(i) {
    analytic[i] = params[i].gradient?.doubles ?? [Double](repeating: 0, count: inputs[i].count)
    let values = constants.map { $0.copy() }
    let original = constants[i].scalars
    var grads = [Double](repeating: 0, count: original.count)
    for j in original.indices {
      func centralDifference(_ h: Double) -> Double {
        let base = Double(original[j])
        let (up, down) = (Float(base + h), Float(base - h))
        values[i].withUnsafeMutableBufferPointer { $0[j] = up }
        let lossUp = evaluate(values)
        values[i].withUnsafeMutableBufferPointer { $0[j] = down }
        let lossDown = evaluate(values)
        values[i].withUnsafeMutableBufferPointer { $0[j] = original[j] }
        // Divide by the step actually taken after rounding the inputs to Float.
        return (lossUp - lossDown) / (Double(up) - Double(down))
      }
      grads[j] = (4 * centralDifference(step / 2) - centralDifference(step)) / 3
    }
    numeric[i] = grads
    for j in grads.indices {
      let e = GradientCheckResult.error(analytic[i][j], grads[j])
      if worst[i] == nil || e > worst[i]!.error {
        worst[i] = .init(input: i, index: j, analytic: analytic[i][j], numeric: grads[j], error: e)
      }
    }
  }
  return GradientCheckResult(analytic: analytic, numeric: numeric, worst: worst)
}

/// Expects the pullback of `f` to match central finite differences at `inputs`, for every
/// input in `wrt` (all by default): `|analytic - numeric| <= tolerance * max(1, |numeric|)`
/// for every scalar. Records one expectation per input, naming the op, the input and the
/// worst scalar.
///
/// ```swift
/// checkGradients("matmul", inputs: [a, b]) { $0[0].matmul($0[1]) }
/// ```
@discardableResult
public func checkGradients(
  _ op: String, inputs: [Tensor], wrt: [Int]? = nil, tolerance: Double = 1e-3, step: Double = 1e-2,
  seed: UInt64 = 0x6A09_E667, sourceLocation: SourceLocation = #_sourceLocation,
  _ f: ([Tensor]) -> Tensor
) -> GradientCheckResult {
  let result = gradientCheck(inputs: inputs, wrt: wrt, step: step, seed: seed, f)
  for (i, entry) in result.worst.enumerated() {
    guard let entry else { continue }
    let position = Dense.unravel(entry.index, inputs[i].shape)
    #expect(
      entry.error <= tolerance,
      """
      \(op): gradient of input \(i) (shape \(inputs[i].shape)) at scalar \(entry.index) \(position): \
      analytic \(entry.analytic) vs numeric \(entry.numeric), error \(entry.error) > \(tolerance); \
      \(result.failures(input: i, tolerance: tolerance)) of \(inputs[i].count) scalars over tolerance
      """,
      sourceLocation: sourceLocation)
  }
  return result
}

// MARK: - Dense references in Double

/// Dense reference computations in Double, and row-major index arithmetic, for tests.
public enum Dense {
  /// The multi-index of row-major position `flat` in `shape`.
  public static func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
    var index = [Int](repeating: 0, count: shape.count)
    var rest = flat
    for axis in shape.indices.reversed() where shape[axis] > 0 {
      index[axis] = rest % shape[axis]
      rest /= shape[axis]
    }
    return index
  }

  /// The row-major position of `index` in `shape`.
  public static func ravel(_ index: [Int], _ shape: [Int]) -> Int {
    precondition(index.count == shape.count, "Dense.ravel: index \(index) for shape \(shape)")
    var flat = 0
    for (i, extent) in zip(index, shape) { flat = flat * extent + i }
    return flat
  }

  /// The position in an operand of `shape` that NumPy broadcasting reads for output `index`:
  /// axes aligned at the end, extent-1 axes pinned to 0, missing leading axes dropped.
  public static func broadcastOffset(_ index: [Int], into shape: [Int]) -> Int {
    precondition(index.count >= shape.count, "Dense.broadcastOffset: index \(index) for shape \(shape)")
    let lead = index.count - shape.count
    let own = shape.indices.map { shape[$0] == 1 ? 0 : index[lead + $0] }
    return ravel(own, shape)
  }

  /// `C = A B` for row-major `A` `[m, k]` and `B` `[k, n]`.
  public static func matmul(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int) -> [Double] {
    precondition(
      a.count == m * k && b.count == k * n, "Dense.matmul: sizes do not match [\(m), \(k)] x [\(k), \(n)]")
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
      for p in 0..<k {
        let aip = a[i * k + p]
        for j in 0..<n { c[i * n + j] += aip * b[p * n + j] }
      }
    }
    return c
  }

  /// The transpose of a row-major `[rows, columns]` matrix.
  public static func transpose(_ a: [Double], rows: Int, columns: Int) -> [Double] {
    precondition(a.count == rows * columns, "Dense.transpose: \(a.count) values for [\(rows), \(columns)]")
    var t = [Double](repeating: 0, count: a.count)
    for i in 0..<rows {
      for j in 0..<columns { t[j * rows + i] = a[i * columns + j] }
    }
    return t
  }
}

// MARK: - Test inputs and comparisons

extension Tensor {
  /// The scalars converted to Double.
  public var doubles: [Double] { withUnsafeBufferPointer { $0.map(Double.init) } }
}

/// Uniform values on `[low, high)`, reproducible for `seed`.
public func uniformTensor(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
  var rng = SeededGenerator(seed: seed)
  return Tensor.uniform(shape, low: low, high: high, generator: &rng)
}

/// Values with magnitudes uniform in `magnitudes` and random signs: inputs kept away from a
/// kink at 0 (relu, abs) or a pole (division), reproducible for `seed`.
public func signedTensor(_ shape: [Int], seed: UInt64, magnitudes: ClosedRange<Float> = 0.1...1) -> Tensor {
  var rng = SeededGenerator(seed: seed)
  let values = (0..<Tensor.elementCount(shape)).map { _ -> Float in
    let m = magnitudes.lowerBound + (magnitudes.upperBound - magnitudes.lowerBound) * rng.nextUniform()
    return rng.next() & 1 == 0 ? m : -m
  }
  return try! Tensor(shape: shape, scalars: values)
}

/// Expects `actual` to hold `expected` within `tolerance * max(1, |expected|)` per scalar,
/// recording one expectation that names the worst scalar.
///
/// The default tolerance, 1e-5, is about a hundred Float32 ulps: room for the rounding of a
/// few chained Float operations, far below the error of a wrong formula.
public func expectClose(
  _ actual: Tensor, _ expected: [Double], tolerance: Double = 1e-5, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  guard actual.count == expected.count else {
    Issue.record(
      "\(label): \(actual.count) scalars (shape \(actual.shape)), expected \(expected.count)",
      sourceLocation: sourceLocation)
    return
  }
  let values = actual.doubles
  var worst = (index: -1, error: 0.0)
  for (i, (a, e)) in zip(values, expected).enumerated() {
    let err: Double
    if a.isFinite && e.isFinite {
      err = Swift.abs(a - e) / Swift.max(1, Swift.abs(e))
    } else {
      err = a == e ? 0 : .infinity  // the same infinity is exact; NaN never is
    }
    if err > worst.error { worst = (i, err) }
  }
  #expect(
    worst.index < 0 || worst.error <= tolerance,
    """
    \(label): scalar \(worst.index) \(worst.index >= 0 ? Dense.unravel(worst.index, actual.shape) : []) is \
    \(worst.index >= 0 ? values[worst.index] : 0), expected \(worst.index >= 0 ? expected[worst.index] : 0) \
    (error \(worst.error) > \(tolerance))
    """,
    sourceLocation: sourceLocation)
}
