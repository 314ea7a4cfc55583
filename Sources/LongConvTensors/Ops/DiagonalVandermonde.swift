import Foundation

extension Tensor {
  /// The kernel of a diagonal state space: `[D, H]` modes to `[D, L]` lags in one op.
  ///
  /// For every channel `d` and lag `l < L`, with `z_n = exp(a_n + i b_n)` and `c_n = cr_n + i ci_n`
  /// (all `[D, H]`):
  ///
  /// ```
  /// K[d, l] = 2 Re sum_n c_n z_n^l
  /// ```
  ///
  /// Pullback, from `P_n = sum_l g[l] z_n^l` and `Q_n = sum_l g[l] l z_n^l` (`d z^l / da = l z^l`,
  /// `d z^l / db = i l z^l`):
  ///
  /// ```
  /// dcr = 2 Re P,   dci = -2 Im P,   da = 2 Re(c Q),   db = -2 Im(c Q)
  /// ```
  ///
  /// The powers `z^l` come from the recurrence `z^(l+1) = z^l z` in Double, four modes at a time
  /// (relative error about `l` Double roundings, where `exp` and `cos` of a Float phase `b l` lose
  /// `|b l|` Float ulps); the sums over modes and lags are in Double. The tensor-op form this
  /// replaces built `[D, H, L]` exponentials, cosines and sines, forward and backward: half of
  /// an S4D language model's training step.
  ///
  /// - Complexity: `O(D H L)` time, `O(D L)` memory.
  public static func diagonalVandermonde(
    poleLogReal a: Tensor, poleLogImaginary b: Tensor, residueReal cr: Tensor, residueImaginary ci: Tensor,
    length: Int
  ) -> Tensor {
    precondition(a.rank == 2, "diagonalVandermonde: modes must be [D, H], got \(a.shape)")
    for t in [b, cr, ci] {
      precondition(t.shape == a.shape, "diagonalVandermonde: shapes \(a.shape) and \(t.shape) differ")
    }
    precondition(length >= 1, "diagonalVandermonde: length \(length) < 1")
    let (channels, modes) = (a.shape[0], a.shape[1])
    // Enough channels per task for about 2^16 mode-lag products.
    let grain = Swift.max(1, (1 << 16) / Swift.max(1, modes * length))
    let out = TensorStorage(uninitializedCount: channels * length)
    let (pa, pb, pcr, pci, po) = (
      SendablePointer(a.storage.base), SendablePointer(b.storage.base), SendablePointer(cr.storage.base),
      SendablePointer(ci.storage.base), SendablePointer(out.base)
    )
    parallelRanges(channels, grain: grain) { range in
      var sums = [Double](repeating: 0, count: length)
      for d in range {
        for l in 0..<length { sums[l] = 0 }
        var n = 0
        while n < modes {
          let block = ModeBlock(d * modes, n, modes, pa.base, pb.base)
          let (re, im) = (block.load(pcr.base), block.load(pci.base))
          block.powers(length) { l, zr, zi in
            sums[l] += (re * zr - im * zi).sum()
          }
          n += 4
        }
        for l in 0..<length { po.base[d * length + l] = Float(2 * sums[l]) }
      }
    }
    return recorded("diagonalVandermonde", shape: [channels, length], storage: out, inputs: [a, b, cr, ci]) {
      [a, b, cr, ci] g in
      // The captured inputs keep their storage (and so the pointers below) alive.
      let (pa, pb, pcr, pci) = (
        SendablePointer(a.storage.base), SendablePointer(b.storage.base), SendablePointer(cr.storage.base),
        SendablePointer(ci.storage.base)
      )
      let grads = (0..<4).map { _ in TensorStorage(uninitializedCount: channels * modes) }
      let (pg, da, db, dcr, dci) = (
        SendablePointer(g.storage.base), SendablePointer(grads[0].base), SendablePointer(grads[1].base),
        SendablePointer(grads[2].base), SendablePointer(grads[3].base)
      )
      parallelRanges(channels, grain: grain) { range in
        for d in range {
          var n = 0
          while n < modes {
            let block = ModeBlock(d * modes, n, modes, pa.base, pb.base)
            var (pr, pi, qr, qi) = (SIMD4<Double>(), SIMD4<Double>(), SIMD4<Double>(), SIMD4<Double>())
            block.powers(length) { l, zr, zi in
              let gl = Double(pg.base[d * length + l])
              pr += gl * zr
              pi += gl * zi
              qr += (gl * Double(l)) * zr
              qi += (gl * Double(l)) * zi
            }
            let (re, im) = (block.load(pcr.base), block.load(pci.base))
            // c Q = (re qr - im qi) + i (re qi + im qr)
            let cqRe = re * qr - im * qi
            let cqIm = re * qi + im * qr
            block.store(2 * pr, to: dcr.base)
            block.store(-2 * pi, to: dci.base)
            block.store(2 * cqRe, to: da.base)
            block.store(-2 * cqIm, to: db.base)
            n += 4
          }
        }
      }
      return grads.map { Tensor(shape: [channels, modes], storage: $0) }
    }
  }
}

/// Up to four modes `n ..< n + 4` of one channel (`base` is the channel's first mode); lanes past
/// the last mode hold `z = 0`, `c = 0` and are never stored.
private struct ModeBlock {
  let base: Int
  let count: Int
  let zr: SIMD4<Double>
  let zi: SIMD4<Double>

  init(
    _ channelBase: Int, _ n: Int, _ modes: Int, _ a: UnsafeMutablePointer<Float>,
    _ b: UnsafeMutablePointer<Float>
  ) {
    base = channelBase + n
    count = min(4, modes - n)
    var (zr, zi) = (SIMD4<Double>(), SIMD4<Double>())
    for k in 0..<count {
      let magnitude = Foundation.exp(Double(a[base + k]))
      let angle = Double(b[base + k])
      zr[k] = magnitude * Foundation.cos(angle)
      zi[k] = magnitude * Foundation.sin(angle)
    }
    (self.zr, self.zi) = (zr, zi)
  }

  func load(_ p: UnsafeMutablePointer<Float>) -> SIMD4<Double> {
    var v = SIMD4<Double>()
    for k in 0..<count { v[k] = Double(p[base + k]) }
    return v
  }

  func store(_ v: SIMD4<Double>, to p: UnsafeMutablePointer<Float>) {
    for k in 0..<count { p[base + k] = Float(v[k]) }
  }

  /// Calls `body(l, Re z^l, Im z^l)` for `l = 0 ..< length` (lanes past `count` are 0 from `l = 1`).
  @inline(__always) func powers(_ length: Int, _ body: (Int, SIMD4<Double>, SIMD4<Double>) -> Void) {
    var (pr, pi) = (SIMD4<Double>(repeating: 1), SIMD4<Double>())
    for l in 0..<length {
      body(l, pr, pi)
      (pr, pi) = (pr * zr - pi * zi, pr * zi + pi * zr)
    }
  }
}
