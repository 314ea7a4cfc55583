import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

/// Arithmetic with broadcasting and the activations, forward against Double closed forms and
/// pullbacks against finite differences.
@Suite struct ElementwiseTests {
  enum BinaryOp: String, CaseIterable, Sendable {
    case add, subtract, multiply, divide

    func callAsFunction(_ a: Tensor, _ b: Tensor) -> Tensor {
      switch self {
      case .add: a + b
      case .subtract: a - b
      case .multiply: a * b
      case .divide: a / b
      }
    }

    func callAsFunction(_ a: Double, _ b: Double) -> Double {
      switch self {
      case .add: a + b
      case .subtract: a - b
      case .multiply: a * b
      case .divide: a / b
      }
    }
  }

  struct ShapePair: Sendable, CustomTestStringConvertible {
    var a: [Int], b: [Int], result: [Int]
    var testDescription: String { "\(a) with \(b)" }
  }

  static let shapePairs: [ShapePair] = [
    .init(a: [2, 3], b: [2, 3], result: [2, 3]),
    .init(a: [2, 3, 4], b: [4], result: [2, 3, 4]),
    .init(a: [2, 3, 4], b: [3, 1], result: [2, 3, 4]),
    .init(a: [2, 3, 4], b: [1], result: [2, 3, 4]),
    .init(a: [2, 3, 4], b: [], result: [2, 3, 4]),
    .init(a: [2, 1, 4], b: [3, 1], result: [2, 3, 4]),
    // The broadcast operand on the left.
    .init(a: [4], b: [2, 3, 4], result: [2, 3, 4]),
    .init(a: [], b: [2, 3], result: [2, 3]),
    .init(a: [3, 1], b: [2, 1, 4], result: [2, 3, 4]),
    // Axes that broadcast on both sides, interleaved.
    .init(a: [2, 1, 3, 1], b: [4, 1, 2], result: [2, 4, 3, 2]),
    .init(a: [1, 4], b: [4], result: [1, 4]),
  ]

  /// Division keeps the divisor away from 0; the other ops take any values.
  func operands(_ op: BinaryOp, _ pair: ShapePair) -> (Tensor, Tensor) {
    let a = uniformTensor(pair.a, seed: 11, low: -2, high: 2)
    let b =
      op == .divide
      ? signedTensor(pair.b, seed: 12, magnitudes: 0.5...1.5)
      : uniformTensor(pair.b, seed: 12, low: -2, high: 2)
    return (a, b)
  }

  @Test(arguments: BinaryOp.allCases, shapePairs)
  func binaryForwardMatchesDouble(op: BinaryOp, pair: ShapePair) {
    let (a, b) = operands(op, pair)
    let y = op(a, b)
    #expect(y.shape == pair.result)
    let (ad, bd) = (a.doubles, b.doubles)
    let expected = (0..<Tensor.elementCount(pair.result)).map { flat -> Double in
      let index = Dense.unravel(flat, pair.result)
      return op(
        ad[Dense.broadcastOffset(index, into: pair.a)], bd[Dense.broadcastOffset(index, into: pair.b)])
    }
    expectClose(y, expected, "\(op) \(pair.testDescription)")
  }

  @Test(arguments: BinaryOp.allCases, shapePairs)
  func binaryGradients(op: BinaryOp, pair: ShapePair) {
    let (a, b) = operands(op, pair)
    checkGradients("\(op) \(pair.testDescription)", inputs: [a, b]) { op($0[0], $0[1]) }
  }

  @Test(arguments: BinaryOp.allCases)
  func gradientsWithOneConstantOperand(op: BinaryOp) {
    let pair = ShapePair(a: [2, 3, 4], b: [3, 1], result: [2, 3, 4])
    let (a, b) = operands(op, pair)
    checkGradients("\(op) wrt lhs", inputs: [a, b], wrt: [0]) { op($0[0], $0[1]) }
    checkGradients("\(op) wrt rhs", inputs: [a, b], wrt: [1]) { op($0[0], $0[1]) }
  }

  @Test func floatOperandsAndNegation() {
    let x = signedTensor([2, 3], seed: 3, magnitudes: 0.5...2)
    let xd = x.doubles
    expectClose(x + 2, xd.map { $0 + 2 }, "x + 2")
    expectClose(2 + x, xd.map { 2 + $0 }, "2 + x")
    expectClose(x - 2, xd.map { $0 - 2 }, "x - 2")
    expectClose(2 - x, xd.map { 2 - $0 }, "2 - x")
    expectClose(x * 3, xd.map { $0 * 3 }, "x * 3")
    expectClose(3 * x, xd.map { 3 * $0 }, "3 * x")
    expectClose(x / 4, xd.map { $0 / 4 }, "x / 4")
    expectClose(3 / x, xd.map { 3 / $0 }, "3 / x")
    expectClose(-x, xd.map { -$0 }, "-x")
    checkGradients("negation", inputs: [x]) { -$0[0] }
    checkGradients("3 / x", inputs: [x]) { 3 / $0[0] }
    checkGradients("2 - x", inputs: [x]) { 2 - $0[0] }
  }

