extension Tensor {
  /// The same scalars with another shape (no copy); one extent may be `-1`, inferred.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    var target = newShape
    if let unknown = newShape.firstIndex(of: -1) {
      let known = newShape.enumerated().filter { $0.offset != unknown }.map(\.element).reduce(1, *)
      precondition(known > 0 && count % known == 0, "reshaped: cannot reshape \(shape) to \(newShape)")
      target[unknown] = count / known
    }
    precondition(
      target.allSatisfy { $0 >= 0 } && Tensor.elementCount(target) == count,
      "reshaped: cannot reshape \(shape) (\(count) scalars) to \(newShape)")
    if target == shape { return self }
    return Tensor.recorded("reshaped", shape: target, storage: storage, inputs: [self]) { [shape] g in
      [g.reshaped(shape)]
    }
  }

  /// Axes reordered: output axis `i` is input axis `order[i]` (a copy).
  public func permuted(_ order: [Int]) -> Tensor {
    precondition(
      order.count == rank && Set(order) == Set(0..<rank),
      "permuted: \(order) is not a permutation of the axes of \(shape)")
    if order == Array(0..<rank) { return self }
    let outShape = order.map { shape[$0] }
    let inStrides = Broadcasting.strides(of: shape, in: shape)
    let srcStrides = order.map { inStrides[$0] }
    let out = TensorStorage(uninitializedCount: count)
    let (src, dst) = (storage.base, out.base)
    Broadcasting.forEachRow(outShape, [srcStrides, Broadcasting.strides(of: outShape, in: outShape)]) {
      offsets, length, inner in
      for i in 0..<length { dst[offsets[1] + i * inner[1]] = src[offsets[0] + i * inner[0]] }
    }
    var inverse = [Int](repeating: 0, count: rank)
    for (i, o) in order.enumerated() { inverse[o] = i }
    return Tensor.recorded("permuted", shape: outShape, storage: out, inputs: [self]) { g in
      [g.permuted(inverse)]
    }
  }

  /// Swaps two axes (a copy); by default the last two.
  public func transposed(_ axis0: Int = -2, _ axis1: Int = -1) -> Tensor {
    let a = normalizedAxis(axis0, op: "transposed")
    let b = normalizedAxis(axis1, op: "transposed")
    var order = Array(0..<rank)
    order.swapAt(a, b)
    return permuted(order)
  }

  /// The positions `range` along `axis` (a copy).
  public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
    let axis = normalizedAxis(axis, op: "slice")
    precondition(
      range.lowerBound >= 0 && range.upperBound <= shape[axis],
      "slice: range \(range) out of bounds for axis \(axis) of shape \(shape)")
    let (outer, extent, inner) = axisLayout(axis)
    var outShape = shape
    outShape[axis] = range.count
    let out = TensorStorage(uninitializedCount: Tensor.elementCount(outShape))
    let (source, sliced) = (SendablePointer(storage.base), SendablePointer(out.base))
    let (width, grain) = (range.count * inner, Swift.max(1, (1 << 14) / Swift.max(1, extent * inner)))
    parallelRanges(outer, grain: grain) { outers in
      for o in outers {
        (sliced.base + o * width).update(
          from: source.base + (o * extent + range.lowerBound) * inner, count: width)
      }
    }
    return Tensor.recorded("slice", shape: outShape, storage: out, inputs: [self]) { [node] g in
      // Handed to the input's node, which puts the slices of its value together once they
      // have all arrived (`GraphNode.assembleSliceGradients`).
      node?.accumulate(SliceGradient(outer: outer, extent: extent, inner: inner, range: range, values: g))
      return [nil]
    }
  }

  /// Joins tensors along `axis`; all other extents must agree.
  public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concatenate: no tensors")
    let first = tensors[0]
    let axis = first.normalizedAxis(axis, op: "concatenate")
    for t in tensors {
      var a = t.shape
      var b = first.shape
      precondition(a.count == b.count, "concatenate: shapes \(first.shape) and \(t.shape) differ in rank")
      a[axis] = 0
      b[axis] = 0
      precondition(a == b, "concatenate: shapes \(first.shape) and \(t.shape) differ off axis \(axis)")
    }
    let extents = tensors.map { $0.shape[axis] }
    let total = extents.reduce(0, +)
    var outShape = first.shape
    outShape[axis] = total
    let (outer, _, inner) = first.axisLayout(axis)
    let out = TensorStorage(uninitializedCount: Tensor.elementCount(outShape))
    var start = 0
    for (t, e) in zip(tensors, extents) {
      for o in 0..<outer {
        (out.base + (o * total + start) * inner).update(
          from: t.storage.base + o * e * inner, count: e * inner)
      }
      start += e
    }
    return recorded("concatenate", shape: outShape, storage: out, inputs: tensors) { g in
      var grads: [Tensor?] = []
      var start = 0
      for (t, e) in zip(tensors, extents) {
        grads.append(t.node == nil ? nil : g.slice(axis: axis, start..<start + e))
        start += e
      }
      return grads
    }
  }

  /// The positions along `axis` in reverse order (a copy).
  public func flipped(axis: Int) -> Tensor {
    let axis = normalizedAxis(axis, op: "flipped")
    let (outer, extent, inner) = axisLayout(axis)
    let out = TensorStorage(uninitializedCount: count)
    for o in 0..<outer {
      for e in 0..<extent {
        (out.base + (o * extent + e) * inner).update(
          from: storage.base + (o * extent + extent - 1 - e) * inner, count: inner)
      }
    }
    return Tensor.recorded("flipped", shape: shape, storage: out, inputs: [self]) { g in
      [g.flipped(axis: axis)]
    }
  }

  /// Rows of this `[rows, width]` table picked by `indices` (an embedding lookup): the result
  /// has shape `indexShape + [width]`. The pullback scatter-adds into the picked rows.
  public func gather(rows indices: [Int], indexShape: [Int]? = nil) -> Tensor {
    precondition(rank == 2, "gather(rows:): the table must have rank 2, got \(shape)")
    let indexShape = indexShape ?? [indices.count]
    precondition(
      Tensor.elementCount(indexShape) == indices.count,
      "gather(rows:): index shape \(indexShape) does not hold \(indices.count) indices")
    let (rows, width) = (shape[0], shape[1])
    let out = TensorStorage(uninitializedCount: indices.count * width)
    for (i, row) in indices.enumerated() {
      precondition(row >= 0 && row < rows, "gather(rows:): index \(row) out of range for table \(shape)")
      (out.base + i * width).update(from: storage.base + row * width, count: width)
    }
    return Tensor.recorded("gather(rows:)", shape: indexShape + [width], storage: out, inputs: [self]) {
      [shape] g in
      let dx = TensorStorage(count: rows * width, repeating: 0)
      for (i, row) in indices.enumerated() {
        let (d, s) = (dx.base + row * width, g.storage.base + i * width)
        for j in 0..<width { d[j] += s[j] }
      }
      return [Tensor(shape: shape, storage: dx)]
    }
  }
}
