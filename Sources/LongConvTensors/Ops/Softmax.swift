import Foundation

extension Tensor {
  /// `exp(x_i - lse(x))` along `axis`, with `lse` the log-sum-exp (computed stably).
  public func softmax(axis: Int = -1) -> Tensor {
    let axis = normalizedAxis(axis, op: "softmax")
    let (outer, extent, inner) = axisLayout(axis)
    let out = TensorStorage(uninitializedCount: count)
    Tensor.forEachLane(outer: outer, extent: extent, inner: inner) { base in
      let lse = Tensor.logSumExp(storage.base + base, extent, inner)
      for e in 0..<extent {
        out.base[base + e * inner] = Foundation.exp(storage.base[base + e * inner] - lse)
      }
    }
    return Tensor.recorded("softmax", shape: shape, storage: out, inputs: [self]) { [shape] g in
      // dx = y * (g - sum(g * y)) along the axis.
      let dx = TensorStorage(uninitializedCount: g.count)
      Tensor.forEachLane(outer: outer, extent: extent, inner: inner) { base in
        var dot: Float = 0
        for e in 0..<extent { dot += g.storage.base[base + e * inner] * out.base[base + e * inner] }
        for e in 0..<extent {
          let j = base + e * inner
          dx.base[j] = out.base[j] * (g.storage.base[j] - dot)
        }
      }
      return [Tensor(shape: shape, storage: dx)]
    }
  }

  /// `x_i - lse(x)` along `axis`: log-probabilities, computed stably.
  public func logSoftmax(axis: Int = -1) -> Tensor {
    let axis = normalizedAxis(axis, op: "logSoftmax")
    let (outer, extent, inner) = axisLayout(axis)
    let out = TensorStorage(uninitializedCount: count)
    Tensor.forEachLane(outer: outer, extent: extent, inner: inner) { base in
      // (x - max) - log(sum) is exact in the subtraction, unlike x - (max + log(sum)).
      let x = storage.base + base
      var m = -Float.infinity
      for e in 0..<extent { m = Swift.max(m, x[e * inner]) }
      var s: Float = 0
      for e in 0..<extent { s += Foundation.exp(x[e * inner] - m) }
      let logSum = Foundation.log(s)
      for e in 0..<extent { out.base[base + e * inner] = (x[e * inner] - m) - logSum }
    }
    return Tensor.recorded("logSoftmax", shape: shape, storage: out, inputs: [self]) { [shape] g in
      // dx = g - softmax * sum(g) along the axis.
      let dx = TensorStorage(uninitializedCount: g.count)
      Tensor.forEachLane(outer: outer, extent: extent, inner: inner) { base in
        var total: Float = 0
        for e in 0..<extent { total += g.storage.base[base + e * inner] }
        for e in 0..<extent {
          let j = base + e * inner
          dx.base[j] = g.storage.base[j] - Foundation.exp(out.base[j]) * total
        }
      }
      return [Tensor(shape: shape, storage: dx)]
    }
  }

  /// Mean cross-entropy `mean_r (lse(x_r) - x_r[target_r])` of logits `[..., classes]` against
  /// one integer class per row (rows: every position of the leading axes, in order).
  ///
  /// The softmax and the loss are fused: the pullback is `(softmax - onehot) / rows`. Rows
  /// are split over threads; each thread adds its rows' losses in Double.
  public func crossEntropy(targets: [Int]) -> Tensor {
    precondition(rank >= 1, "crossEntropy: logits must have rank >= 1, got \(shape)")
    let classes = shape[rank - 1]
    let rows = count / Swift.max(classes, 1)
    precondition(
      targets.count == rows,
      "crossEntropy: \(targets.count) targets for logits of shape \(shape) (\(rows) rows)")
    for t in targets {
      precondition(t >= 0 && t < classes, "crossEntropy: target \(t) out of range for \(classes) classes")
    }
    let lses = TensorStorage(uninitializedCount: rows)
    let rowGrain = Swift.max(1, (1 << 13) / Swift.max(classes, 1))
    let tasks = Swift.max(1, Swift.min(ComputeThreads.count, rows / rowGrain))
    var partials = [Double](repeating: 0, count: tasks)
    let (x, lp) = (SendablePointer(storage.base), SendablePointer(lses.base))
    partials.withUnsafeMutableBufferPointer { partials in
      let sums = SendablePointer(partials.baseAddress!)
      targets.withUnsafeBufferPointer { targets in
        let tp = UncheckedBox(targets)
        parallelRanges(tasks, grain: 1) { taskRange in
          for task in taskRange {
            var total = 0.0
            for r in rows * task / tasks..<rows * (task + 1) / tasks {
              let row = x.base + r * classes
              lp.base[r] = Tensor.logSumExp(row, classes, 1)
              total += Double(lp.base[r] - row[tp.value[r]])
            }
            sums.base[task] = total
          }
        }
      }
    }
    let mean = partials.reduce(0, +) / Double(Swift.max(rows, 1))
    let loss = TensorStorage(count: 1, repeating: Float(mean))
    // The pullback reads `lses` through a raw pointer: it must hold the storage itself.
    return Tensor.recorded("crossEntropy", shape: [], storage: loss, inputs: [self]) { [self, lses] g in
      let scale = g.scalar / Float(Swift.max(rows, 1))
      let dx = TensorStorage(uninitializedCount: count)
      let dp = SendablePointer(dx.base)
      targets.withUnsafeBufferPointer { targets in
        let tp = UncheckedBox(targets)
        parallelRanges(rows, grain: rowGrain) { range in
          for r in range {
            let (row, d, lse) = (x.base + r * classes, dp.base + r * classes, lp.base[r])
            for c in 0..<classes { d[c] = FastMath.exp(row[c] - lse) * scale }
            d[tp.value[r]] -= scale
          }
        }
      }
      withExtendedLifetime(lses) {}
      return [Tensor(shape: shape, storage: dx)]
    }
  }

  /// Zeroes each scalar with probability `probability` and scales the rest by
  /// `1 / (1 - probability)`, so the expectation is unchanged. The mask comes from `generator`.
  public func dropout(probability: Float, generator: inout SeededGenerator) -> Tensor {
    precondition(probability >= 0 && probability < 1, "dropout: probability \(probability) not in [0, 1)")
    if probability == 0 { return self }
    let scale = 1 / (1 - probability)
    let mask = TensorStorage(uninitializedCount: count)
    for i in 0..<count { mask.base[i] = generator.nextUniform() < probability ? 0 : scale }
    return self * Tensor(shape: shape, storage: mask)
  }

  /// Calls `body(offset)` for the first element of each lane along an axis laid out as
  /// `(outer, extent, inner)`.
  static func forEachLane(outer: Int, extent: Int, inner: Int, _ body: (Int) -> Void) {
    for o in 0..<outer {
      for i in 0..<inner { body(o * extent * inner + i) }
    }
  }

  /// `log(sum(exp(x)))` over `extent` values `stride` apart, shifted by the maximum.
  static func logSumExp(_ x: UnsafePointer<Float>, _ extent: Int, _ stride: Int) -> Float {
    var m = -Float.infinity
    for e in 0..<extent { m = Swift.max(m, x[e * stride]) }
    if !m.isFinite { return m }
    var s: Float = 0
    for e in 0..<extent { s += FastMath.exp(x[e * stride] - m) }
    return m + Foundation.log(s)
  }
}
