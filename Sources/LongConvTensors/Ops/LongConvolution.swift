/// Which lags a long-convolution kernel has.
public enum ConvolutionDirection: String, Sendable, Codable, CaseIterable {
  /// Lags `0 ... K-1`: `y[i]` depends on `x[j]` for `j <= i` only.
  case causal
  /// Lags `-(K-1) ... K-1`: `y[i]` depends on the whole sequence.
  case bidirectional
}

/// The shape of one long convolution: sizes, lags in use and the FFT size.
///
/// Kernel layout: causal `[D, K]` with lag `k` at column `k`; bidirectional `[D, 2K - 1]`
/// with lag `k` at column `k + K - 1` (negative lags first). Lags at or beyond the sequence
/// length `L` cannot reach any output and are ignored (their gradient is 0).
struct ConvolutionGeometry: Sendable {
  let batch: Int, length: Int, channels: Int
  let direction: ConvolutionDirection
  /// `K`: lags on each side, counting lag 0.
  let kernelLags: Int
  /// Largest positive and negative lag that reaches an output.
  let positiveLags: Int, negativeLags: Int
  /// Circular convolution size: at least `L + max(P, Q)`, so nothing wraps into the outputs.
  let fftSize: Int
  /// Channels transformed together in one FFTW batch, sized to stay in cache.
  let channelsPerTask: Int

  init(batch: Int, length: Int, channels: Int, kernelColumns: Int, direction: ConvolutionDirection) {
    self.batch = batch
    self.length = length
    self.channels = channels
    self.direction = direction
    switch direction {
    case .causal:
      kernelLags = kernelColumns
    case .bidirectional:
      precondition(
        kernelColumns % 2 == 1,
        "longConvolution: a bidirectional kernel needs 2K - 1 columns, got \(kernelColumns)")
      kernelLags = (kernelColumns + 1) / 2
    }
    positiveLags = max(0, min(kernelLags, length) - 1)
    negativeLags = direction == .causal ? 0 : positiveLags
    fftSize = FFT.fastSize(atLeast: length + max(positiveLags, negativeLags))
    // 16 floats = one 64-byte cache line of each row of the [B, L, D] tensor per task.
    channelsPerTask = 16
  }

  var kernelColumns: Int { direction == .causal ? kernelLags : 2 * kernelLags - 1 }
  var spectrumStride: Int { FFT.spectrumStride(fftSize) }
  var realStride: Int { FFT.realStride(fftSize) }
  var taskCount: Int { (channels + channelsPerTask - 1) / channelsPerTask }
  func channelRange(task: Int) -> Range<Int> {
    task * channelsPerTask..<min(channels, (task + 1) * channelsPerTask)
  }
  /// Column of the kernel holding lag `k`.
  func column(lag k: Int) -> Int { direction == .causal ? k : k + kernelLags - 1 }
  /// Slot of the length-`N` circular buffer holding lag `k` (negative lags wrap to the end).
  func slot(lag k: Int) -> Int { k >= 0 ? k : fftSize + k }
}

/// A kernel's spectrum, computed once and reused for every input of one length: the
/// inference path of the long convolution.
public struct KernelSpectrum: @unchecked Sendable {
  /// Channels `D`.
  public let channels: Int
  /// The sequence length `L` it applies to.
  public let length: Int
  /// The kernel's direction.
  public let direction: ConvolutionDirection
  let geometry: ConvolutionGeometry
  /// `[D, spectrumStride]` complex values (unnormalised; the spectral product applies `1 / N`).
  let values: FFTBuffer

