/// The causal depthwise convolution of `Tensor.longConvolution` computed directly, for kernels
/// of at most ``maximumLags`` lags (Hyena's short filter has 3 or 4):
///
/// ```
/// y[b, i, c]  = sum_(k < K, k <= i) t[c, k] x[b, i - k, c]  (+ skip[c] x[b, i, c]) (+ beta[c])
/// dx[b, j, c] = sum_(k < K, j + k < L) t[c, k] g[b, j + k, c]  (+ skip[c] g[b, j, c])
/// dt[c, k]    = sum_b sum_(i >= k) g[b, i, c] x[b, i - k, c]
/// dbeta[c]    = sum_b sum_i g[b, i, c]
/// ```
///
/// The bias `beta` starts each output's sum, and its gradient is summed in the kernel
/// gradient's pass over `g`: a separate broadcast add and column sum read and wrote the whole
/// `[B, L, D]` once more each.
///
/// `O(B L D K)` against the FFT's `O(B D N log N)` with `N` about `2L`, and no gathering into
/// per-channel rows (the sums run in C with the CPU's widest vectors, `tap_sums` and
/// `tap_gradient_sums` of CConvolutionKernels): the FFT path spent three quarters of its time,
/// a fifth of a Hyena recall model's step, on the 3-tap filters of the operator's `3d`
/// projected streams. The kernel
/// gradient is summed over fixed blocks of rows and then over the blocks in order, so it does
/// not depend on the thread count.
enum ShortConvolution {
  /// Kernels with at most this many lags take the direct path.
  static let maximumLags = 16
  /// Rows (`[b, i]` positions) per block of the kernel gradient's sums.
  static let rowsPerBlock = 256

  static func apply(_ x: Tensor, kernel: Tensor, skip: Tensor?, bias: Tensor?) -> Tensor {
    let (length, channels) = (x.shape[1], x.shape[2])
    // The bias's shape was checked by `Tensor.longConvolution`, for both of its paths.
    if let skip {
      precondition(
        skip.shape == [channels], "longConvolution: skip \(skip.shape) does not match \(channels) channels")
    }
    let lags = min(kernel.shape[1], length)
    // `[lags, D]`: one lag's taps are contiguous over the channels.
    let taps = tapsByLag(kernel, lags: lags)
    let out = sumOfTaps(x, shape: x.shape, taps: taps, lags: lags, skip: skip, bias: bias, direction: .causal)
    let needsGraph =
      Tensor.isRecording && (x.node != nil || kernel.node != nil || skip?.node != nil || bias?.node != nil)
    guard needsGraph else { return out }
    let inputs = [x, kernel] + [skip, bias].compactMap { $0 }
    return Tensor.recorded("shortConvolution", shape: x.shape, storage: out.storage, inputs: inputs) {
      [x, kernel, skip, bias, taps] g in
      // The input's pullback is the same sum with the taps reversed in time (a correlation).
      let dx =
        x.node == nil
        ? nil
        : sumOfTaps(g, shape: x.shape, taps: taps, lags: lags, skip: skip, bias: nil, direction: .anticausal)
      let biasNeedsGradient = bias?.node != nil
      var (dk, dbias): (Tensor?, Tensor?) = (nil, nil)
      if kernel.node != nil || biasNeedsGradient {
        (dk, dbias) = kernelGradient(
          g, x, columns: kernel.shape[1], lags: kernel.node == nil ? 0 : lags, biasGradient: biasNeedsGradient
        )
      }
      return [dx, kernel.node == nil ? nil : dk]
        + (skip.map { [LongConvolution.skipGradient(g, x: x, skip: $0)] } ?? [])
        + (bias.map { _ in [dbias] } ?? [])
    }
  }

  /// Which neighbours a tap reaches: earlier rows (the convolution) or later ones (its adjoint).
  enum TapDirection { case causal, anticausal }

