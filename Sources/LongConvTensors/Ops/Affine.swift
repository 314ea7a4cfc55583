extension Tensor {
  /// The affine map of a linear layer over the last axis, `y = x W^T + b`, fused: `W` is
  /// `[out, in]` (PyTorch's layout, the transpose passed to BLAS), `b` is `[out]` or omitted,
  /// `x` is `[..., in]` and `y` is `[..., out]`.
  ///
  /// The bias is added by the product itself (see `BLAS.sgemm`), so no separate broadcast
  /// pass runs. The pullback is, with `g` read as `[rows, out]`: `dx = g W`, `dW = g^T x` (both
  /// GEMMs reading their operands in place) and `db` the column sums of `g` (summed by the
  /// product for `dW`, see `BLAS.sgemm`).
  ///
  /// - Complexity: `O(rows * in * out)`.
  public func linear(weight: Tensor, bias: Tensor? = nil) -> Tensor {
    precondition(
      rank >= 1 && weight.rank == 2 && shape[rank - 1] == weight.shape[1],
      "linear: input \(shape) does not match weight \(weight.shape) (expected [..., in] and [out, in])")
    let (inputs, outputs) = (weight.shape[1], weight.shape[0])
    if let bias {
      precondition(bias.shape == [outputs], "linear: bias \(bias.shape) does not match \(outputs) outputs")
    }
    let rows = Tensor.elementCount(Array(shape.dropLast()))
    let outShape = Array(shape.dropLast()) + [outputs]
    let out = TensorStorage(uninitializedCount: rows * outputs)
    BLAS.sgemm(
      transposeA: false, transposeB: true, m: rows, n: outputs, k: inputs, a: storage.base,
      b: weight.storage.base, c: out.base, bias: bias?.storage.base)

    let x = self
    return Tensor.recorded(
      "linear", shape: outShape, storage: out, inputs: [x, weight] + (bias.map { [$0] } ?? [])
    ) { g in
      var grads: [Tensor?] = [nil, nil]
      if x.node != nil {
        let dx = TensorStorage(uninitializedCount: rows * inputs)
        BLAS.sgemm(
          transposeA: false, transposeB: false, m: rows, n: inputs, k: outputs, a: g.storage.base,
          b: weight.storage.base, c: dx.base)
        grads[0] = Tensor(shape: x.shape, storage: dx)
      }
      // db, the column sums of g, comes out of the product for dW when there is one.
      let db = bias?.node == nil ? nil : TensorStorage(uninitializedCount: outputs)
      if weight.node != nil {
        let dw = TensorStorage(uninitializedCount: outputs * inputs)
        BLAS.sgemm(
          transposeA: true, transposeB: false, m: outputs, n: inputs, k: rows, a: g.storage.base,
          b: x.storage.base, c: dw.base, rowSumsOfA: db?.base)
        grads[1] = Tensor(shape: weight.shape, storage: dw)
      } else if let db {
        BLAS.rowSums(transposeA: true, m: outputs, k: rows, a: g.storage.base, into: db.base)
      }
      if let bias { grads.append(db.map { Tensor(shape: bias.shape, storage: $0) }) }
      return grads
    }
  }

  /// Copies the `columns` values at `row` into each of `rows` rows at `destination`.
  static func fillRows(
    _ destination: UnsafeMutablePointer<Float>, rows: Int, with row: UnsafePointer<Float>, columns: Int
  ) {
    let (d, r) = (SendablePointer(destination), SendablePointer(UnsafeMutablePointer(mutating: row)))
    parallelRanges(rows, grain: Swift.max(1, (1 << 15) / Swift.max(columns, 1))) { range in
      for i in range { (d.base + i * columns).update(from: r.base, count: columns) }
    }
  }
}