  /// The spectrum of `kernel` (`[D, K]` causal or `[D, 2K - 1]` bidirectional) for inputs of
  /// length `length`.
  public init(kernel: Tensor, length: Int, direction: ConvolutionDirection = .causal) {
    precondition(kernel.rank == 2, "KernelSpectrum: kernel must be [D, lags], got \(kernel.shape)")
    precondition(length >= 1, "KernelSpectrum: length \(length) < 1")
    let g = ConvolutionGeometry(
      batch: 1, length: length, channels: kernel.shape[0], kernelColumns: kernel.shape[1],
      direction: direction)
    self.init(geometry: g, values: LongConvolution.kernelSpectrum(kernel, g))
  }

  init(geometry: ConvolutionGeometry, values: FFTBuffer) {
    self.geometry = geometry
    self.values = values
    channels = geometry.channels
    length = geometry.length
    direction = geometry.direction
  }
}

extension Tensor {
  /// Long convolution `y[b, i, c] = sum_k t[c, k] x[b, i - k, c] (+ skip[c] x[b, i, c])`
  /// of an input `[B, L, D]` with a depthwise kernel, by FFT (docs/MODELS.md section 1).
  ///
  /// `kernel` is `[D, K]` (causal, lags `0 ... K-1`) or `[D, 2K - 1]` (bidirectional, lags
  /// `-(K-1) ... K-1`); any `K >= 1` and any `L >= 1` work. Both pullbacks (input and kernel)
  /// are FFT products too. `skip` is an optional per-channel `[D]` term, `bias` an optional
  /// `[D]` added to every output. Causal kernels of at most 16 lags are applied directly
  /// instead (`ShortConvolution`: the same sums, `O(B L D K)`, with the bias added in them).
  ///
  /// - Complexity: `O(B D N log N)` with `N` the FFT size, about `2L`.
  public func longConvolution(
    kernel: Tensor, direction: ConvolutionDirection = .causal, skip: Tensor? = nil, bias: Tensor? = nil
  ) -> Tensor {
    precondition(rank == 3, "longConvolution: input must be [B, L, D], got \(shape)")
    precondition(
      kernel.rank == 2 && kernel.shape[0] == shape[2] && kernel.shape[1] >= 1,
      "longConvolution: kernel \(kernel.shape) does not match input \(shape) (expected [D, lags])")
    if let bias {
      precondition(
        bias.shape == [shape[2]], "longConvolution: bias \(bias.shape) does not match \(shape[2]) channels")
    }
    if direction == .causal, kernel.shape[1] <= ShortConvolution.maximumLags {
      return ShortConvolution.apply(self, kernel: kernel, skip: skip, bias: bias)
    }
    let g = ConvolutionGeometry(
      batch: shape[0], length: shape[1], channels: shape[2], kernelColumns: kernel.shape[1],
      direction: direction)
    let y = LongConvolution.apply(self, kernel: kernel, spectrum: nil, geometry: g, skip: skip)
    return bias.map { y + $0 } ?? y
  }

  /// Long convolution with a precomputed kernel spectrum (inference: the kernel is constant).
  /// Gradients flow to the input and the skip, not to the kernel.
  public func longConvolution(spectrum: KernelSpectrum, skip: Tensor? = nil) -> Tensor {
    precondition(
      rank == 3 && shape[1] == spectrum.length && shape[2] == spectrum.channels,
      "longConvolution: input \(shape) does not match a spectrum for length \(spectrum.length), \(spectrum.channels) channels"
    )
    let g = ConvolutionGeometry(
      batch: shape[0], length: shape[1], channels: shape[2], kernelColumns: spectrum.geometry.kernelColumns,
      direction: spectrum.direction)
    return LongConvolution.apply(self, kernel: nil, spectrum: spectrum.values, geometry: g, skip: skip)
  }
}

