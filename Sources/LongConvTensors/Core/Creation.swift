// Creating tensors: constants, ranges, random values and outside arrays.

extension Tensor {
  /// A tensor of `shape` filled with `value`.
  public init(repeating value: Float, shape: [Int]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "Tensor(repeating:shape:): negative extent in \(shape)")
    self.init(shape: shape, storage: TensorStorage(count: Tensor.elementCount(shape), repeating: value))
  }

  /// A scalar (rank 0) tensor.
  public init(_ value: Float) { self.init(repeating: value, shape: []) }

  /// A rank-1 tensor holding `values`.
  public init(_ values: [Float]) {
    let storage = TensorStorage(uninitializedCount: values.count)
    values.withUnsafeBufferPointer { storage.base.initialize(from: $0.baseAddress!, count: values.count) }
    self.init(shape: [values.count], storage: storage)
  }

  /// A tensor of `shape` holding `scalars` in row-major order.
  ///
  /// - Throws: ``TensorError`` when the count of scalars does not match the shape.
  public init(shape: [Int], scalars: [Float]) throws(TensorError) {
    guard shape.allSatisfy({ $0 >= 0 }) else { throw .negativeExtent(shape: shape) }
    let expected = Tensor.elementCount(shape)
    guard expected == scalars.count else {
      throw .scalarCountMismatch(shape: shape, expected: expected, actual: scalars.count)
    }
    let storage = TensorStorage(uninitializedCount: expected)
    scalars.withUnsafeBufferPointer { storage.base.initialize(from: $0.baseAddress!, count: expected) }
    self.init(shape: shape, storage: storage)
  }

  /// A tensor of `shape` holding `scalars` converted from Double.
  public init(shape: [Int], doubles: [Double]) throws(TensorError) {
    try self.init(shape: shape, scalars: doubles.map { Float($0) })
  }

  /// Zeros of `shape`.
  public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
  /// Ones of `shape`.
  public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

  /// `[start, start + step, ...]` up to but excluding `end`.
  public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
    precondition(step != 0, "Tensor.arange: step is zero")
    let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
    return Tensor((0..<n).map { start + Float($0) * step })
  }

  /// `count` values spaced evenly from `start` to `end` inclusive.
  public static func linspace(_ start: Float, _ end: Float, count: Int) -> Tensor {
    precondition(count >= 1, "Tensor.linspace: count \(count) < 1")
    if count == 1 { return Tensor([start]) }
    let step = (Double(end) - Double(start)) / Double(count - 1)
    return Tensor((0..<count).map { Float(Double(start) + Double($0) * step) })
  }

  /// Samples from the normal distribution `N(mean, std^2)`, reproducible for a seeded generator.
  public static func normal(
    _ shape: [Int], mean: Float = 0, std: Float = 1, generator: inout SeededGenerator
  ) -> Tensor {
    let t = Tensor.zeros(shape)
    let p = t.storage.base
    for i in 0..<t.count { p[i] = mean + std * generator.nextNormal() }
    return t
  }

  /// Samples from the uniform distribution on `[low, high)`.
  public static func uniform(
    _ shape: [Int], low: Float = 0, high: Float = 1, generator: inout SeededGenerator
  ) -> Tensor {
    let t = Tensor.zeros(shape)
    let p = t.storage.base
    for i in 0..<t.count { p[i] = low + (high - low) * generator.nextUniform() }
    return t
  }
}
