import LongConvTensors
import Testing

// MARK: - Test inputs

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

// MARK: - Comparisons

/// `max_i |actual_i - expected_i| / max_i |expected_i|`: the error relative to the scale of the
/// whole expected array, with no floor (a floor of 1 makes the comparison absolute for values
/// below 1). Infinite for a count mismatch or a non-finite value that differs from its
/// expectation; 0 for equal arrays, infinite for any difference from an all-zero expectation.
public func relativeError(_ actual: [Double], _ expected: [Double]) -> Double {
  worstScalar(actual, expected).error
}

func worstScalar(_ actual: [Double], _ expected: [Double]) -> (index: Int, error: Double) {
  guard actual.count == expected.count else { return (-1, .infinity) }
  let scale = expected.reduce(0) { $1.isFinite ? Swift.max($0, Swift.abs($1)) : $0 }
  var worst = (index: -1, error: 0.0)
  for (i, (a, e)) in zip(actual, expected).enumerated() {
    let err: Double
    if a == e {
      err = 0  // also the same infinity
    } else if a.isFinite && e.isFinite {
      err = Swift.abs(a - e) / scale  // infinite when the expectation is all zeros
    } else {
      err = .infinity
    }
    if err > worst.error || worst.index < 0 { worst = (i, err) }
  }
  return worst
}

/// Expects `actual` to hold `expected` within `tolerance * max_i |expected_i|` for every
/// scalar, recording one expectation that names the worst scalar.
///
/// The default tolerance, 1e-5, is about a hundred Float32 ulps of the array's scale: room for
/// the rounding of a few chained Float operations, far below the error of a wrong formula.
public func expectClose(
  _ actual: [Double], _ expected: [Double], shape: [Int]? = nil, tolerance: Double = 1e-5, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  guard actual.count == expected.count else {
    Issue.record(
      "\(label): \(actual.count) scalars\(shape.map { " (shape \($0))" } ?? ""), expected \(expected.count)",
      sourceLocation: sourceLocation)
    return
  }
  let worst = worstScalar(actual, expected)
  guard worst.index >= 0 else { return }
  let scale = expected.reduce(0) { $1.isFinite ? Swift.max($0, Swift.abs($1)) : $0 }
  let position = shape.map { " \(Dense.unravel(worst.index, $0))" } ?? ""
  #expect(
    worst.error <= tolerance,
    """
    \(label): scalar \(worst.index)\(position) is \(actual[worst.index]), expected \(expected[worst.index]) \
    (error \(worst.error) > \(tolerance) of the largest expected magnitude \(scale))
    """,
    sourceLocation: sourceLocation)
}

/// ``expectClose(_:_:shape:tolerance:_:sourceLocation:)`` for a tensor.
public func expectClose(
  _ actual: Tensor, _ expected: [Double], tolerance: Double = 1e-5, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectClose(
    actual.doubles, expected, shape: actual.shape, tolerance: tolerance, label, sourceLocation: sourceLocation
  )
}

/// ``expectClose(_:_:shape:tolerance:_:sourceLocation:)`` for Float values.
public func expectClose(
  _ actual: [Float], _ expected: [Double], tolerance: Double = 1e-5, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectClose(actual.map(Double.init), expected, tolerance: tolerance, label, sourceLocation: sourceLocation)
}

/// Expects each entry of a Float32 product `C = A B` (or `alpha A B + beta C0`) to lie within
/// `c sqrt(k) magnitude_ij u` of its Double value, where `magnitude_ij = sum_p |a_ip| |b_pj|`
/// (plus `|beta c0_ij|`), `k` the depth and `u = 2^-24` the Float32 unit roundoff.
///
/// Accumulating `k` rounded products errs by at most `k u magnitude` in the worst case, and by
/// about `sqrt(k) u magnitude` when the rounding errors are independent, as they are for blocked
/// and vectorized sums of random data; `c = 4` leaves room for the final rounding and for the
/// partial sums a blocked product adds, and is still far below the error of a wrong index.
/// `magnitude` is what makes the bound per entry: it does not let one large output hide a wrong
/// small one, and it stays tight where cancellation makes the output itself small.
public func expectProductClose(
  _ actual: [Double], _ expected: [Double], magnitudes: [Double], depth k: Int, c: Double = 4,
  _ label: String, sourceLocation: SourceLocation = #_sourceLocation
) {
  guard actual.count == expected.count && magnitudes.count == expected.count else {
    Issue.record(
      "\(label): \(actual.count) values, \(expected.count) expected, \(magnitudes.count) magnitudes",
      sourceLocation: sourceLocation)
    return
  }
  let u = Double(Float.ulpOfOne) / 2
  let depth = Double(Swift.max(k, 1)).squareRoot()
  var worst = (index: -1, ratio: 0.0)
  for i in actual.indices {
    let bound = c * depth * magnitudes[i] * u
    let difference = Swift.abs(actual[i] - expected[i])
    let ratio = difference == 0 ? 0 : (difference.isFinite ? difference / bound : .infinity)
    if ratio > worst.ratio || worst.index < 0 { worst = (i, ratio) }
  }
  guard worst.index >= 0 else { return }
  let i = worst.index
  #expect(
    worst.ratio <= 1,
    """
    \(label): entry \(i) is \(actual[i]), expected \(expected[i]): off by \(Swift.abs(actual[i] - expected[i])), \
    \(worst.ratio) times the bound \(c) sqrt(\(k)) sum|a||b| u = \(c * depth * magnitudes[i] * u)
    """,
    sourceLocation: sourceLocation)
}