/// The FFT engine behind `Tensor.longConvolution`.
///
/// Work is split into tasks of `channelsPerTask` channels; a task gathers its channels of
/// one batch entry into zero-padded rows, runs one batched FFTW transform, multiplies
/// spectra and transforms back. Workers reuse their own scratch rows.
enum LongConvolution {
  /// Scratch memory of one worker: real rows and two sets of spectra.
  final class Workspace {
    let real: FFTBuffer, spectra: FFTBuffer, accumulator: FFTBuffer
    init(_ g: ConvolutionGeometry) {
      real = FFTBuffer(count: g.channelsPerTask * g.realStride)
      spectra = FFTBuffer(count: 2 * g.channelsPerTask * g.spectrumStride)
      accumulator = FFTBuffer(count: 2 * g.channelsPerTask * g.spectrumStride)
    }
  }

  static func workspaces(_ g: ConvolutionGeometry) -> UncheckedBox<[Workspace]> {
    UncheckedBox((0..<max(1, min(ComputeThreads.count, g.taskCount))).map { _ in Workspace(g) })
  }

  /// The spectra of all channels of `kernel` (unnormalised).
  static func kernelSpectrum(_ kernel: Tensor, _ g: ConvolutionGeometry) -> FFTBuffer {
    let values = FFTBuffer(count: 2 * g.channels * g.spectrumStride)
    let spaces = workspaces(g)
    parallelTasks(g.taskCount) { task, worker in
      transformKernel(
        kernel, g, channels: g.channelRange(task: task), workspace: spaces.value[worker], into: values)
    }
    return values
  }

  /// Lays out the kernel rows of `channels` in circular order and stores their spectra.
  static func transformKernel(
    _ kernel: Tensor, _ g: ConvolutionGeometry, channels: Range<Int>, workspace: Workspace,
    into values: FFTBuffer
  ) {
    let (n, columns) = (g.realStride, g.kernelColumns)
    let real = workspace.real.base
    real.update(repeating: 0, count: channels.count * n)
    for (row, c) in channels.enumerated() {
      let t = kernel.storage.base + c * columns
      for k in -g.negativeLags...g.positiveLags { real[row * n + g.slot(lag: k)] = t[g.column(lag: k)] }
    }
    let out = values.base + 2 * channels.lowerBound * g.spectrumStride
    FFT.forward(size: g.fftSize, count: channels.count, real: real, complex: out)
  }

  /// The transposes and spectral products below, in the widest vectors.
  static let kernels = ConvolutionKernels.best

  /// Copies channels `channels` of batch entry `b` of a `[B, L, D]` tensor into zero-padded rows.
  static func gather(
    _ x: UnsafePointer<Float>, _ g: ConvolutionGeometry, b: Int, channels: Range<Int>,
    into real: UnsafeMutablePointer<Float>
  ) {
    kernels.gather(
      x + b * g.length * g.channels + channels.lowerBound, g.channels, g.length, channels.count, real,
      g.realStride, g.fftSize)
  }

  /// Writes the first `L` values of each row back into channels `channels` of entry `b`,
  /// adding `skip[c] * other[b, i, c]` when a skip is given.
  static func scatter(
    _ real: UnsafePointer<Float>, _ g: ConvolutionGeometry, b: Int, channels: Range<Int>,
    into y: UnsafeMutablePointer<Float>, skip: UnsafePointer<Float>?, other: UnsafePointer<Float>
  ) {
    let offset = b * g.length * g.channels + channels.lowerBound
    kernels.scatter(
      real, g.realStride, g.length, channels.count, y + offset, g.channels,
      skip.map { $0 + channels.lowerBound }, other + offset)
  }

  /// `out = a * b / N` (or `a * conj(b) / N`) over `count` interleaved complex values, with
  /// `N` the FFT size: the inverse FFT is unnormalised, and scaling here costs no extra pass.
  /// `out` may be `a`.
  static func multiply(
    _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int,
    conjugateB: Bool, fftSize: Int
  ) {
    kernels.product(a, b, out, count, 1 / Float(fftSize), conjugateB ? 1 : 0)
  }

  /// `acc += a * conj(b)` over `count` interleaved complex values.
  static func accumulateConjugateProduct(
    _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>, count: Int
  ) {
    kernels.accumulate_conjugate_product(a, b, acc, count)
  }

