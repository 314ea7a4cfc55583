import LongConvTensors
import LongConvTestSupport
import Testing

/// LayerNorm, RMSNorm and SimpleRMSNorm over the last axis against their formulas in Double.
@Suite struct NormalizationTests {
  static let shape = [2, 3, 5]
  static let d = 5

  /// Applies `normalize` to each row of `x` (last axis) in Double, then `* weight + bias`.
  func reference(
    _ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, _ normalize: ([Double]) -> [Double]
  ) -> [Double] {
    let d = x.shape.last!
    let xd = x.doubles
    let (w, b) = (weight?.doubles, bias?.doubles)
    var out: [Double] = []
    for r in 0..<(x.count / d) {
      let y = normalize(Array(xd[r * d..<(r + 1) * d]))
      out += y.indices.map { j in y[j] * (w?[j] ?? 1) + (b?[j] ?? 0) }
    }
    return out
  }

  /// `(x - mean) / sqrt(var + eps)` with the biased variance.
  func layerNormRow(_ epsilon: Double) -> ([Double]) -> [Double] {
    { row in
      let n = Double(row.count)
      let mean = row.reduce(0, +) / n
      let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n
      return row.map { ($0 - mean) / (variance + epsilon).squareRoot() }
    }
  }

  /// `x / sqrt(mean(x^2) + eps)`.
  func rmsNormRow(_ epsilon: Double) -> ([Double]) -> [Double] {
    { row in
      let meanSquare = row.map { $0 * $0 }.reduce(0, +) / Double(row.count)
      return row.map { $0 / (meanSquare + epsilon).squareRoot() }
    }
  }

  /// `x / (||x||_2 * d^(-1/2) + 1e-8)` (MODELS.md).
  func simpleRMSNormRow(_ row: [Double]) -> [Double] {
    let norm = row.map { $0 * $0 }.reduce(0, +).squareRoot()
    return row.map { $0 / (norm / Double(row.count).squareRoot() + 1e-8) }
  }

  var input: Tensor { uniformTensor(Self.shape, seed: 111, low: -2, high: 2) }
  var weight: Tensor { uniformTensor([Self.d], seed: 112, low: 0.5, high: 1.5) }
  var bias: Tensor { uniformTensor([Self.d], seed: 113) }

  @Test func layerNormWithWeightAndBias() {
    let (x, w, b) = (input, weight, bias)
    let y = x.layerNorm(weight: w, bias: b)
    #expect(y.shape == Self.shape)
    expectClose(y, reference(x, weight: w, bias: b, layerNormRow(1e-5)), "layerNorm")
    checkGradients("layerNorm wrt input, weight, bias", inputs: [x, w, b]) {
      $0[0].layerNorm(weight: $0[1], bias: $0[2])
    }
  }

  @Test func layerNormWithoutParameters() {
    let x = input
    expectClose(x.layerNorm(), reference(x, layerNormRow(1e-5)), "layerNorm()")
    expectClose(x.layerNorm(epsilon: 0.5), reference(x, layerNormRow(0.5)), "layerNorm(epsilon: 0.5)")
    checkGradients("layerNorm()", inputs: [x]) { $0[0].layerNorm() }
    checkGradients("layerNorm(weight:)", inputs: [x, weight]) { $0[0].layerNorm(weight: $0[1]) }
    checkGradients("layerNorm(bias:)", inputs: [x, bias]) { $0[0].layerNorm(bias: $0[1]) }
  }

  @Test func layerNormGradientWithConstantParameters() {
    checkGradients("layerNorm wrt input only", inputs: [input, weight, bias], wrt: [0]) {
      $0[0].layerNorm(weight: $0[1], bias: $0[2])
    }
    checkGradients("layerNorm wrt weight only", inputs: [input, weight, bias], wrt: [1]) {
      $0[0].layerNorm(weight: $0[1], bias: $0[2])
    }
  }

  @Test func rmsNormWithWeight() {
    let (x, w) = (input, weight)
    let y = x.rmsNorm(weight: w)
    #expect(y.shape == Self.shape)
    expectClose(y, reference(x, weight: w, rmsNormRow(1e-6)), "rmsNorm")
    expectClose(x.rmsNorm(), reference(x, rmsNormRow(1e-6)), "rmsNorm()")
    checkGradients("rmsNorm wrt input and weight", inputs: [x, w]) { $0[0].rmsNorm(weight: $0[1]) }
    checkGradients("rmsNorm()", inputs: [x]) { $0[0].rmsNorm() }
  }

