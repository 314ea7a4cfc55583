import LongConvTensors
import Testing

// Checks hand-written pullbacks against central finite differences evaluated in Double.
//
// The loss is `sum(f(...) * R)` for a fixed, seeded random weighting `R` of the output's
// shape, so every output scalar contributes and errors cannot cancel by symmetry. The
// analytic gradient comes from one `backward()`; the numeric one perturbs each checked scalar
// by `±h` and `±h/2` (recording off), accumulates the loss in Double, and combines the two
// central differences by Richardson extrapolation, `(4 D(h/2) - D(h)) / 3`, whose truncation
// error is `O(h^4)` instead of `O(h^2)`.
//
// Error measure. For each checked input (or parameter) `x` with numeric gradient `n` and
// analytic gradient `a`, the error is `max_j |a_j - n_j| / max_j |n_j|`: relative to the
// scale of that input's own gradient, with no floor. A floor such as `max(1, |n|)` turns the
// check absolute for gradients below 1, where a zero or missing pullback then passes.
//
// Negligible gradients. Measured against its own scale, a zero pullback is off by exactly 1,
// unless the numeric gradient is itself zero or rounding noise. So a checked input whose
// numeric gradient is below `negligibleGradient * S`, with `S = sum_i |y_i R_i|` the size of
// the loss's terms, fails the check: the test then proves nothing about that pullback. An
// input whose gradient is zero by design is named in `expectingZero` instead; then both
// gradients must be negligible.
//
// Why a tolerance of 1e-3 is safe. The ops compute in Float32, so each evaluated loss carries
// a rounding error of at most a few ulps of `S` (`u S`, `u = 6e-8`, usually much less as the
// errors of many terms cancel). Dividing by the step amplifies it to `u S / h`, `6e-6 S` for
// `h = 1e-2`: relative to the input's scale, `6e-6 S / max|n|`. For an input of order-1
// values reaching a handful of outputs, `max|n|` is a sizeable fraction of `S` and the error
// is 1e-5 or less; it approaches the tolerance only for inputs whose gradient is ~1e-3 of `S`
// (S4D's logDt, Hyena's inner filter): such tests take a larger step (`h = 3e-2`) when the
// function is smooth enough, or a smaller one (`h = 3e-3`) when truncation dominates, and say
// what they measured. The truncation error after extrapolation is `~h^4 f^(5)`. The largest
// error measured over the suite is 6.8e-4 (a Hyena order-3 frequency); most are below 1e-4. A
// wrong pullback (a missing factor, a transposed operand, a dropped term, a sign) is off by O(1)
// relative to the gradient's scale. The negligible threshold, 1e-6 S, is below even the worst
// case of that noise: a gradient that small cannot be checked at all.

/// Below `negligibleGradient * sum_i |y_i R_i|`, a numeric gradient is indistinguishable from
/// zero (see the comment at the top of this file).
public let negligibleGradient = 1e-6

/// The outcome of a gradient check: analytic and numeric gradients for every checked input.
public struct GradientCheckResult: Sendable {
  /// One checked scalar: where it is and how far the two gradients are apart.
  public struct Entry: Sendable, CustomStringConvertible {
    /// Which input: an index into `inputs` (or into the parameters).
    public var input: Int
    /// Which scalar of that input: its flat, row-major index.
    public var index: Int
    /// The gradient from `backward()`.
    public var analytic: Double
    /// The central difference, Richardson-extrapolated: `(4 D(h/2) - D(h)) / 3`.
    public var numeric: Double
    /// `|analytic - numeric|` divided by the input's scale, `max_j |numeric_j|`.
    public var error: Double

    /// The input, the scalar, both gradients and the error, on one line.
    public var description: String {
      "input \(input) scalar \(index): analytic \(analytic) vs numeric \(numeric) (error \(error))"
    }
  }

  /// The name of each input (`input 0`, ... or the parameter names).
  public var names: [String]
  /// Analytic gradient of each input (empty for inputs not checked); zeros where no gradient arrived.
  public var analytic: [[Double]]
  /// Whether a gradient arrived at each checked input at all (`false` for inputs not checked).
  public var arrived: [Bool]
  /// Numeric gradient of each input (empty for inputs not checked).
  public var numeric: [[Double]]
  /// `max_j |numeric_j|` of each input: the scale its errors are measured against (0 if not checked).
  public var scales: [Double]
  /// `sum_i |y_i R_i|`: the size of the loss's terms, the measure of a negligible gradient.
  public var lossScale: Double
  /// The worst scalar of each input (`nil` for inputs not checked or empty).
  public var worst: [Entry?]

  /// The largest error over all checked scalars.
  public var maxError: Double { worst.compactMap { $0?.error }.max() ?? 0 }

  /// Whether input `i`'s numeric gradient is too small to check a pullback against.
  public func isNegligible(input i: Int) -> Bool {
    !(scales[i] > negligibleGradient * lossScale)
  }