  /// Forward pass; records the pullbacks when recording is on and something needs a gradient.
  /// Exactly one of `kernel` and `spectrum` is given.
  static func apply(
    _ x: Tensor, kernel: Tensor?, spectrum given: FFTBuffer?, geometry g: ConvolutionGeometry, skip: Tensor?
  ) -> Tensor {
    if let skip {
      precondition(
        skip.shape == [g.channels],
        "longConvolution: skip \(skip.shape) does not match \(g.channels) channels")
    }
    let needsGraph =
      Tensor.isRecording && (x.node != nil || kernel?.node != nil || skip?.node != nil)
    let kernelNeedsGradient = needsGraph && kernel?.node != nil
    let stride = g.spectrumStride
    let spectrum = given ?? FFTBuffer(count: 2 * g.channels * stride)
    // Input spectra, kept for the kernel's pullback.
    let saved = kernelNeedsGradient ? FFTBuffer(count: 2 * g.batch * g.channels * stride) : nil
    let out = TensorStorage(uninitializedCount: x.count)
    let spaces = workspaces(g)
    let (xp, yp) = (SendablePointer(x.storage.base), SendablePointer(out.base))
    let skipPointer = skip.map { SendablePointer($0.storage.base) }

    parallelTasks(g.taskCount) { task, worker in
      let channels = g.channelRange(task: task)
      let ws = spaces.value[worker]
      if given == nil, let kernel {
        transformKernel(kernel, g, channels: channels, workspace: ws, into: spectrum)
      }
      let kernelSpectra = spectrum.base + 2 * channels.lowerBound * stride
      for b in 0..<g.batch {
        gather(xp.base, g, b: b, channels: channels, into: ws.real.base)
        let spectra =
          saved.map { $0.base + 2 * (b * g.channels + channels.lowerBound) * stride } ?? ws.spectra.base
        FFT.forward(size: g.fftSize, count: channels.count, real: ws.real.base, complex: spectra)
        multiply(
          spectra, kernelSpectra, into: ws.accumulator.base, count: channels.count * stride,
          conjugateB: false,
          fftSize: g.fftSize)
        FFT.inverse(size: g.fftSize, count: channels.count, complex: ws.accumulator.base, real: ws.real.base)
        scatter(
          ws.real.base, g, b: b, channels: channels, into: yp.base, skip: skipPointer?.base, other: xp.base)
      }
    }

    let inputs = [x] + [kernel, skip].compactMap { $0 }
    guard needsGraph else { return Tensor(shape: x.shape, storage: out) }
    return Tensor.recorded("longConvolution", shape: x.shape, storage: out, inputs: inputs) { grad in
      let (dx, dk) = backward(
        grad, x: x, geometry: g, spectrum: spectrum, savedInput: saved, skip: skip,
        inputNeedsGradient: x.node != nil, kernelNeedsGradient: kernelNeedsGradient)
      var grads: [Tensor?] = [dx]
      if kernel != nil { grads.append(dk) }
      if let skip { grads.append(skipGradient(grad, x: x, skip: skip)) }
      return grads
    }
  }

  /// The skip's pullback, `dskip[c] = sum_(b, i) g[b, i, c] x[b, i, c]` (nil when the skip takes
  /// no gradient), for both the FFT and the direct path.
  static func skipGradient(_ g: Tensor, x: Tensor, skip: Tensor) -> Tensor? {
    guard skip.node != nil else { return nil }
    let channels = x.shape[2]
    return Tensor(
      shape: [channels],
      storage: Tensor.columnSums(
        g.storage.base, times: x.storage.base, rows: x.count / channels, columns: channels))
  }

