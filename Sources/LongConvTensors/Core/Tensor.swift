/// A dense, contiguous, row-major tensor of `Float32` with an explicit shape.
///
/// A tensor is a value: ops return new tensors and never modify their inputs. A tensor that
/// takes part in a recorded computation (see ``Tensor/requiringGradient()`` and
/// ``Tensor/backward()``) carries the graph node that produced it.
///
/// ```swift
/// let w = Tensor.normal([4, 3], std: 0.1, generator: &rng).requiringGradient()
/// let loss = (x.matmul(w)).relu().sum()
/// loss.backward()
/// w.gradient  // dLoss/dw, shape [4, 3]
/// ```
public struct Tensor: @unchecked Sendable {
  /// Extent of each axis; `[]` is a scalar.
  public let shape: [Int]
  /// The scalars, shared with views of the same data (reshapes).
  public let storage: TensorStorage
  /// The node that produced this tensor in the current graph, or `nil` for a constant.
  let node: GraphNode?

  init(shape: [Int], storage: TensorStorage, node: GraphNode? = nil) {
    precondition(
      Tensor.elementCount(shape) == storage.count,
      "Tensor: shape \(shape) does not match \(storage.count) scalars")
    self.shape = shape
    self.storage = storage
    self.node = node
  }

  /// Number of scalars (the product of the shape; 1 for a scalar).
  public var count: Int { storage.count }
  /// Number of axes.
  public var rank: Int { shape.count }
  /// The scalars in row-major order (a copy).
  public var scalars: [Float] { Array(storage.buffer) }
  /// The only scalar of a one-element tensor.
  public var scalar: Float {
    precondition(count == 1, "Tensor.scalar: tensor of shape \(shape) has \(count) scalars")
    return storage.base[0]
  }
  /// The scalar at a multi-dimensional index (slow; for tests and inspection).
  public subscript(_ index: Int...) -> Float {
    precondition(index.count == rank, "Tensor[]: index \(index) for shape \(shape)")
    var flat = 0
    for (axis, i) in index.enumerated() {
      precondition(i >= 0 && i < shape[axis], "Tensor[]: index \(index) out of range for shape \(shape)")
      flat = flat * shape[axis] + i
    }
    return storage.base[flat]
  }

  /// Product of the extents of `shape`.
  public static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

  /// Reads the scalars without copying.
  public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows
    -> R
  {
    try body(UnsafeBufferPointer(storage.buffer))
  }

  /// Writes the scalars in place, for optimizers updating parameters between steps.
  ///
  /// Every tensor sharing this storage (reshaped views, the same parameter in a graph not yet
  /// differentiated) sees the change; do not call it between a forward pass and its backward.
  public func withUnsafeMutableBufferPointer<R>(
    _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
  ) rethrows -> R {
    try body(storage.buffer)
  }

  /// A tensor sharing this one's scalars, with no graph attached.
  public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

  /// A fresh copy of the scalars, with no graph attached.
  public func copy() -> Tensor {
    let out = TensorStorage(uninitializedCount: count)
    out.base.update(from: storage.base, count: count)
    return Tensor(shape: shape, storage: out)
  }

  /// Resolves a possibly negative axis, stopping with a message naming the op if it is out of range.
  func normalizedAxis(_ axis: Int, op: String) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < rank, "\(op): axis \(axis) out of range for shape \(shape)")
    return a
  }
}

extension Tensor: CustomStringConvertible {
  /// The shape and the first eight scalars.
  public var description: String {
    let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
    return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
  }
}

/// Errors from building tensors out of outside data.
public enum TensorError: Error, Equatable, CustomStringConvertible {
  /// The number of scalars supplied does not match the shape.
  case scalarCountMismatch(shape: [Int], expected: Int, actual: Int)
  /// A shape with a negative extent.
  case negativeExtent(shape: [Int])

  /// The shape and what is wrong with it: the scalars it needs against those given, or its negative extent.
  public var description: String {
    switch self {
    case .scalarCountMismatch(let shape, let expected, let actual):
      return "shape \(shape) needs \(expected) scalars, got \(actual)"
    case .negativeExtent(let shape):
      return "shape \(shape) has a negative extent"
    }
  }
}
