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

  /// The shared body of the three norms: per row, `xhat = (x - c) * s` with `c` the mean
  /// (centred) or 0, and `s = kind.scale(sum((x - c)^2), d)`; then `xhat * weight + bias`.
  ///
  /// Pullback per row, with `gh = g * weight` and `s' = ds/d(sumSquares)`:
  /// `dx = s * gh + 2 s' (x - c) * sum(gh * (x - c))`, minus its mean when centred
  /// (the mean subtraction is a projection).
  private func normalized(_ kind: NormKind, weight: Tensor?, bias: Tensor?) -> Tensor {
    let (op, centered) = (kind.name, kind.isCentered)
    precondition(rank >= 1, "\(op): input must have rank >= 1, got \(shape)")
    let d = shape[rank - 1]
    for p in [weight, bias].compactMap({ $0 }) {
      precondition(p.shape == [d], "\(op): parameter shape \(p.shape) does not match input \(shape)")
    }
    let rows = count / Swift.max(d, 1)
    let xhat = TensorStorage(uninitializedCount: count)
    var scales = [Float](repeating: 0, count: rows)
    var derivatives = [Float](repeating: 0, count: rows)  // ds/d(sumSquares)
    let x = storage.base
    for r in 0..<rows {
      let row = x + r * d
      var mean: Float = 0
      if centered {
        for j in 0..<d { mean += row[j] }
        mean /= Float(d)
      }
      var ss: Float = 0
      for j in 0..<d { ss += (row[j] - mean) * (row[j] - mean) }
      let s = kind.scale(sumSquares: ss, d: d)
      derivatives[r] = kind.scaleDerivative(sumSquares: ss, d: d, scale: s)
      scales[r] = s
      for j in 0..<d { xhat.base[r * d + j] = (row[j] - mean) * s }
    }
    let normalizedValue = Tensor(shape: shape, storage: xhat)
    var out = normalizedValue
    if let weight { out = Tensor.withoutRecording { out * weight } }
    if let bias { out = Tensor.withoutRecording { out + bias } }
    let inputs = [self] + [weight, bias].compactMap { $0 }
    return Tensor.recorded(op, shape: shape, storage: out.storage, inputs: inputs) { [shape] g in
      let gh = weight.map { g * $0.detached() } ?? g
      let dx = TensorStorage(uninitializedCount: g.count)
      for r in 0..<rows {
        let (ghr, xr, dr) = (gh.storage.base + r * d, xhat.base + r * d, dx.base + r * d)
        let s = scales[r]
        // x - c = xhat / s.
        var dot: Float = 0
        for j in 0..<d { dot += ghr[j] * xr[j] }
        let k = s == 0 ? 0 : 2 * derivatives[r] * dot / (s * s)
        for j in 0..<d { dr[j] = s * ghr[j] + k * xr[j] }
        if centered {
          var m: Float = 0
          for j in 0..<d { m += dr[j] }
          m /= Float(d)
          for j in 0..<d { dr[j] -= m }
        }
      }
      var grads: [Tensor?] = [Tensor(shape: shape, storage: dx)]
      if let weight { grads.append(weight.node == nil ? nil : (g * normalizedValue).sum(toShape: [d])) }
      if let bias { grads.append(bias.node == nil ? nil : g.sum(toShape: [d])) }
      return grads
    }
  }
}

/// The three norms differ only in centring and in the scale `s(sumSquares)`.
private enum NormKind {
  case layer(epsilon: Float)
  case rms(epsilon: Float)
  case simpleRMS(epsilon: Float)

  var name: String {
    switch self {
    case .layer: "layerNorm"
    case .rms: "rmsNorm"
    case .simpleRMS: "simpleRMSNorm"
    }
  }

  var isCentered: Bool { if case .layer = self { true } else { false } }

  /// `s` such that the normalised row is `(x - c) * s`.
  func scale(sumSquares ss: Float, d: Int) -> Float {
    switch self {
    case .layer(let eps), .rms(let eps): 1 / (ss / Float(d) + eps).squareRoot()
    case .simpleRMS(let eps): 1 / ((ss / Float(d)).squareRoot() + eps)
    }
  }

  /// `ds/d(sumSquares)`, in closed form.
  func scaleDerivative(sumSquares ss: Float, d: Int, scale s: Float) -> Float {
    switch self {
    // s = (ss / d + eps)^(-1/2): ds = -s^3 / (2 d).
    case .layer, .rms: -s * s * s / (2 * Float(d))
    // s = 1 / (sqrt(ss / d) + eps): ds = -s^2 / (2 sqrt(ss d)); 0 at the origin.
    case .simpleRMS: ss == 0 ? 0 : -s * s / (2 * (ss * Float(d)).squareRoot())
    }
  }
}
