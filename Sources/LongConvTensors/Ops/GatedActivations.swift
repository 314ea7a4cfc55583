extension Tensor {
  /// `silu(self) * value` element-wise, fused: the gate of GLU (SwiGLU,
  /// `SiLU(W1 x) * (W2 x)`) and of the GTU (`SiLU(W_u x) * TNO(v)`). Shapes must be equal.
  ///
  /// Pullback, with `a = self`, `s = sigmoid(a)` and `g` the output gradient:
  /// `da = g * value * s * (1 + a (1 - s))` and `dvalue = g * a * s`.
  /// One pass forward and one backward, each split over threads; `s` is recomputed in the
  /// backward pass rather than stored, and no intermediate `silu(a)` tensor exists.
  public func siluGate(_ value: Tensor) -> Tensor {
    precondition(shape == value.shape, "siluGate: shapes \(shape) and \(value.shape) differ")
    let out = TensorStorage(uninitializedCount: count)
    let (a, b, y) = (
      SendablePointer(storage.base), SendablePointer(value.storage.base), SendablePointer(out.base)
    )
    parallelRanges(count, grain: 1 << 14) { range in
      for i in range { y.base[i] = a.base[i] * FastMath.sigmoid(a.base[i]) * b.base[i] }
    }
    let gate = self
    return Tensor.recorded("siluGate", shape: shape, storage: out, inputs: [gate, value]) { g in
      let (needA, needB) = (gate.node != nil, value.node != nil)
      let da = needA ? TensorStorage(uninitializedCount: g.count) : nil
      let db = needB ? TensorStorage(uninitializedCount: g.count) : nil
      let gp = SendablePointer(g.storage.base)
      let (dap, dbp) = (da.map { SendablePointer($0.base) }, db.map { SendablePointer($0.base) })
      parallelRanges(g.count, grain: 1 << 14) { range in
        if let dap, let dbp {
          for i in range {
            let (x, s, gi) = (a.base[i], FastMath.sigmoid(a.base[i]), gp.base[i])
            dap.base[i] = gi * b.base[i] * s * (1 + x * (1 - s))
            dbp.base[i] = gi * x * s
          }
        } else if let dap {
          for i in range {
            let (x, s) = (a.base[i], FastMath.sigmoid(a.base[i]))
            dap.base[i] = gp.base[i] * b.base[i] * s * (1 + x * (1 - s))
          }
        } else if let dbp {
          for i in range { dbp.base[i] = gp.base[i] * a.base[i] * FastMath.sigmoid(a.base[i]) }
        }
      }
      return [
        da.map { Tensor(shape: gate.shape, storage: $0) }, db.map { Tensor(shape: gate.shape, storage: $0) },
      ]
    }
  }
}
