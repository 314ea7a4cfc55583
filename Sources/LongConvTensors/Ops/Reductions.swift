extension Tensor {
  /// Splits the shape around `axis` into `(outer, extent, inner)` for reduction loops.
  func axisLayout(_ axis: Int) -> (outer: Int, extent: Int, inner: Int) {
    (
      Tensor.elementCount(Array(shape[..<axis])), shape[axis],
      Tensor.elementCount(Array(shape[(axis + 1)...]))
    )
  }

  /// The shape after reducing `axis`, kept as extent 1 or removed.
  func reducedShape(_ axis: Int, keepingAxis: Bool) -> [Int] {
    var s = shape
    if keepingAxis { s[axis] = 1 } else { s.remove(at: axis) }
    return s
  }

  /// Sum of all scalars, as a scalar tensor: Float sums over runs of 256 scalars, added up in
  /// Double (relative error about 1e-6 for a million scalars).
  public func sum() -> Tensor {
    // Float partial sums over short runs (vectorisable), added up in Double, split over threads.
    let tasks = Swift.max(1, Swift.min(ComputeThreads.count, count >> 16))
    let partials = UncheckedBox(UnsafeMutablePointer<Double>.allocate(capacity: tasks))
    defer { partials.value.deallocate() }
    let x = SendablePointer(storage.base)
    parallelRanges(tasks, grain: 1) { taskRange in
      for task in taskRange {
        var acc = 0.0
        var start = count * task / tasks
        let end = count * (task + 1) / tasks
        while start < end {
          let stop = Swift.min(end, start + 256)
          var run: Float = 0
          for i in start..<stop { run += x.base[i] }
          acc += Double(run)
          start = stop
        }
        partials.value[task] = acc
      }
    }
    var acc = 0.0
    for task in 0..<tasks { acc += partials.value[task] }
    return Tensor.recorded(
      "sum", shape: [], storage: TensorStorage(count: 1, repeating: Float(acc)), inputs: [self]
    ) {
      [shape] g in [g.broadcast(to: shape)]
    }
  }

  /// Mean of all scalars, as a scalar tensor.
  public func mean() -> Tensor { sum() / Float(Swift.max(count, 1)) }

  /// Sum along `axis` (negative counts from the end); `keepingAxis` leaves it with extent 1.
  public func sum(alongAxis axis: Int, keepingAxis: Bool = false) -> Tensor {
    let axis = normalizedAxis(axis, op: "sum(alongAxis:)")
    let (outer, extent, inner) = axisLayout(axis)
    let out = TensorStorage(count: outer * inner, repeating: 0)
    let (src, dst) = (storage.base, out.base)
    for o in 0..<outer {
      let d = dst + o * inner
      for e in 0..<extent {
        let s = src + (o * extent + e) * inner
        for i in 0..<inner { d[i] += s[i] }
      }
    }
    let keptShape = reducedShape(axis, keepingAxis: true)
    return Tensor.recorded(
      "sum(alongAxis:)", shape: reducedShape(axis, keepingAxis: keepingAxis), storage: out, inputs: [self]
    ) { [shape] g in [g.reshaped(keptShape).broadcast(to: shape)] }
  }

  /// Mean along `axis`.
  public func mean(alongAxis axis: Int, keepingAxis: Bool = false) -> Tensor {
    let a = normalizedAxis(axis, op: "mean(alongAxis:)")
    return sum(alongAxis: a, keepingAxis: keepingAxis) / Float(Swift.max(shape[a], 1))
  }

  /// Maximum along `axis`; the gradient flows to the first position of each maximum.
  public func max(alongAxis axis: Int, keepingAxis: Bool = false) -> Tensor {
    let axis = normalizedAxis(axis, op: "max(alongAxis:)")
    let (outer, extent, inner) = axisLayout(axis)
    precondition(extent > 0, "max(alongAxis:): axis \(axis) of shape \(shape) is empty")
    let out = TensorStorage(uninitializedCount: outer * inner)
    var argmax = [Int](repeating: 0, count: outer * inner)
    let src = storage.base
    for o in 0..<outer {
      for i in 0..<inner {
        var best = src[o * extent * inner + i]
        var at = 0
        for e in 1..<extent where src[(o * extent + e) * inner + i] > best {
          best = src[(o * extent + e) * inner + i]
          at = e
        }
        out.base[o * inner + i] = best
        argmax[o * inner + i] = at
      }
    }
    return Tensor.recorded(
      "max(alongAxis:)", shape: reducedShape(axis, keepingAxis: keepingAxis), storage: out, inputs: [self]
    ) { [shape] g in
      let dx = TensorStorage(count: Tensor.elementCount(shape), repeating: 0)
      for o in 0..<outer {
        for i in 0..<inner {
          dx.base[(o * extent + argmax[o * inner + i]) * inner + i] = g.storage.base[o * inner + i]
        }
      }
      return [Tensor(shape: shape, storage: dx)]
    }
  }

  /// Sums the `rows` rows of a `[rows, columns]` matrix: `out[j] = sum_i m[i, j]` (a bias
  /// gradient), or with `times` the rows of the products `m[i, j] * times[i, j]` (a scale's
  /// gradient, without forming the product matrix; each product rounded as `*` rounds it).
  /// Each thread sums a contiguous block of rows into its own partial row (the inner loop runs
  /// along a row, so it vectorises); the partials are added at the end.
  static func columnSums(
    _ m: UnsafePointer<Float>, times other: UnsafePointer<Float>? = nil, rows: Int, columns: Int
  ) -> TensorStorage {
    let out = TensorStorage(count: columns, repeating: 0)
    let tasks = Swift.max(1, Swift.min(ComputeThreads.count, rows * columns >> 15, rows))
    let partials = UncheckedBox(UnsafeMutablePointer<Float>.allocate(capacity: tasks * columns))
    defer { partials.value.deallocate() }
    partials.value.initialize(repeating: 0, count: tasks * columns)
    let source = SendablePointer(UnsafeMutablePointer(mutating: m))
    let factors = other.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
    parallelRanges(tasks, grain: 1) { taskRange in
      for task in taskRange {
        let acc = partials.value + task * columns
        for i in rows * task / tasks..<rows * (task + 1) / tasks {
          let row = source.base + i * columns
          if let factors {
            let factor = factors.base + i * columns
            for j in 0..<columns { acc[j] += row[j] * factor[j] }
          } else {
            for j in 0..<columns { acc[j] += row[j] }
          }
        }
      }
    }
    for task in 0..<tasks {
      let acc = partials.value + task * columns
      for j in 0..<columns { out.base[j] += acc[j] }
    }
    return out
  }
}
