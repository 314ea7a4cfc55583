import LongConvTensors

/// Dense reference computations in Double, and row-major index arithmetic, for tests.
public enum Dense {
  /// The multi-index of row-major position `flat` in `shape`.
  public static func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
    var index = [Int](repeating: 0, count: shape.count)
    var rest = flat
    for axis in shape.indices.reversed() where shape[axis] > 0 {
      index[axis] = rest % shape[axis]
      rest /= shape[axis]
    }
    return index
  }

  /// The row-major position of `index` in `shape`.
  public static func ravel(_ index: [Int], _ shape: [Int]) -> Int {
    precondition(index.count == shape.count, "Dense.ravel: index \(index) for shape \(shape)")
    var flat = 0
    for (i, extent) in zip(index, shape) { flat = flat * extent + i }
    return flat
  }

  /// The position in an operand of `shape` that NumPy broadcasting reads for output `index`:
  /// axes aligned at the end, extent-1 axes pinned to 0, missing leading axes dropped.
  public static func broadcastOffset(_ index: [Int], into shape: [Int]) -> Int {
    precondition(index.count >= shape.count, "Dense.broadcastOffset: index \(index) for shape \(shape)")
    let lead = index.count - shape.count
    let own = shape.indices.map { shape[$0] == 1 ? 0 : index[lead + $0] }
    return ravel(own, shape)
  }

  /// `C = A B` for row-major `A` `[m, k]` and `B` `[k, n]`.
  public static func matmul(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int) -> [Double] {
    precondition(
      a.count == m * k && b.count == k * n, "Dense.matmul: sizes do not match [\(m), \(k)] x [\(k), \(n)]")
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
      for p in 0..<k {
        let aip = a[i * k + p]
        for j in 0..<n { c[i * n + j] += aip * b[p * n + j] }
      }
    }
    return c
  }

  /// `op(A) op(B)` `[m, n]` in Double for Float operands stored row-major (`A` `[m, k]`, or
  /// `[k, m]` when `transposeA`; `B` `[k, n]`, or `[n, k]` when `transposeB`), with
  /// `sum_p |op(A)_ip op(B)_pj|` per entry: the scale a rounding bound of the product uses.
  public static func product(
    _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false
  ) -> (values: [Double], magnitudes: [Double]) {
    var (values, magnitudes) = ([Double](), [Double]())
    values.reserveCapacity(m * n)
    magnitudes.reserveCapacity(m * n)
    for i in 0..<m {
      for j in 0..<n {
        var (sum, magnitude) = (0.0, 0.0)
        for p in 0..<k {
          let x = Double(transposeA ? a[p * m + i] : a[i * k + p])
          let y = Double(transposeB ? b[j * k + p] : b[p * n + j])
          sum += x * y
          magnitude += Swift.abs(x * y)
        }
        values.append(sum)
        magnitudes.append(magnitude)
      }
    }
    return (values, magnitudes)
  }

  /// The transpose of a row-major `[rows, columns]` matrix.
  public static func transpose(_ a: [Double], rows: Int, columns: Int) -> [Double] {
    precondition(a.count == rows * columns, "Dense.transpose: \(a.count) values for [\(rows), \(columns)]")
    var t = [Double](repeating: 0, count: a.count)
    for i in 0..<rows {
      for j in 0..<columns { t[j * rows + i] = a[i * columns + j] }
    }
    return t
  }
}

// MARK: - The long convolution, dense

extension Dense {
  /// The column of a `[D, columns]` kernel that holds lag `k`, or `nil` when the kernel has no
  /// such lag. The layout is `longConvolution`'s (see ``ConvolutionDirection``): causal lags
  /// `0 ..< columns` at column `k`; bidirectional `columns = 2K - 1`, lags `-(K-1) ... K-1` at
  /// column `k + K - 1`, negative lags first.
  public static func kernelColumn(lag k: Int, columns: Int, direction: ConvolutionDirection) -> Int? {
    switch direction {
    case .causal:
      return k >= 0 && k < columns ? k : nil
    case .bidirectional:
      precondition(
        columns % 2 == 1, "Dense.kernelColumn: a bidirectional kernel has 2K - 1 columns, not \(columns)")
      let lags = (columns + 1) / 2
      return Swift.abs(k) < lags ? k + lags - 1 : nil
    }
  }

