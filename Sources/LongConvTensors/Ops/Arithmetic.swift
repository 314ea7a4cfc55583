/// A scalar binary function applied element-wise with broadcasting.
protocol BinaryScalarFunction {
  static func apply(_ a: Float, _ b: Float) -> Float
}

enum AddFunction: BinaryScalarFunction { static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum SubtractFunction: BinaryScalarFunction { static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum MultiplyFunction: BinaryScalarFunction { static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum DivideFunction: BinaryScalarFunction { static func apply(_ a: Float, _ b: Float) -> Float { a / b } }

extension Tensor {
  /// `F(a, b)` element-wise over the broadcast shape of `a` and `b`, without recording.
  static func broadcastApply<F: BinaryScalarFunction>(
    _: F.Type, _ a: Tensor, _ b: Tensor, op: String
  ) -> (shape: [Int], storage: TensorStorage) {
    guard let shape = Broadcasting.shape(a.shape, b.shape) else {
      preconditionFailure("\(op): shapes \(a.shape) and \(b.shape) cannot be broadcast together")
    }
    let out = TensorStorage(uninitializedCount: Tensor.elementCount(shape))
    let pa = SendablePointer(a.storage.base)
    let pb = SendablePointer(b.storage.base)
    let po = SendablePointer(out.base)
    if a.shape == b.shape || (a.count == out.count && b.count == 1) || (a.count == 1 && b.count == out.count)
    {
      // Same shape or a scalar operand: one flat loop, split across threads when large.
      let sa = a.count == 1 ? 0 : 1
      let sb = b.count == 1 ? 0 : 1
      parallelRanges(out.count) { range in
        let x = pa.base
        let y = pb.base
        let z = po.base
        if sa == 1 && sb == 1 {
          for i in range { z[i] = F.apply(x[i], y[i]) }
        } else if sb == 0 {
          let s = y[0]
          for i in range { z[i] = F.apply(x[i], s) }
        } else {
          let s = x[0]
          for i in range { z[i] = F.apply(s, y[i * sb]) }
        }
      }
    } else if let columns = repeatedRow(a, b, in: shape) {
      // One operand repeats along the leading axes (a bias `[D]` on `[B, L, D]`): rows of the
      // full one against the same row of the other, split across threads by rows.
      let (rowIsB, rows) = (b.count == columns, out.count / columns)
      parallelRanges(rows, grain: Swift.max(1, (1 << 14) / columns)) { range in
        for r in range {
          let (full, z) = ((rowIsB ? pa.base : pb.base) + r * columns, po.base + r * columns)
          let row = rowIsB ? pb.base : pa.base
          if rowIsB {
            for j in 0..<columns { z[j] = F.apply(full[j], row[j]) }
          } else {
            for j in 0..<columns { z[j] = F.apply(row[j], full[j]) }
          }
        }
      }
    } else {
      let strides = [
        Broadcasting.strides(of: a.shape, in: shape), Broadcasting.strides(of: b.shape, in: shape),
        Broadcasting.strides(of: shape, in: shape),
      ]
      Broadcasting.forEachRow(shape, strides) { offsets, length, inner in
        let x = pa.base + offsets[0]
        let y = pb.base + offsets[1]
        let z = po.base + offsets[2]
        let (ia, ib) = (inner[0], inner[1])
        if ia == 1 && ib == 0 {
          let s = y[0]
          for i in 0..<length { z[i] = F.apply(x[i], s) }
        } else if ia == 0 && ib == 1 {
          let s = x[0]
          for i in 0..<length { z[i] = F.apply(s, y[i]) }
        } else {
          for i in 0..<length { z[i] = F.apply(x[i * ia], y[i * ib]) }
        }
      }
    }
    return (shape, out)
  }

  /// When one operand has the full `shape` and the other is a row repeated along the leading
  /// axes (its shape, leading 1s dropped, is a suffix of `shape`), the row's length.
  static func repeatedRow(_ a: Tensor, _ b: Tensor, in shape: [Int]) -> Int? {
    let count = Tensor.elementCount(shape)
    for (full, row) in [(a, b), (b, a)] where full.count == count && row.count > 0 {
      let trailing = Array(row.shape.drop { $0 == 1 })
      if !trailing.isEmpty, trailing.count <= shape.count, Array(shape.suffix(trailing.count)) == trailing {
        return row.count
      }
    }
    return nil
  }

  /// Element-wise sum with broadcasting.
  public static func + (a: Tensor, b: Tensor) -> Tensor {
    let (shape, out) = broadcastApply(AddFunction.self, a, b, op: "add")
    return recorded("add", shape: shape, storage: out, inputs: [a, b]) { [a, b] g in
      [a.node == nil ? nil : g.sum(toShape: a.shape), b.node == nil ? nil : g.sum(toShape: b.shape)]
    }
  }

  /// Element-wise difference with broadcasting.
  public static func - (a: Tensor, b: Tensor) -> Tensor {
    let (shape, out) = broadcastApply(SubtractFunction.self, a, b, op: "subtract")
    return recorded("subtract", shape: shape, storage: out, inputs: [a, b]) { [a, b] g in
      [a.node == nil ? nil : g.sum(toShape: a.shape), b.node == nil ? nil : (-g).sum(toShape: b.shape)]
    }
  }

  /// Element-wise product with broadcasting.
  public static func * (a: Tensor, b: Tensor) -> Tensor {
    let (shape, out) = broadcastApply(MultiplyFunction.self, a, b, op: "multiply")
    return recorded("multiply", shape: shape, storage: out, inputs: [a, b]) { [a, b] g in
      [
        a.node == nil ? nil : (g * b.detached()).sum(toShape: a.shape),
        b.node == nil ? nil : (g * a.detached()).sum(toShape: b.shape),
      ]
    }
  }

  /// Element-wise quotient with broadcasting.
  public static func / (a: Tensor, b: Tensor) -> Tensor {
    let (shape, out) = broadcastApply(DivideFunction.self, a, b, op: "divide")
    return recorded("divide", shape: shape, storage: out, inputs: [a, b]) { [a, b] g in
      let bd = b.detached()
      return [
        a.node == nil ? nil : (g / bd).sum(toShape: a.shape),
        b.node == nil ? nil : (-(g * a.detached()) / (bd * bd)).sum(toShape: b.shape),
      ]
    }
  }

  /// Element-wise negation.
  public static prefix func - (a: Tensor) -> Tensor { a * Tensor(-1) }

  /// Sum with a scalar, broadcast over the tensor (the gradient flows to the tensor only).
  public static func + (a: Tensor, b: Float) -> Tensor { a + Tensor(b) }
  /// Sum with a scalar, broadcast over the tensor.
  public static func + (a: Float, b: Tensor) -> Tensor { Tensor(a) + b }
  /// Difference with a scalar, broadcast over the tensor.
  public static func - (a: Tensor, b: Float) -> Tensor { a - Tensor(b) }
  /// Difference with a scalar, broadcast over the tensor.
  public static func - (a: Float, b: Tensor) -> Tensor { Tensor(a) - b }
  /// Product with a scalar, broadcast over the tensor.
  public static func * (a: Tensor, b: Float) -> Tensor { a * Tensor(b) }
  /// Product with a scalar, broadcast over the tensor.
  public static func * (a: Float, b: Tensor) -> Tensor { Tensor(a) * b }
  /// Quotient with a scalar, broadcast over the tensor.
  public static func / (a: Tensor, b: Float) -> Tensor { a / Tensor(b) }
  /// Quotient with a scalar, broadcast over the tensor.
  public static func / (a: Float, b: Tensor) -> Tensor { Tensor(a) / b }
}
