import Foundation

/// Fused normalisations over the last axis, each with a hand-written pullback.
extension Tensor {
  /// LayerNorm over the last axis: `(x - mean) / sqrt(var + eps) * weight + bias`, with the
  /// biased variance (as PyTorch). `weight` and `bias` have the shape `[d]` or are omitted.
  public func layerNorm(weight: Tensor? = nil, bias: Tensor? = nil, epsilon: Float = 1e-5) -> Tensor {
    normalized(.layer(epsilon: epsilon), weight: weight, bias: bias)
  }

  /// RMSNorm over the last axis: `x / sqrt(mean(x^2) + eps) * weight`.
  public func rmsNorm(weight: Tensor? = nil, epsilon: Float = 1e-6) -> Tensor {
    normalized(.rms(epsilon: epsilon), weight: weight, bias: nil)
  }

  /// SimpleRMSNorm over the last axis (TNN): `x / (||x||_2 * d^(-1/2) + eps)`, epsilon
  /// outside the root, no learnable scale.
  public func simpleRMSNorm(epsilon: Float = 1e-8) -> Tensor {
    normalized(.simpleRMS(epsilon: epsilon), weight: nil, bias: nil)
  }

  /// The normalisation `formula` over the last axis: per row, `xhat = (x - c) * s` with `c`
  /// the mean (centred) or 0, and `s = formula.scale(sum((x - c)^2), d)`; then
  /// `xhat * weight + bias`.
  ///
  /// Pullback per row, with `gh = g * weight` and `s' = ds/d(sumSquares)`:
  /// `dx = s * gh + 2 s' (x - c) * sum(gh * (x - c))`, minus its mean when centred
  /// (the mean subtraction is a projection). Rows are split over threads in both passes.
  public func normalized(_ kind: RowNormalization, weight: Tensor?, bias: Tensor?) -> Tensor {
    let (op, centered) = (kind.name, kind.isCentered)
    precondition(rank >= 1, "\(op): input must have rank >= 1, got \(shape)")
    let d = shape[rank - 1]
    for p in [weight, bias].compactMap({ $0 }) {
      precondition(p.shape == [d], "\(op): parameter shape \(p.shape) does not match input \(shape)")
    }
    let rows = count / Swift.max(d, 1)
    let xhat = TensorStorage(uninitializedCount: count)
    // With an affine part the output is a second buffer; `xhat` is kept for the weight's gradient.
    let affine = weight != nil || bias != nil
    let out = affine ? TensorStorage(uninitializedCount: count) : xhat
    let scales = TensorStorage(uninitializedCount: rows)
    let derivatives = TensorStorage(uninitializedCount: rows)  // ds/d(sumSquares)
    let (x, xh, y) = (SendablePointer(storage.base), SendablePointer(xhat.base), SendablePointer(out.base))
    let (sp, dp) = (SendablePointer(scales.base), SendablePointer(derivatives.base))
    let (w, b) = (
      weight.map { SendablePointer($0.storage.base) }, bias.map { SendablePointer($0.storage.base) }
    )
    let rowGrain = Swift.max(1, (1 << 14) / Swift.max(d, 1))
    parallelRanges(rows, grain: rowGrain) { range in
      for r in range {
        let (row, xr, yr) = (x.base + r * d, xh.base + r * d, y.base + r * d)
        let (mean, ss, s) = kind.statistics(of: row, count: d)
        dp.base[r] = kind.scaleDerivative(sumSquares: ss, d: d, scale: s)
        sp.base[r] = s
        // One pass per case: optional parameters read per element kept the loop scalar.
        switch (w, b) {
        case (let w?, let b?):
          for j in 0..<d {
            xr[j] = (row[j] - mean) * s
            yr[j] = xr[j] * w.base[j] + b.base[j]
          }
        case (let w?, nil):
          for j in 0..<d {
            xr[j] = (row[j] - mean) * s
            yr[j] = xr[j] * w.base[j]
          }
        case (nil, let b?):
          for j in 0..<d {
            xr[j] = (row[j] - mean) * s
            yr[j] = xr[j] + b.base[j]
          }
        case (nil, nil):
          for j in 0..<d { xr[j] = (row[j] - mean) * s }
        }
      }
    }
    let inputs = [self] + [weight, bias].compactMap { $0 }
    // The pullback reads these through raw pointers: it must hold the storages themselves.
    return Tensor.recorded(op, shape: shape, storage: out, inputs: inputs) {
      [shape, xhat, scales, derivatives] g in
      let dx = TensorStorage(uninitializedCount: g.count)
      let (gp, dxp) = (SendablePointer(g.storage.base), SendablePointer(dx.base))
      parallelRanges(rows, grain: rowGrain) { range in
        for r in range {
          let (gr, xr, dr) = (gp.base + r * d, xh.base + r * d, dxp.base + r * d)
          let s = sp.base[r]
          // gh = g * weight, written into dr first; x - c = xhat / s.
          if let w {
            for j in 0..<d { dr[j] = gr[j] * w.base[j] }
          } else {
            dr.update(from: gr, count: d)
          }
          // One pass for sum(gh xhat) and, when centred, the sums the mean of
          // `s gh + k xhat` needs: the projection is then part of the last pass.
          let (dot, sumGh, sumXhat) = RowNormalization.dotAndSums(dr, xr, count: d, sums: centered)
          let k = s == 0 ? 0 : 2 * dp.base[r] * dot / (s * s)
          let m = centered ? (s * sumGh + k * sumXhat) / Float(d) : 0
          for j in 0..<d { dr[j] = s * dr[j] + k * xr[j] - m }
        }
      }
      withExtendedLifetime((scales, derivatives)) {}
      var grads: [Tensor?] = [Tensor(shape: shape, storage: dx)]
      // sum over rows of g * xhat and of g, without forming g * xhat.
      if let weight {
        grads.append(
          weight.node == nil
            ? nil
            : Tensor(
              shape: [d], storage: Tensor.columnSums(g.storage.base, times: xhat.base, rows: rows, columns: d)
            ))
      }
      if let bias {
        grads.append(
          bias.node == nil
            ? nil : Tensor(shape: [d], storage: Tensor.columnSums(g.storage.base, rows: rows, columns: d)))
      }
      return grads
    }
  }
}