  /// How many scalars of input `i` exceed `tolerance`.
  public func failures(input i: Int, tolerance: Double) -> Int {
    zip(analytic[i], numeric[i]).filter { GradientCheckResult.error($0, $1, scale: scales[i]) > tolerance }
      .count
  }

  static func error(_ a: Double, _ n: Double, scale: Double) -> Double {
    guard a.isFinite && n.isFinite && scale.isFinite else { return .infinity }
    let difference = Swift.abs(a - n)
    return difference == 0 ? 0 : difference / scale  // a zero scale gives infinity
  }
}

/// The one finite-difference engine: `tensors[i]` for `i` in `checked` must be leaves that
/// require a gradient; `f` reads them, and they are perturbed in place one scalar at a time.
func finiteDifferenceCheck(
  _ tensors: [Tensor], names: [String], checked: [Int], step: Double, seed: UInt64,
  _ f: () throws -> Tensor
) rethrows -> GradientCheckResult {
  precondition(Tensor.isRecording, "gradientCheck: called with recording off")
  precondition(step > 0, "gradientCheck: step \(step)")
  for i in checked {
    precondition(tensors[i].requiresGradient, "gradientCheck: \(names[i]) does not require a gradient")
    tensors[i].zeroGradient()
  }
  defer { for i in checked { tensors[i].zeroGradient() } }

  // Analytic: one backward pass through the weighted sum.
  let output = try f()
  var rng = SeededGenerator(seed: seed)
  let weights = Tensor.normal(output.shape, generator: &rng)
  let loss = (output * weights).sum()
  if loss.requiresGradient { loss.backward() }
  let weightValues = weights.doubles
  let lossScale = zip(output.doubles, weightValues).reduce(0) { $0 + Swift.abs($1.0 * $1.1) }

  // Numeric: the same loss in Double, one scalar perturbed at a time.
  func evaluate() throws -> Double {
    let y = try Tensor.withoutRecording { try f() }
    precondition(
      y.shape == output.shape, "gradientCheck: output shape changed from \(output.shape) to \(y.shape)")
    return y.withUnsafeBufferPointer { p in
      var acc = 0.0
      for j in 0..<p.count { acc += Double(p[j]) * weightValues[j] }
      return acc
    }
  }

  let count = tensors.count
  var result = GradientCheckResult(
    names: names, analytic: .init(repeating: [], count: count),
    arrived: .init(repeating: false, count: count),
    numeric: .init(repeating: [], count: count), scales: .init(repeating: 0, count: count),
    lossScale: lossScale, worst: .init(repeating: nil, count: count))
  for i in checked {
    let tensor = tensors[i]
    let gradient = tensor.gradient
    result.arrived[i] = gradient != nil
    let analytic = gradient?.doubles ?? [Double](repeating: 0, count: tensor.count)
    let original = tensor.scalars
    var numeric = [Double](repeating: 0, count: original.count)
    for j in original.indices {
      func centralDifference(_ h: Double) throws -> Double {
        let base = Double(original[j])
        let (up, down) = (Float(base + h), Float(base - h))
        defer { tensor.withUnsafeMutableBufferPointer { $0[j] = original[j] } }
        tensor.withUnsafeMutableBufferPointer { $0[j] = up }
        let lossUp = try evaluate()
        tensor.withUnsafeMutableBufferPointer { $0[j] = down }
        let lossDown = try evaluate()
        // Divide by the step actually taken after rounding the inputs to Float.
        return (lossUp - lossDown) / (Double(up) - Double(down))
      }
      numeric[j] = (4 * (try centralDifference(step / 2)) - (try centralDifference(step))) / 3
    }
    let scale = numeric.reduce(0) { Swift.max($0, Swift.abs($1)) }
    let finiteScale = numeric.allSatisfy(\.isFinite) ? scale : .infinity
    result.analytic[i] = analytic
    result.numeric[i] = numeric
    result.scales[i] = finiteScale
    for j in numeric.indices {
      let e = GradientCheckResult.error(analytic[j], numeric[j], scale: finiteScale)
      if result.worst[i] == nil || e > result.worst[i]!.error {
        result.worst[i] = .init(input: i, index: j, analytic: analytic[j], numeric: numeric[j], error: e)
      }
    }
  }
  return result
}

/// Computes analytic and numeric gradients of `sum(f(inputs) * R)` without recording any
/// expectation; see ``checkGradients(_:inputs:wrt:expectingZero:tolerance:step:seed:sourceLocation:_:)``.
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
  let checked = Set(wrt ?? Array(inputs.indices))
  precondition(
    checked.allSatisfy(inputs.indices.contains), "gradientCheck: wrt \(checked) for \(inputs.count) inputs")
  let params = inputs.indices.map {
    checked.contains($0) ? inputs[$0].copy().requiringGradient() : inputs[$0].copy()
  }
  return finiteDifferenceCheck(
    params, names: inputs.indices.map { "input \($0)" }, checked: checked.sorted(), step: step, seed: seed
  ) { f(params) }
}