  /// Pullbacks: `dx = g (correlated with) t` as `IFFT(G conj(T))`, and
  /// `dt[k] = sum_b sum_i g[b, i] x[b, i - k]` as `IFFT(sum_b G_b conj(X_b))` read at each lag.
  /// For a causal kernel `dx` is exactly zero after the last position where `g` is nonzero (the
  /// FFT's rounding there is cleared), so the gradient of an output with respect to any later
  /// input is exactly zero, as safari's causality check asks.
  static func backward(
    _ grad: Tensor, x: Tensor, geometry g: ConvolutionGeometry, spectrum: FFTBuffer, savedInput: FFTBuffer?,
    skip: Tensor?, inputNeedsGradient: Bool, kernelNeedsGradient: Bool
  ) -> (Tensor?, Tensor?) {
    let stride = g.spectrumStride
    let dx = inputNeedsGradient ? TensorStorage(uninitializedCount: x.count) : nil
    let dk = kernelNeedsGradient ? TensorStorage(count: g.channels * g.kernelColumns, repeating: 0) : nil
    let spaces = workspaces(g)
    let gp = SendablePointer(grad.storage.base)
    let dxp = dx.map { SendablePointer($0.base) }
    let dkp = dk.map { SendablePointer($0.base) }
    let skipPointer = skip.map { SendablePointer($0.storage.base) }

    parallelTasks(g.taskCount) { task, worker in
      let channels = g.channelRange(task: task)
      let ws = spaces.value[worker]
      let width = channels.count * stride
      let kernelSpectra = spectrum.base + 2 * channels.lowerBound * stride
      if dkp != nil { ws.accumulator.zero() }
      // Causal: dx[j] = sum_(t >= j) dy[t] k[t - j] + skip dy[j] is exactly zero after the last
      // position where dy is nonzero; the FFT leaves its rounding there, which is cleared.
      var lastNonzero = [Int](repeating: g.length - 1, count: channels.count)
      for b in 0..<g.batch {
        gather(gp.base, g, b: b, channels: channels, into: ws.real.base)
        if dxp != nil, g.negativeLags == 0 {
          for row in 0..<channels.count {
            let series = ws.real.base + row * g.realStride
            var last = g.length - 1
            while last >= 0, series[last] == 0 { last -= 1 }
            lastNonzero[row] = last
          }
        }
        FFT.forward(size: g.fftSize, count: channels.count, real: ws.real.base, complex: ws.spectra.base)
        if let savedInput {
          let inputSpectra = savedInput.base + 2 * (b * g.channels + channels.lowerBound) * stride
          accumulateConjugateProduct(ws.spectra.base, inputSpectra, into: ws.accumulator.base, count: width)
        }
        if let dxp {
          multiply(
            ws.spectra.base, kernelSpectra, into: ws.spectra.base, count: width, conjugateB: true,
            fftSize: g.fftSize)
          FFT.inverse(size: g.fftSize, count: channels.count, complex: ws.spectra.base, real: ws.real.base)
          if g.negativeLags == 0 {
            for (row, last) in lastNonzero.enumerated() where last < g.length - 1 {
              (ws.real.base + row * g.realStride + last + 1).update(repeating: 0, count: g.length - 1 - last)
            }
          }
          scatter(
            ws.real.base, g, b: b, channels: channels, into: dxp.base, skip: skipPointer?.base, other: gp.base
          )
        }
      }
      if let dkp {
        FFT.inverse(size: g.fftSize, count: channels.count, complex: ws.accumulator.base, real: ws.real.base)
        let scale = 1 / Float(g.fftSize)
        for (row, c) in channels.enumerated() {
          for k in -g.negativeLags...g.positiveLags {
            dkp.base[c * g.kernelColumns + g.column(lag: k)] =
              ws.real.base[row * g.realStride + g.slot(lag: k)] * scale
          }
        }
      }
    }
    return (
      dx.map { Tensor(shape: x.shape, storage: $0) },
      dk.map { Tensor(shape: [g.channels, g.kernelColumns], storage: $0) }
    )
  }
}