  @Test func simpleRMSNorm() {
    let x = input
    let y = x.simpleRMSNorm()
    #expect(y.shape == Self.shape)
    expectClose(y, reference(x, simpleRMSNormRow), "simpleRMSNorm")
    checkGradients("simpleRMSNorm", inputs: [x]) { $0[0].simpleRMSNorm() }
    // Its epsilon is outside the root: with a large one the two forms differ visibly.
    let eps = 0.5
    let outside = reference(x) { row in
      let rms = (row.map { $0 * $0 }.reduce(0, +) / Double(row.count)).squareRoot()
      return row.map { $0 / (rms + eps) }
    }
    expectClose(x.simpleRMSNorm(epsilon: Float(eps)), outside, "simpleRMSNorm(epsilon: 0.5)")
    checkGradients("simpleRMSNorm(epsilon: 0.5)", inputs: [x]) { $0[0].simpleRMSNorm(epsilon: Float(eps)) }
  }

  @Test func rankOneAndSingleRowInputs() {
    let x = uniformTensor([7], seed: 114, low: -2, high: 2)
    expectClose(x.layerNorm(), reference(x, layerNormRow(1e-5)), "layerNorm rank 1")
    expectClose(x.rmsNorm(), reference(x, rmsNormRow(1e-6)), "rmsNorm rank 1")
    expectClose(x.simpleRMSNorm(), reference(x, simpleRMSNormRow), "simpleRMSNorm rank 1")
    checkGradients("layerNorm rank 1", inputs: [x]) { $0[0].layerNorm() }
  }

  @Test func manyRowsSplitOverThreadsMatchDouble() {
    // 1024 rows of 48: both passes run on several threads.
    let x = uniformTensor([2, 512, 48], seed: 115, low: -2, high: 2)
    let w = uniformTensor([48], seed: 116, low: 0.5, high: 1.5)
    let b = uniformTensor([48], seed: 117)
    expectClose(x.simpleRMSNorm(), reference(x, simpleRMSNormRow), "simpleRMSNorm, many rows")
    expectClose(
      x.layerNorm(weight: w, bias: b), reference(x, weight: w, bias: b, layerNormRow(1e-5)),
      "layerNorm, many rows")
    // The input gradient of sum(norm(x) * r), row by row, against a small-batch evaluation
    // of the same rows (which runs on one thread).
    let r = uniformTensor([2, 512, 48], seed: 118)
    let xp = x.requiringGradient()
    (xp.layerNorm(weight: w, bias: b) * r).sum().backward()
    let rows = x.reshaped([1024, 48])
    let rr = r.reshaped([1024, 48])
    for row in [0, 511, 777, 1023] {
      let xi = rows.slice(axis: 0, row..<row + 1).requiringGradient()
      (xi.layerNorm(weight: w, bias: b) * rr.slice(axis: 0, row..<row + 1)).sum().backward()
      let full = xp.gradient!.reshaped([1024, 48]).slice(axis: 0, row..<row + 1)
      expectClose(full, xi.gradient!.doubles, "layerNorm gradient of row \(row)")
    }
  }

  @Test func constantAndZeroRowsStayFinite() {
    // A constant row has zero variance (layerNorm gives the bias); a zero row has zero norm.
    let x = try! Tensor(shape: [2, 4], scalars: [3, 3, 3, 3, 0, 0, 0, 0]).requiringGradient()
    let b = Tensor([0.5, -1, 2, 0])
    let outputs = [x.layerNorm(bias: b), x.rmsNorm(), x.simpleRMSNorm()]
    expectClose(outputs[0], b.doubles + b.doubles, "layerNorm of constant rows")
    for y in outputs {
      #expect(y.scalars.allSatisfy { $0.isFinite }, "\(y)")
    }
    (outputs[0].sum() + outputs[1].sum() + outputs[2].sum()).backward()
    #expect(x.gradient!.scalars.allSatisfy { $0.isFinite }, "\(x.gradient!)")
  }
}
