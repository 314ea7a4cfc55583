import Testing

@testable import LongConvTensors

/// The long convolution against the dense Toeplitz product evaluated in Double (MODELS.md §1).
@Suite struct LongConvolutionTests {
  /// Dense reference: `y[b,i,c] = sum_k t[c,k] x[b,i-k,c] + skip[c] x[b,i,c]` and, for a loss
  /// `sum(w * y)`, the exact gradients with respect to `x`, `t` and `skip`.
  struct DenseReference {
    var y: [Double], dx: [Double], dt: [Double], dskip: [Double]

    init(
      x: [Float], t: [Float], skip: [Float]?, w: [Float], b: Int, l: Int, d: Int, columns: Int, causal: Bool
    ) {
      let lags = causal ? columns : (columns + 1) / 2
      y = .init(repeating: 0, count: x.count)
      dx = .init(repeating: 0, count: x.count)
      dt = .init(repeating: 0, count: t.count)
      dskip = .init(repeating: 0, count: d)
      for bi in 0..<b {
        for c in 0..<d {
          for i in 0..<l {
            for j in 0..<l {
              let k = i - j
              guard k < lags && (causal ? k >= 0 : k > -lags) else { continue }
              let col = c * columns + (causal ? k : k + lags - 1)
              let xi = (bi * l + j) * d + c
              let yi = (bi * l + i) * d + c
              y[yi] += Double(t[col]) * Double(x[xi])
              dx[xi] += Double(w[yi]) * Double(t[col])
              dt[col] += Double(w[yi]) * Double(x[xi])
            }
            if let skip {
              let idx = (bi * l + i) * d + c
              y[idx] += Double(skip[c]) * Double(x[idx])
              dx[idx] += Double(w[idx]) * Double(skip[c])
              dskip[c] += Double(w[idx]) * Double(x[idx])
            }
          }
        }
      }
    }
  }

  /// Largest error relative to the largest reference magnitude.
  func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    let scale = max(b.map { Swift.abs($0) }.max() ?? 0, 1e-30)
    return zip(a, b).map { Swift.abs(Double($0) - $1) }.max().map { $0 / scale } ?? 0
  }

  func check(
    length l: Int, batch b: Int, channels d: Int, columns: Int, direction: ConvolutionDirection, skip: Bool
  ) {
    var rng = SeededGenerator(seed: UInt64(l * 131 + columns * 7 + b))
    let x = Tensor.normal([b, l, d], generator: &rng).requiringGradient()
    let t = Tensor.normal([d, columns], generator: &rng).requiringGradient()
    let s = skip ? Tensor.normal([d], generator: &rng).requiringGradient() : nil
    let w = Tensor.normal([b, l, d], generator: &rng)
    let y = x.longConvolution(kernel: t, direction: direction, skip: s)
    (y * w).sum().backward()
    let ref = DenseReference(
      x: x.scalars, t: t.scalars, skip: s?.scalars, w: w.scalars, b: b, l: l, d: d, columns: columns,
      causal: direction == .causal)
    let label = "L=\(l) B=\(b) D=\(d) columns=\(columns) \(direction) skip=\(skip)"
    #expect(relativeError(y.scalars, ref.y) < 2e-6, "forward \(label)")
    #expect(relativeError(x.gradient!.scalars, ref.dx) < 2e-6, "d input \(label)")
    #expect(relativeError(t.gradient!.scalars, ref.dt) < 2e-6, "d kernel \(label)")
    if let s { #expect(relativeError(s.gradient!.scalars, ref.dskip) < 2e-6, "d skip \(label)") }
  }

  @Test(arguments: [1, 2, 7, 64, 257, 1000])
  func causalFullKernelMatchesDenseProduct(length: Int) {
    check(length: length, batch: 2, channels: 3, columns: length, direction: .causal, skip: false)
  }

  @Test(arguments: [1, 2, 7, 64, 257, 1000])
  func bidirectionalFullKernelMatchesDenseProduct(length: Int) {
    check(
      length: length, batch: 2, channels: 3, columns: 2 * length - 1, direction: .bidirectional, skip: false)
  }

  @Test func shortAndOverlongKernelsWithSkip() {
    check(length: 37, batch: 1, channels: 5, columns: 3, direction: .causal, skip: true)
    check(length: 37, batch: 2, channels: 5, columns: 60, direction: .causal, skip: true)
    check(length: 20, batch: 1, channels: 19, columns: 9, direction: .bidirectional, skip: true)
    check(length: 5, batch: 3, channels: 2, columns: 21, direction: .bidirectional, skip: true)
  }

  @Test func manyChannelsSpanSeveralTasks() {
    // More channels than one FFT batch holds, and not a multiple of it.
    check(length: 31, batch: 2, channels: 37, columns: 31, direction: .causal, skip: true)
  }

  @Test func cachedSpectrumGivesTheSameOutput() {
    var rng = SeededGenerator(seed: 5)
    let x = Tensor.normal([2, 50, 4], generator: &rng)
    for direction in ConvolutionDirection.allCases {
      let t = Tensor.normal([4, direction == .causal ? 50 : 99], generator: &rng)
      let spectrum = KernelSpectrum(kernel: t, length: 50, direction: direction)
      let a = x.longConvolution(kernel: t, direction: direction).scalars
      let b = x.longConvolution(spectrum: spectrum).scalars
      #expect(a == b, "\(direction)")
    }
  }

  @Test func fastSizesAreSmoothAndLargeEnough() {
    for n in 1...3000 {
      let size = FFT.fastSize(atLeast: n)
      #expect(size >= n && size % 2 == 0)
      var m = size / 2
      for p in [2, 3, 5, 7] { while m % p == 0 { m /= p } }
      #expect(m == 1, "size \(size) for \(n)")
    }
  }
}