/// Computes analytic and numeric gradients of `sum(f() * R)` with respect to `parameters`,
/// tensors that `f` reads (a module's own, typically): they are perturbed in place and
/// restored, and their gradients are zero afterwards.
public func gradientCheck(
  parameters: [(name: String, tensor: Tensor)], step: Double = 1e-2, seed: UInt64 = 0x6A09_E667,
  _ f: () throws -> Tensor
) rethrows -> GradientCheckResult {
  try finiteDifferenceCheck(
    parameters.map(\.tensor), names: parameters.map(\.name), checked: Array(parameters.indices), step: step,
    seed: seed, f)
}

/// Expects the pullback of `f` to match central finite differences at `inputs`, for every
/// input in `wrt` (all by default): `max_j |analytic_j - numeric_j| <= tolerance * max_j |numeric_j|`
/// per input, with a numeric gradient that is not negligible (see ``negligibleGradient``).
/// Inputs in `expectingZero` must instead get a negligible gradient, analytic and numeric.
/// Records one expectation per input, naming the op, the input and the worst scalar.
///
/// ```swift
/// checkGradients("matmul", inputs: [a, b]) { $0[0].matmul($0[1]) }
/// ```
@discardableResult
public func checkGradients(
  _ op: String, inputs: [Tensor], wrt: [Int]? = nil, expectingZero: Set<Int> = [], tolerance: Double = 1e-3,
  step: Double = 1e-2, seed: UInt64 = 0x6A09_E667, sourceLocation: SourceLocation = #_sourceLocation,
  _ f: ([Tensor]) -> Tensor
) -> GradientCheckResult {
  let result = gradientCheck(inputs: inputs, wrt: wrt, step: step, seed: seed, f)
  expectGradients(
    result, op, shapes: inputs.map(\.shape), expectingZero: expectingZero, tolerance: tolerance,
    sourceLocation: sourceLocation)
  return result
}

/// ``checkGradients(_:inputs:wrt:expectingZero:tolerance:step:seed:sourceLocation:_:)`` for
/// tensors `f` reads, such as a module's parameters (`module.namedParameters()`), perturbed in
/// place; `expectingZero` names parameters whose gradient is zero by design.
@discardableResult
public func checkGradients(
  _ op: String, parameters: [(name: String, tensor: Tensor)], expectingZero: Set<String> = [],
  tolerance: Double = 1e-3, step: Double = 1e-2, seed: UInt64 = 0x6A09_E667,
  sourceLocation: SourceLocation = #_sourceLocation, _ f: () throws -> Tensor
) rethrows -> GradientCheckResult {
  let unknown = expectingZero.subtracting(parameters.map(\.name))
  #expect(
    unknown.isEmpty, "\(op): expectingZero names no parameter: \(unknown.sorted())",
    sourceLocation: sourceLocation)
  let result = try gradientCheck(parameters: parameters, step: step, seed: seed, f)
  expectGradients(
    result, op, shapes: parameters.map(\.tensor.shape),
    expectingZero: Set(parameters.indices.filter { expectingZero.contains(parameters[$0].name) }),
    tolerance: tolerance, sourceLocation: sourceLocation)
  return result
}

func expectGradients(
  _ result: GradientCheckResult, _ op: String, shapes: [[Int]], expectingZero: Set<Int>, tolerance: Double,
  sourceLocation: SourceLocation
) {
  let floor = negligibleGradient * result.lossScale
  for (i, entry) in result.worst.enumerated() {
    guard let entry else { continue }
    let what = "\(op): gradient of \(result.names[i]) (shape \(shapes[i]))"
    let largestAnalytic = result.analytic[i].reduce(0) { Swift.max($0, Swift.abs($1)) }
    if expectingZero.contains(i) {
      #expect(
        result.scales[i] <= floor && largestAnalytic <= floor,
        """
        \(what) should be zero: max |numeric| \(result.scales[i]), max |analytic| \(largestAnalytic), \
        negligible below \(floor)
        """,
        sourceLocation: sourceLocation)
    } else if result.isNegligible(input: i) {
      Issue.record(
        """
        \(what): the numeric gradient is negligible (max |numeric| \(result.scales[i]) <= \(floor), \
        \(negligibleGradient) of the loss terms' size \(result.lossScale)), so no pullback can be checked here; \
        choose inputs where it is not, or pass the input in expectingZero if it is zero by design
        """,
        sourceLocation: sourceLocation)
    } else {
      let position = Dense.unravel(entry.index, shapes[i])
      #expect(
        entry.error <= tolerance,
        """
        \(what) at scalar \(entry.index) \(position): analytic \(entry.analytic) vs numeric \(entry.numeric), \
        error \(entry.error) > \(tolerance) of the gradient's scale \(result.scales[i]) (loss terms' size \(result.lossScale)); \
        \(result.failures(input: i, tolerance: tolerance)) of \(result.numeric[i].count) scalars over tolerance\
        \(result.arrived[i] ? "" : "; no gradient arrived")
        """,
        sourceLocation: sourceLocation)
    }
  }
}
