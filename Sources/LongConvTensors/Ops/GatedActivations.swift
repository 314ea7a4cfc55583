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
    let math = VectorMath.best
    parallelRanges(count, grain: 1 << 14) { range in
      let i = range.lowerBound
      math.silu_gate(a.base + i, b.base + i, y.base + i, range.count)
    }
    let gate = self
    return Tensor.recorded("siluGate", shape: shape, storage: out, inputs: [gate, value]) { g in
      let (needA, needB) = (gate.node != nil, value.node != nil)
      let da = needA ? TensorStorage(uninitializedCount: g.count) : nil
      let db = needB ? TensorStorage(uninitializedCount: g.count) : nil
      let gp = SendablePointer(g.storage.base)
      let (dap, dbp) = (da.map { SendablePointer($0.base) }, db.map { SendablePointer($0.base) })
      parallelRanges(g.count, grain: 1 << 14) { range in
        let i = range.lowerBound
        math.silu_gate_backward(
          gp.base + i, a.base + i, b.base + i, dap.map { $0.base + i }, dbp.map { $0.base + i }, range.count)
      }
      return [
        da.map { Tensor(shape: gate.shape, storage: $0) }, db.map { Tensor(shape: gate.shape, storage: $0) },
      ]
    }
  }
}