  /// Large enough that the flat loops split across threads (`parallelRanges`).
  @Test func largeOperandsTakeTheParallelPath() {
    let n = 70_000
    let a = uniformTensor([n], seed: 21)
    let b = uniformTensor([n], seed: 22)
    let (ad, bd) = (a.doubles, b.doubles)
    expectClose(a * b, zip(ad, bd).map { $0 * $1 }, "large a * b")
    expectClose(a - Tensor(0.5), ad.map { $0 - 0.5 }, "large a - scalar")
    expectClose(Tensor(0.5) - a, ad.map { 0.5 - $0 }, "large scalar - a")
    expectClose(a.exp(), ad.map { Foundation.exp($0) }, "large exp")
    let m = a.reshaped([700, 100]) + b.slice(axis: 0, 0..<100)
    expectClose(m, (0..<n).map { ad[$0] + bd[$0 % 100] }, "large [700, 100] + [100]")
  }

  // MARK: Activations

  enum Activation: String, CaseIterable, Sendable {
    case relu, silu, gelu, geluTanh, sigmoid, tanh, sin, cos, exp, log, softplus, abs, sqrt, squared

    func callAsFunction(_ x: Tensor) -> Tensor {
      switch self {
      case .relu: x.relu()
      case .silu: x.silu()
      case .gelu: x.gelu()
      case .geluTanh: x.geluTanh()
      case .sigmoid: x.sigmoid()
      case .tanh: x.tanh()
      case .sin: x.sin()
      case .cos: x.cos()
      case .exp: x.exp()
      case .log: x.log()
      case .softplus: x.softplus()
      case .abs: x.abs()
      case .sqrt: x.sqrt()
      case .squared: x.squared()
      }
    }

    /// The closed form in Double.
    func callAsFunction(_ x: Double) -> Double {
      switch self {
      case .relu: Swift.max(x, 0)
      case .silu: x / (1 + Foundation.exp(-x))
      case .gelu: 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
      case .geluTanh:
        0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
      case .sigmoid: 1 / (1 + Foundation.exp(-x))
      case .tanh: Foundation.tanh(x)
      case .sin: Foundation.sin(x)
      case .cos: Foundation.cos(x)
      case .exp: Foundation.exp(x)
      case .log: Foundation.log(x)
      case .softplus: Foundation.log(1 + Foundation.exp(x))
      case .abs: Swift.abs(x)
      case .sqrt: x.squareRoot()
      case .squared: x * x
      }
    }

    /// Inputs inside the domain and at least 0.05 away from kinks.
    var input: Tensor {
      switch self {
      case .log, .sqrt: uniformTensor([3, 5], seed: 31, low: 0.2, high: 3)
      case .relu, .abs: signedTensor([3, 5], seed: 32, magnitudes: 0.05...2)
      default: uniformTensor([3, 5], seed: 33, low: -3, high: 3)
      }
    }
  }

  @Test(arguments: Activation.allCases)
  func activationForwardMatchesDouble(f: Activation) {
    let x = f.input
    let y = f(x)
    #expect(y.shape == x.shape)
    expectClose(y, x.doubles.map { f($0) }, tolerance: 2e-6, "\(f)")
  }

  @Test(arguments: Activation.allCases)
  func activationGradients(f: Activation) {
    checkGradients("\(f)", inputs: [f.input]) { f($0[0]) }
  }

  @Test func reluAndAbsAtZeroHaveZeroDerivative() {
    let x = Tensor([0, 0]).requiringGradient()
    (x.relu().sum() + x.abs().sum()).backward()
    #expect(x.gradient?.scalars == [0, 0])
  }

  @Test func signIsPiecewiseConstant() {
    let x = Tensor([-2, 0, 0.5]).requiringGradient()
    let y = x.sign()
    #expect(y.scalars == [-1, 0, 1])
    (y * Tensor([1, 2, 3])).sum().backward()
    #expect(x.gradient?.scalars == [0, 0, 0])
  }

  @Test func softplusDoesNotOverflowForLargeInputs() {
    let values: [Float] = [-100, -50, -20, -1, 0, 1, 20, 50, 100]
    let x = Tensor(values).requiringGradient()
    let y = x.softplus()
    // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact in Double for these magnitudes.
    let expected = values.map { v -> Double in
      let x = Double(v)
      return Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
    }
    #expect(y.scalars.allSatisfy { $0.isFinite })
    expectClose(y, expected, tolerance: 1e-6, "softplus at large |x|")
    y.sum().backward()
    let grad = x.gradient!
    #expect(grad.scalars.allSatisfy { $0.isFinite })
    expectClose(
      grad, values.map { 1 / (1 + Foundation.exp(-Double($0))) }, tolerance: 1e-6, "softplus derivative")
  }

  @Test(arguments: [Activation.silu, .gelu, .geluTanh, .sigmoid, .tanh, .softplus])
  func saturatingActivationsStayFinite(f: Activation) {
    let values: [Float] = [-1000, -100, -50, 50, 100, 1000]
    let x = Tensor(values).requiringGradient()
    let y = f(x)
    #expect(y.scalars.allSatisfy { $0.isFinite }, "\(f) values \(y.scalars)")
    y.sum().backward()
    #expect(x.gradient!.scalars.allSatisfy { $0.isFinite }, "\(f) derivatives \(x.gradient!.scalars)")
    // Compared in Double where the closed form does not overflow (|x| <= 100).
    let kept = values.indices.filter { Swift.abs(values[$0]) <= 100 }
    let reference = kept.map { f(Double(values[$0])) }
    expectClose(Tensor(kept.map { y.scalars[$0] }), reference, tolerance: 1e-6, "\(f) saturated")
  }
}
