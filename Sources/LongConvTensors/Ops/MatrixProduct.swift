extension Tensor {
  /// Matrix product through cblas, with transposes passed to BLAS rather than copied.
  ///
  /// - `[m, k] x [k, n] -> [m, n]` (either operand may be transposed: `transposeA` reads
  ///   `self` as stored `[k, m]`, `transposeB` reads `other` as stored `[n, k]`);
  /// - `[..., m, k] x [k, n] -> [..., m, n]`: leading axes fold into `m` (a linear layer);
  /// - `[batch..., m, k] x [batch..., k, n] -> [batch..., m, n]`: batched product, one
  ///   GEMM per batch entry; the batch axes must be equal.
  ///
  /// - Complexity: `O(batch * m * n * k)`.
  public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    let a = self
    let b = other
    precondition(
      a.rank >= 2 && b.rank >= 2, "matmul: operands must have rank >= 2, got \(a.shape) and \(b.shape)")
    let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
    let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
    let (m, k) = transposeA ? (ac, ar) : (ar, ac)
    let (kb, n) = transposeB ? (bc, br) : (br, bc)
    precondition(
      k == kb,
      "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") x \(b.shape)\(transposeB ? "ᵀ" : "")"
    )

    if b.rank == 2 && (a.rank == 2 || !transposeA) {
      // Fold the leading axes of `a` into the rows of one GEMM.
      let rows = transposeA ? m : Tensor.elementCount(Array(a.shape.dropLast()))
      let outShape = Array(a.shape.dropLast(2)) + [transposeA ? m : ar, n]
      let out = TensorStorage(uninitializedCount: Tensor.elementCount(outShape))
      BLAS.sgemm(
        transposeA: transposeA, transposeB: transposeB, m: rows, n: n, k: k, a: a.storage.base,
        b: b.storage.base, c: out.base)
      return Tensor.recorded("matmul", shape: outShape, storage: out, inputs: [a, b]) { g in
        let a2 = a.detached().reshaped([Tensor.elementCount(Array(a.shape.dropLast())), ac])
        let g2 = g.reshaped([rows, n])
        var grads = Tensor.matmulGradients(
          a: (a2, a.node != nil), b: (b.detached(), b.node != nil), output: g2, transposeA: transposeA,
          transposeB: transposeB)
        grads[0] = grads[0]?.reshaped(a.shape)
        return grads
      }
    }

    // Batched product: equal batch axes.
    precondition(
      !(b.rank == 2 && transposeA),
      "matmul: transposeA needs a rank-2 left operand when the right one has rank 2, got \(a.shape) x \(b.shape)"
    )
    let batchShape = Array(a.shape.dropLast(2))
    precondition(
      batchShape == Array(b.shape.dropLast(2)),
      "matmul: batch axes differ: \(a.shape) x \(b.shape)")
    let batch = Tensor.elementCount(batchShape)
    let outShape = batchShape + [m, n]
    let out = TensorStorage(uninitializedCount: Tensor.elementCount(outShape))
    for i in 0..<batch {
      BLAS.sgemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a.storage.base + i * m * k,
        b: b.storage.base + i * k * n, c: out.base + i * m * n)
    }
    return Tensor.recorded("matmul", shape: outShape, storage: out, inputs: [a, b]) { g in
      Tensor.matmulGradients(
        a: (a.detached(), a.node != nil), b: (b.detached(), b.node != nil), output: g, transposeA: transposeA,
        transposeB: transposeB)
    }
  }

  /// Pullback of `C = op(A) op(B)` for the gradient `g` of `C`, in the stored layouts:
  /// `dA = g B^T` (or `B g^T` when A is read transposed), `dB = A^T g` (or `g^T A`).
  static func matmulGradients(
    a: (value: Tensor, needed: Bool), b: (value: Tensor, needed: Bool), output g: Tensor, transposeA: Bool,
    transposeB: Bool
  ) -> [Tensor?] {
    let dA: Tensor? =
      !a.needed
      ? nil
      : transposeA
        ? b.value.matmul(g, transposeA: transposeB, transposeB: true)
        : g.matmul(b.value, transposeB: !transposeB)
    let dB: Tensor? =
      !b.needed
      ? nil
      : transposeB
        ? g.matmul(a.value, transposeA: true, transposeB: transposeA)
        : a.value.matmul(g, transposeA: !transposeA)
    return [dA, dB]
  }
}