  /// The `n x n` Toeplitz matrix `T[i][j] = t[i - j]` of one kernel row (zero where the row has
  /// no lag `i - j`, so above the diagonal for a causal row).
  public static func toeplitz(_ row: [Double], direction: ConvolutionDirection, size n: Int) -> [[Double]] {
    (0..<n).map { i in
      (0..<n).map { j in
        kernelColumn(lag: i - j, columns: row.count, direction: direction).map { row[$0] } ?? 0
      }
    }
  }

  /// Calls `body(output, input, kernel)` with the flat positions of every product
  /// `t[c, lag i - j] x[b, j, c]` that contributes to `y[b, i, c]`: the one place the tests
  /// spell out the Toeplitz structure, so the forward reference and its pullback agree.
  static func forEachTap(
    batch: Int, length: Int, channels: Int, columns: Int, direction: ConvolutionDirection,
    _ body: (_ output: Int, _ input: Int, _ kernel: Int) -> Void
  ) {
    for b in 0..<batch {
      for i in 0..<length {
        for j in 0..<length {
          guard let column = kernelColumn(lag: i - j, columns: columns, direction: direction) else {
            continue
          }
          for c in 0..<channels {
            body((b * length + i) * channels + c, (b * length + j) * channels + c, c * columns + column)
          }
        }
      }
    }
  }

  /// `y[b, i, c] = sum_j t[c, i - j] x[b, j, c] + skip[c] x[b, i, c]` for `x` `[B, L, D]`
  /// row-major and `kernel` `[D, columns]` in ``kernelColumn(lag:columns:direction:)``'s layout;
  /// lags the kernel lacks are zero, lags of `L` or more reach no output.
  public static func longConvolution(
    _ x: [Double], batch: Int, length: Int, channels: Int, kernel t: [Double],
    direction: ConvolutionDirection,
    skip: [Double]? = nil
  ) -> [Double] {
    let columns = kernelColumns(x, batch: batch, length: length, channels: channels, kernel: t, skip: skip)
    var y = [Double](repeating: 0, count: x.count)
    if let skip {
      for r in 0..<batch * length {
        for c in 0..<channels { y[r * channels + c] = skip[c] * x[r * channels + c] }
      }
    }
    forEachTap(batch: batch, length: length, channels: channels, columns: columns, direction: direction) {
      y[$0] += t[$2] * x[$1]
    }
    return y
  }

  /// The exact pullback of ``longConvolution(_:batch:length:channels:kernel:direction:skip:)``:
  /// the gradients of `sum(g * y)` with respect to `x`, the kernel and the skip.
  public static func longConvolutionPullback(
    _ g: [Double], x: [Double], batch: Int, length: Int, channels: Int, kernel t: [Double],
    direction: ConvolutionDirection, skip: [Double]? = nil
  ) -> (input: [Double], kernel: [Double], skip: [Double]?) {
    let columns = kernelColumns(x, batch: batch, length: length, channels: channels, kernel: t, skip: skip)
    precondition(
      g.count == x.count, "Dense.longConvolutionPullback: \(g.count) gradients for \(x.count) outputs")
    var dx = [Double](repeating: 0, count: x.count)
    var dt = [Double](repeating: 0, count: t.count)
    forEachTap(batch: batch, length: length, channels: channels, columns: columns, direction: direction) {
      dx[$1] += g[$0] * t[$2]
      dt[$2] += g[$0] * x[$1]
    }
    var dskip = skip.map { [Double](repeating: 0, count: $0.count) }
    if let skip {
      for r in 0..<batch * length {
        for c in 0..<channels {
          dx[r * channels + c] += g[r * channels + c] * skip[c]
          dskip![c] += g[r * channels + c] * x[r * channels + c]
        }
      }
    }
    return (dx, dt, dskip)
  }

  private static func kernelColumns(
    _ x: [Double], batch: Int, length: Int, channels: Int, kernel t: [Double], skip: [Double]?
  ) -> Int {
    precondition(
      x.count == batch * length * channels,
      "Dense.longConvolution: \(x.count) inputs for [\(batch), \(length), \(channels)]")
    precondition(
      channels > 0 && t.count % channels == 0,
      "Dense.longConvolution: \(t.count) coefficients for \(channels) channels")
    precondition(
      skip == nil || skip!.count == channels,
      "Dense.longConvolution: skip of \(skip!.count) for \(channels) channels")
    return t.count / channels
  }
}
