import LongConvTensors

/// Scales the gradients of `parameters` in place so that their global L2 norm is at most
/// `maxNorm`, as `torch.nn.utils.clip_grad_norm_`, and returns the norm before clipping.
///
/// The norm is accumulated in Double over every gradient (parameters without one are
/// skipped). When it exceeds `maxNorm` each gradient is multiplied by
/// `maxNorm / (norm + 1e-6)` (PyTorch's factor). A non-finite norm (NaN or infinity) is
/// returned as is and nothing is scaled, so the caller can stop or skip the step.
/// Parameters sharing one gradient storage are counted once.
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
  var seen = Set<ObjectIdentifier>()
  let gradients = parameters.compactMap(\.gradient).filter {
    seen.insert(ObjectIdentifier($0.storage)).inserted
  }
  var sum = 0.0
  for g in gradients {
    g.withUnsafeBufferPointer { g in
      for x in g { sum += Double(x) * Double(x) }
    }
  }
  let norm = sum.squareRoot()
  guard norm.isFinite else { return Float(norm) }
  if norm > Double(maxNorm) {
    let scale = Float(Double(maxNorm) / (norm + 1e-6))
    for g in gradients {
      g.withUnsafeMutableBufferPointer { g in
        for j in 0..<g.count { g[j] *= scale }
      }
    }
  }
  return Float(norm)
}