/// A normalisation of a row: the one statement of each norm's formula, used by
/// ``Tensor/normalized(_:weight:bias:)`` for tensors and by the fused decoding step for single
/// rows. The norms differ only in centring and in the scale `s(sumSquares)`; a new norm is a
/// new case here (with its scale's derivative for the pullback).
public enum RowNormalization: Sendable, Equatable {
  /// LayerNorm: centred, `s = 1 / sqrt(ss / d + eps)`.
  case layer(epsilon: Float)
  /// RMSNorm: `s = 1 / sqrt(ss / d + eps)`.
  case rms(epsilon: Float)
  /// SimpleRMSNorm (TNN): `s = 1 / (sqrt(ss / d) + eps)`.
  case simpleRMS(epsilon: Float)

  /// The op's name, for error messages.
  public var name: String {
    switch self {
    case .layer: "layerNorm"
    case .rms: "rmsNorm"
    case .simpleRMS: "simpleRMSNorm"
    }
  }

  /// Whether the row's mean is subtracted first.
  @inlinable public var isCentered: Bool { if case .layer = self { true } else { false } }

  /// The centre `c` (the mean, or 0), `sumSquares = sum((x - c)^2)` and the scale `s` of the
  /// row `x[0 ..< d]`: the normalised row is `(x - c) * s`.
  @inlinable @inline(__always)
  public func statistics(of x: UnsafePointer<Float>, count d: Int) -> (
    center: Float, sumSquares: Float, scale: Float
  ) {
    let mean = isCentered ? Self.sum(x, count: d) / Float(d) : 0
    let ss = Self.sumOfSquares(x, minus: mean, count: d)
    return (mean, ss, scale(sumSquares: ss, d: d))
  }

