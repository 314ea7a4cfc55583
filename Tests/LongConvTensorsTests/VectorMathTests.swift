import CCPUDispatch
import CVectorMath
import Foundation
import Testing

@testable import LongConvTensors

/// The vector activations (CVectorMath) of every instruction set this CPU runs, against their
/// closed forms in Double: every length from 0 to 40 (full vectors and every tail), inputs over
/// [-9, 9] and the clamps beyond, NaN kept.
@Suite struct VectorMathTests {
  static let available: [lck_isa] = [LCK_ISA_PORTABLE, LCK_ISA_AVX2, LCK_ISA_AVX512].filter {
    VectorMath.functions(for: $0) != nil
  }

  /// Inputs: a grid over [-9, 9] with seeded gradients and second inputs.
  static func inputs(_ n: Int) -> (x: [Float], g: [Float], b: [Float]) {
    var generator = SeededGenerator(seed: UInt64(n) + 1)
    let x = (0..<n).map { _ in 18 * generator.nextUniform() - 9 }
    let g = (0..<n).map { _ in 2 * generator.nextUniform() - 1 }
    let b = (0..<n).map { _ in 2 * generator.nextUniform() - 1 }
    return (x, g, b)
  }

  static func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

  /// `|got - want| <= tolerance * scale`, element by element, and nothing written past `n`.
  static func expectClose(
    _ got: [Float], _ want: [Double], scale: [Double], tolerance: Double, _ what: String
  ) {
    for i in want.indices {
      #expect(
        Swift.abs(Double(got[i]) - want[i]) <= tolerance * scale[i], "\(what) [\(i)]: \(got[i]) vs \(want[i])"
      )
    }
    #expect(got[want.count...].allSatisfy { $0 == -7 }, "\(what): wrote past the end")
  }

  @Test(arguments: available)
  func functionsMatchTheirClosedForms(_ isa: lck_isa) throws {
    let math = try #require(VectorMath.functions(for: isa))
    let name = String(cString: lck_isa_name(isa))
    for n in 0...40 {
      let (x, g, b) = Self.inputs(n)
      let xd = x.map(Double.init)
      func run(_ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        var out = [Float](repeating: -7, count: n + 8)
        out.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        return out
      }
      // exp: relative, as FastMath.exp (7.9e-8 measured there).
      let e = xd.map { Foundation.exp($0) }
      Self.expectClose(run { math.exp(x, $0, n) }, e, scale: e, tolerance: 2e-7, "\(name) exp n \(n)")

      // SiLU and its derivative: relative to the sum of the terms' magnitudes (the derivative
      // crosses zero near x = -1.28), plus |x| s / 4 for the rounding of 1 - s, which is
      // absolute in s and so relative to nothing when s is near 1.
      let s = xd.map(Self.sigmoid)
      let silu = zip(xd, s).map { $0 * $1 }
      Self.expectClose(
        run { math.silu(x, $0, n) }, silu, scale: silu.map { Swift.abs($0) }, tolerance: 5e-7,
        "\(name) silu n \(n)")
      let siluTerms = (0..<n).map { i -> Double in
        let inner: Double = 1 + Swift.abs(xd[i]) * (1 - s[i] + 0.25)
        return Swift.abs(Double(g[i])) * s[i] * inner
      }
      let siluDerivative = (0..<n).map { i -> Double in
        let inner: Double = 1 + xd[i] * (1 - s[i])
        return Double(g[i]) * s[i] * inner
      }
      Self.expectClose(
        run { math.silu_backward(g, x, $0, n) }, siluDerivative, scale: siluTerms, tolerance: 5e-7,
        "\(name) silu backward n \(n)")

      // The gate a sigmoid(a) b and both gradients, each output alone too.
      let gate = (0..<n).map { i in silu[i] * Double(b[i]) }
      Self.expectClose(
        run { math.silu_gate(x, b, $0, n) }, gate, scale: gate.map { Swift.abs($0) }, tolerance: 5e-7,
        "\(name) silu gate n \(n)")
      let da = (0..<n).map { i in siluDerivative[i] * Double(b[i]) }
      let daScale = (0..<n).map { i in siluTerms[i] * Swift.abs(Double(b[i])) }
      let db = (0..<n).map { i in Double(g[i]) * silu[i] }
      for (wantA, wantB) in [(true, true), (true, false), (false, true)] {
        var gotB = [Float](repeating: -7, count: n + 8)
        let gotA = run { da in
          gotB.withUnsafeMutableBufferPointer { db in
            math.silu_gate_backward(g, x, b, wantA ? da : nil, wantB ? db.baseAddress! : nil, n)
          }
        }
        if wantA {
          Self.expectClose(gotA, da, scale: daScale, tolerance: 5e-7, "\(name) gate da n \(n)")
        } else {
          #expect(gotA.allSatisfy { $0 == -7 }, "\(name): da written though not asked for")
        }
        if wantB {
          Self.expectClose(
            gotB, db, scale: db.map { Swift.abs($0) }, tolerance: 5e-7, "\(name) gate db n \(n)")
        } else {
          #expect(gotB.allSatisfy { $0 == -7 }, "\(name): db written though not asked for")
        }
      }

      // GELU's tanh form: x sigmoid(2u). A rounding of u moves sigmoid(2u) by a relative
      // 2 (1 - s) |2u| of it, so the scale carries that factor.
      let (a, c) = (0.7978845608028654, 0.044715)
      let u2 = xd.map { 2 * a * ($0 + c * $0 * $0 * $0) }
      let sg = u2.map(Self.sigmoid)
      let gelu = (0..<n).map { i in xd[i] * sg[i] }
      let geluScale = (0..<n).map { i in Swift.abs(gelu[i]) * (1 + Swift.abs(u2[i]) * (1 - sg[i])) }
      Self.expectClose(
        run { math.gelu_tanh(x, $0, n) }, gelu, scale: geluScale, tolerance: 8e-7, "\(name) gelu n \(n)")
      let geluDerivative = (0..<n).map { i -> Double in
        let slope: Double = a * (1 + 3 * c * xd[i] * xd[i])
        let second: Double = 2 * xd[i] * sg[i] * (1 - sg[i]) * slope
        return Double(g[i]) * (sg[i] + second)
      }
      let geluDerivativeScale = (0..<n).map { i -> Double in
        let slope: Double = a * (1 + 3 * c * xd[i] * xd[i])
        let second: Double = 2 * Swift.abs(xd[i]) * sg[i] * (1 - sg[i]) * slope
        return Swift.abs(Double(g[i])) * (sg[i] + second) * (1 + Swift.abs(u2[i]))
      }
      Self.expectClose(
        run { math.gelu_tanh_backward(g, x, $0, n) }, geluDerivative, scale: geluDerivativeScale,
        tolerance: 8e-7,
        "\(name) gelu backward n \(n)")
    }
  }

  /// Beyond the exponent's range: clamped as FastMath.exp (no infinity, no zero), so SiLU and
  /// GELU go to `x` and to (about) 0; NaN stays NaN.
  @Test(arguments: available)
  func extremesAndNaN(_ isa: lck_isa) throws {
    let math = try #require(VectorMath.functions(for: isa))
    let x: [Float] = [-1000, -100, 100, 1000, .nan, 0]
    var y = [Float](repeating: 0, count: x.count)
    math.exp(x, &y, x.count)
    #expect(y[0] > 0 && y[0] < 1e-37 && y[3].isFinite && y[3] > 1e38 && y[4].isNaN && y[5] == 1)
    math.silu(x, &y, x.count)
    #expect(Swift.abs(y[0]) < 1e-30 && y[2] == 100 && y[3] == 1000 && y[4].isNaN && y[5] == 0)
    math.gelu_tanh(x, &y, x.count)
    #expect(Swift.abs(y[1]) < 1e-30 && y[2] == 100 && y[4].isNaN && y[5] == 0)
  }

  /// The activations route through them: `silu()`, `geluTanh()` and `siluGate` against the
  /// scalar formulas of SiLUFunction and GELUTanhFunction (values and pullbacks).
  @Test func activationsUseTheVectorKernels() {
    let n = 1000
    let (x, g, b) = Self.inputs(n)
    for (function, apply) in [
      (SiLUFunction.self as any ElementwiseFunction.Type, { (t: Tensor) in t.silu() }),
      (GELUTanhFunction.self, { (t: Tensor) in t.geluTanh() }),
    ] {
      let input = Tensor(x).requiringGradient()
      let y = apply(input)
      (y * Tensor(g)).sum().backward()
      let dx = input.gradient!.scalars
      for i in 0..<n {
        let (v, d) = (function.value(x[i]), g[i] * function.derivative(x[i], function.value(x[i])))
        #expect(Swift.abs(y.scalars[i] - v) <= 1e-6 * max(1, Swift.abs(v)), "\(function) value \(x[i])")
        #expect(Swift.abs(dx[i] - d) <= 1e-5 * max(1, Swift.abs(d)), "\(function) derivative \(x[i])")
      }
    }
    let (a, v) = (Tensor(x).requiringGradient(), Tensor(b).requiringGradient())
    let gated = a.siluGate(v)
    (gated * Tensor(g)).sum().backward()
    for i in 0..<n {
      let silu = SiLUFunction.value(x[i])
      #expect(Swift.abs(gated.scalars[i] - silu * b[i]) <= 1e-6 * max(1, Swift.abs(silu * b[i])))
      let expected = g[i] * b[i] * SiLUFunction.derivative(x[i], silu)
      #expect(Swift.abs(a.gradient!.scalars[i] - expected) <= 1e-5 * max(1, Swift.abs(expected)))
      #expect(Swift.abs(v.gradient!.scalars[i] - g[i] * silu) <= 1e-6 * max(1, Swift.abs(g[i] * silu)))
    }
  }
}
