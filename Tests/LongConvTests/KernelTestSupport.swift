import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Testing

/// Checks the gradient of `sum(f() * R)` with respect to every parameter of `module` (a fixed,
/// seeded weighting `R`) against central finite differences with Richardson extrapolation,
/// as ``checkGradients`` does for plain inputs, but perturbing the module's own parameters in
/// place so the code under test is the module itself. Records one expectation per parameter
/// and returns the names checked.
@discardableResult
func checkParameterGradients(
  _ label: String, module: some Module, tolerance: Double = 1e-3, step: Double = 1e-2,
  seed: UInt64 = 0x6A09_E667, sourceLocation: SourceLocation = #_sourceLocation,
  _ f: () throws -> Tensor
) throws -> [String] {
  module.zeroGradients()
  defer { module.zeroGradients() }
  let output = try f()
  var rng = SeededGenerator(seed: seed)
  let weights = Tensor.normal(output.shape, generator: &rng)
  (output * weights).sum().backward()
  let weightValues = weights.doubles

  func evaluate() throws -> Double {
    let y = try Tensor.withoutRecording { try f() }
    return zip(y.doubles, weightValues).reduce(0) { $0 + $1.0 * $1.1 }
  }

  var names: [String] = []
  for (name, parameter) in module.namedParameters() {
    names.append(name)
    let analytic = parameter.gradient?.doubles ?? [Double](repeating: 0, count: parameter.count)
    let original = parameter.scalars
    var worst = (index: -1, error: 0.0, analytic: 0.0, numeric: 0.0)
    for j in original.indices {
      func centralDifference(_ h: Double) throws -> Double {
        let base = Double(original[j])
        let (up, down) = (Float(base + h), Float(base - h))
        parameter.withUnsafeMutableBufferPointer { $0[j] = up }
        let lossUp = try evaluate()
        parameter.withUnsafeMutableBufferPointer { $0[j] = down }
        let lossDown = try evaluate()
        parameter.withUnsafeMutableBufferPointer { $0[j] = original[j] }
        return (lossUp - lossDown) / (Double(up) - Double(down))
      }
      let numeric = (4 * (try centralDifference(step / 2)) - (try centralDifference(step))) / 3
      let error = Swift.abs(analytic[j] - numeric) / Swift.max(1, Swift.abs(numeric))
      if worst.index < 0 || error > worst.error { worst = (j, error, analytic[j], numeric) }
    }
    #expect(
      worst.error <= tolerance,
      """
      \(label): gradient of \(name) \(parameter.shape) at scalar \(worst.index): analytic \(worst.analytic) \
      vs numeric \(worst.numeric), error \(worst.error) > \(tolerance)
      """,
      sourceLocation: sourceLocation)
  }
  return names
}

/// A config reader for a JSON object written as a string.
func configReader(_ json: String) throws -> ConfigReader {
  try ConfigReader(JSONValue.parse(Data(json.utf8), source: "test"), file: "test.json")
}

/// The long convolution `y[b, i, c] = sum_j t_c[i - j] x[b, j, c] (+ skip_c x[b, i, c])` in
/// Double, dense: `coefficients` row-major `[D, L]` (causal) or `[D, 2L - 1]` (bidirectional).
func denseLongConvolution(
  _ x: [Double], batch: Int, length: Int, channels: Int, coefficients t: [Double],
  direction: ConvolutionDirection, skip: [Double]?
) -> [Double] {
  let columns = direction == .causal ? length : 2 * length - 1
  precondition(t.count == channels * columns, "denseLongConvolution: \(t.count) coefficients")
  var y = [Double](repeating: 0, count: x.count)
  for b in 0..<batch {
    for i in 0..<length {
      for c in 0..<channels {
        var acc = skip.map { $0[c] * x[(b * length + i) * channels + c] } ?? 0
        for j in 0..<length {
          let lag = i - j
          if direction == .causal && lag < 0 { continue }
          let column = direction == .causal ? lag : lag + length - 1
          acc += t[c * columns + column] * x[(b * length + j) * channels + c]
        }
        y[(b * length + i) * channels + c] = acc
      }
    }
  }
  return y
}