  // The row sums, in 16 lanes: one running sum waits for each add to finish, and Swift keeps
  // the order of float additions, so a plain loop never runs vector-wide (the norms took 9% of
  // a Hyena training step). Lane k sums elements k, k + 16, ...; the lanes are added at the end,
  // then the last `d mod 16` elements in order.

  /// `sum_j x[j]`.
  @inlinable @inline(__always)
  static func sum(_ x: UnsafePointer<Float>, count d: Int) -> Float {
    laneSums(count: d, tail: { x[$0] }) { UnsafeRawPointer(x + $0).loadUnaligned(as: SIMD16<Float>.self) }
  }

  /// `sum_j (x[j] - c)^2`.
  @inlinable @inline(__always)
  static func sumOfSquares(_ x: UnsafePointer<Float>, minus c: Float, count d: Int) -> Float {
    laneSums(count: d, tail: { (x[$0] - c) * (x[$0] - c) }) {
      let v = UnsafeRawPointer(x + $0).loadUnaligned(as: SIMD16<Float>.self) - c
      return v * v
    }
  }

  /// `sum_j a[j] b[j]`.
  @inlinable @inline(__always)
  static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count d: Int) -> Float {
    laneSums(count: d, tail: { a[$0] * b[$0] }) {
      UnsafeRawPointer(a + $0).loadUnaligned(as: SIMD16<Float>.self)
        * UnsafeRawPointer(b + $0).loadUnaligned(as: SIMD16<Float>.self)
    }
  }

  /// `sum_j a[j] b[j]` and, when `sums`, `sum_j a[j]` and `sum_j b[j]` (else 0), in one pass.
  static func dotAndSums(
    _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count d: Int, sums: Bool
  ) -> (dot: Float, sumA: Float, sumB: Float) {
    guard sums else { return (dot(a, b, count: d), 0, 0) }
    var (dotLanes, aLanes, bLanes) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
    var j = 0
    while j + 16 <= d {
      let u = UnsafeRawPointer(a + j).loadUnaligned(as: SIMD16<Float>.self)
      let v = UnsafeRawPointer(b + j).loadUnaligned(as: SIMD16<Float>.self)
      dotLanes += u * v
      aLanes += u
      bLanes += v
      j += 16
    }
    var (dot, sumA, sumB) = (dotLanes.sum(), aLanes.sum(), bLanes.sum())
    while j < d {
      dot += a[j] * b[j]
      sumA += a[j]
      sumB += b[j]
      j += 1
    }
    return (dot, sumA, sumB)
  }

  /// `sum_j term(j)` over `0 ..< d`: `vector(j)` gives the terms `j ..< j + 16`.
  @inlinable @inline(__always)
  static func laneSums(
    count d: Int, tail term: (Int) -> Float, _ vector: (Int) -> SIMD16<Float>
  ) -> Float {
    var lanes = SIMD16<Float>()
    var j = 0
    while j + 16 <= d {
      lanes += vector(j)
      j += 16
    }
    var total = lanes.sum()
    while j < d {
      total += term(j)
      j += 1
    }
    return total
  }

  /// `s` such that the normalised row is `(x - c) * s`.
  @inlinable public func scale(sumSquares ss: Float, d: Int) -> Float {
    switch self {
    case .layer(let eps), .rms(let eps): 1 / (ss / Float(d) + eps).squareRoot()
    case .simpleRMS(let eps): 1 / ((ss / Float(d)).squareRoot() + eps)
    }
  }

  /// `ds/d(sumSquares)`, in closed form.
  public func scaleDerivative(sumSquares ss: Float, d: Int, scale s: Float) -> Float {
    switch self {
    // s = (ss / d + eps)^(-1/2): ds = -s^3 / (2 d).
    case .layer, .rms: -s * s * s / (2 * Float(d))
    // s = 1 / (sqrt(ss / d) + eps): ds = -s^2 / (2 sqrt(ss d)); 0 at the origin.
    case .simpleRMS: ss == 0 ? 0 : -s * s / (2 * (ss * Float(d)).squareRoot())
    }
  }
}
