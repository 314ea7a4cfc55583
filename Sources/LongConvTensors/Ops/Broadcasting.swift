/// NumPy broadcasting: shapes are aligned at their last axis; each pair of extents must be
/// equal or one of them 1; a missing leading axis counts as 1.
public enum Broadcasting {
  /// The broadcast shape of `a` and `b`, or `nil` if they are incompatible.
  public static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
      let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
      let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
      if da == db || db == 1 {
        out[i] = da
      } else if da == 1 {
        out[i] = db
      } else {
        return nil
      }
    }
    return out
  }

  /// Element strides of a tensor of `shape` read as `outShape`: 0 along broadcast axes.
  static func strides(of shape: [Int], in outShape: [Int]) -> [Int] {
    var strides = [Int](repeating: 0, count: outShape.count)
    var step = 1
    for i in (0..<outShape.count).reversed() {
      let j = i - (outShape.count - shape.count)
      guard j >= 0 else { break }
      strides[i] = shape[j] == 1 && outShape[i] != 1 ? 0 : step
      step *= shape[j]
    }
    return strides
  }

  /// Merges adjacent axes along which every operand is contiguous or broadcast alike, so a
  /// `[B, L, D] + [D]` loop becomes `[B * L, D]`.
  static func coalesce(_ shape: [Int], _ strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
    guard !shape.isEmpty else { return ([1], strides.map { _ in [0] }) }
    var outShape = [shape[0]]
    var outStrides = strides.map { [$0[0]] }
    for i in 1..<shape.count {
      let mergeable = strides.indices.allSatisfy { k in
        outStrides[k][outStrides[k].count - 1] == strides[k][i] * shape[i]
      }
      if mergeable {
        outShape[outShape.count - 1] *= shape[i]
        for k in strides.indices { outStrides[k][outStrides[k].count - 1] = strides[k][i] }
      } else {
        outShape.append(shape[i])
        for k in strides.indices { outStrides[k].append(strides[k][i]) }
      }
    }
    return (outShape, outStrides)
  }

  /// Calls `row(offsets, length, innerStrides)` for every innermost row of `shape`, with the
  /// starting element offset of each operand.
  static func forEachRow(
    _ shape: [Int], _ strides: [[Int]], _ row: (_ offsets: [Int], _ length: Int, _ inner: [Int]) -> Void
  ) {
    let (shape, strides) = coalesce(shape, strides)
    let rank = shape.count
    let inner = strides.map { $0[rank - 1] }
    let rows = shape.dropLast().reduce(1, *)
    if rows == 0 || shape[rank - 1] == 0 { return }
    var index = [Int](repeating: 0, count: max(rank - 1, 0))
    var offsets = [Int](repeating: 0, count: strides.count)
    for _ in 0..<rows {
      row(offsets, shape[rank - 1], inner)
      // Advance the multi-index over the outer axes, updating offsets incrementally.
      var axis = rank - 2
      while axis >= 0 {
        index[axis] += 1
        for k in strides.indices { offsets[k] += strides[k][axis] }
        if index[axis] < shape[axis] { break }
        for k in strides.indices { offsets[k] -= strides[k][axis] * shape[axis] }
        index[axis] = 0
        axis -= 1
      }
    }
  }
}

extension Tensor {
  /// Sums this tensor over the axes along which `shape` was broadcast to this tensor's shape:
  /// the pullback of broadcasting.
  public func sum(toShape target: [Int]) -> Tensor {
    if target == shape { return self }
    precondition(
      Broadcasting.shape(target, shape) == shape,
      "sum(toShape:): shape \(target) does not broadcast to \(shape)")
    let backward: (Tensor) -> [Tensor?] = { [shape] g in [g.broadcast(to: shape)] }
    let kept = Tensor.elementCount(target)
    let trailing = Array(target.drop(while: { $0 == 1 }))
    if kept > 0, !trailing.isEmpty, Array(shape.suffix(trailing.count)) == trailing {
      // Summed over leading axes only (a bias gradient, `[B, L, D] -> [D]`): rows of a matrix.
      let out = Tensor.columnSums(storage.base, rows: count / kept, columns: kept)
      return Tensor.recorded("sum(toShape:)", shape: target, storage: out, inputs: [self], pullback: backward)
    }
    let out = TensorStorage(count: kept, repeating: 0)
    let src = storage.base
    let dst = out.base
    let srcStrides = Broadcasting.strides(of: shape, in: shape)
    let dstStrides = Broadcasting.strides(of: target, in: shape)
    Broadcasting.forEachRow(shape, [srcStrides, dstStrides]) { offsets, length, inner in
      let s = src + offsets[0]
      let d = dst + offsets[1]
      if inner[1] == 0 {
        var acc: Float = 0
        for i in 0..<length { acc += s[i * inner[0]] }
        d[0] += acc
      } else {
        for i in 0..<length { d[i * inner[1]] += s[i * inner[0]] }
      }
    }
    return Tensor.recorded("sum(toShape:)", shape: target, storage: out, inputs: [self], pullback: backward)
  }

  /// This tensor repeated along broadcast axes to `target`.
  public func broadcast(to target: [Int]) -> Tensor {
    if target == shape { return self }
    precondition(
      Broadcasting.shape(shape, target) == target,
      "broadcast(to:): shape \(shape) does not broadcast to \(target)")
    let out = TensorStorage(uninitializedCount: Tensor.elementCount(target))
    let src = storage.base
    let dst = out.base
    if count == 1 {
      let (value, fill) = (src[0], SendablePointer(dst))
      parallelRanges(out.count) { range in
        (fill.base + range.lowerBound).update(repeating: value, count: range.count)
      }
    } else {
      Broadcasting.forEachRow(
        target, [Broadcasting.strides(of: shape, in: target), Broadcasting.strides(of: target, in: target)]
      ) { offsets, length, inner in
        for i in 0..<length { dst[offsets[1] + i * inner[1]] = src[offsets[0] + i * inner[0]] }
      }
    }
    return Tensor.recorded("broadcast(to:)", shape: target, storage: out, inputs: [self]) { [shape] g in
      [g.sum(toShape: shape)]
    }
  }
}