  /// `out[b, i] = bias + skip * v[b, i] + sum_k taps[k] * v[b, i -/+ k]` over the lags that
  /// stay inside the sequence, `-` for `.causal`, `+` for `.anticausal`; `v` holds `shape` =
  /// `[B, L, D]` values in that order (a pullback's gradient may carry another shape of the
  /// same count).
  static func sumOfTaps(
    _ v: Tensor, shape: [Int], taps: TensorStorage, lags: Int, skip: Tensor?, bias: Tensor?,
    direction: TapDirection
  ) -> Tensor {
    precondition(v.count == shape.reduce(1, *), "shortConvolution: \(v.count) values for shape \(shape)")
    let (length, channels) = (shape[1], shape[2])
    let out = TensorStorage(uninitializedCount: v.count)
    let (vp, op, tp) = (
      SendablePointer(v.storage.base), SendablePointer(out.base), SendablePointer(taps.base)
    )
    let (sp, bp) = (
      skip.map { SendablePointer($0.storage.base) }, bias.map { SendablePointer($0.storage.base) }
    )
    let kernels = ConvolutionKernels.best
    parallelRanges(v.count / max(1, channels), grain: max(1, (1 << 15) / max(1, channels * lags))) { rows in
      kernels.tap_sums(
        vp.base, op.base, rows.lowerBound, rows.upperBound, length, channels, tp.base, lags,
        direction == .anticausal ? 1 : 0, bp?.base, sp?.base)
    }
    return Tensor(shape: shape, storage: out)
  }

  /// `kernel [D, K]` as `[lags, D]` (lags past the sequence dropped).
  static func tapsByLag(_ kernel: Tensor, lags: Int) -> TensorStorage {
    let (channels, columns) = (kernel.shape[0], kernel.shape[1])
    let taps = TensorStorage(uninitializedCount: lags * channels)
    for c in 0..<channels {
      for k in 0..<lags { taps.base[k * channels + c] = kernel.storage.base[c * columns + k] }
    }
    return taps
  }

  /// `dt[c, k] = sum_b sum_(i >= k) g[b, i, c] x[b, i - k, c]` as `[D, columns]` (zero past
  /// `lags`), and with `biasGradient` also `dbeta[c] = sum_b sum_i g[b, i, c]` as `[D]`, in the
  /// same pass over `g`: blocks of ``rowsPerBlock`` rows in parallel, then the blocks summed in
  /// order.
  static func kernelGradient(_ g: Tensor, _ x: Tensor, columns: Int, lags: Int, biasGradient: Bool = false)
    -> (kernel: Tensor, bias: Tensor?)
  {
    let (batch, length, channels) = (x.shape[0], x.shape[1], x.shape[2])
    let rows = batch * length
    let blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
    // Per block: `lags` rows of kernel sums, then (with `biasGradient`) one row of bias sums.
    let sumsPerBlock = (lags + (biasGradient ? 1 : 0)) * channels
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: max(1, blocks * sumsPerBlock))
    defer { partial.deallocate() }
    let (pp, gp, xp) = (
      SendablePointer(partial), SendablePointer(g.storage.base), SendablePointer(x.storage.base)
    )
    let kernels = ConvolutionKernels.best
    parallelTasks(blocks) { block, _ in
      let sums = pp.base + block * sumsPerBlock
      kernels.tap_gradient_sums(
        gp.base, xp.base, block * rowsPerBlock, min(rows, (block + 1) * rowsPerBlock), length, channels, lags,
        sums, biasGradient ? sums + lags * channels : nil)
    }
    let storage = TensorStorage(count: channels * columns, repeating: 0)
    let biasStorage = biasGradient ? TensorStorage(count: channels, repeating: 0) : nil
    for block in 0..<blocks {
      let sums = partial + block * sumsPerBlock
      for k in 0..<lags {
        for c in 0..<channels { storage.base[c * columns + k] += sums[k * channels + c] }
      }
      if let biasStorage {
        for c in 0..<channels { biasStorage.base[c] += sums[lags * channels + c] }
      }
    }
    return (
      Tensor(shape: [channels, columns], storage: storage),
      biasStorage.map { Tensor(shape: [channels], storage: $0) }
    )
  }
}
