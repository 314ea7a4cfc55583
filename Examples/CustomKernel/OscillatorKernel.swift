import Foundation
import LongConvKit

/// A bank of damped oscillators, a kernel the library does not ship. Per channel `c`, with
/// `J` oscillators (config `oscillators`, default 4) and learned `x, omega, phi, a [D, J]`:
///
/// ```
/// rho_cj = sigmoid(x_cj)                                         in (0, 1): stable
/// t_c[k] = sum_j a_cj rho_cj^k cos(omega_cj k + phi_cj)          k = 0 ... L-1
/// y[i]   = sum_k t_c[k] v[i - k] + s_c v[i]                      (s: learned skip)
/// ```
///
/// `rho^k = exp(-k softplus(-x))` over a `[D, J, L]` broadcast, summed over `j` by a batched
/// product: only existing ops, so every parameter gets its gradient from their pullbacks.
/// It is a diagonal state space: `a rho^k cos(omega k + phi) = Re(a e^(i phi) (rho e^(i omega))^k)`,
/// one complex pole `rho e^(i omega)` with residue `a e^(i phi)` per oscillator (taking the real
/// part stands for the conjugate pair), so ``stateSpace()`` is exact at every length with `J`
/// states per channel. Causal only. Config (`type: "oscillator"`): `oscillators`, `skip` (`true`).
final class OscillatorKernel: ConfigurableKernel {
  static let typeName = "oscillator"
  let x: Tensor, omega: Tensor, phi: Tensor, a: Tensor
  let skip: Tensor?
  let channels: Int
  let direction = ConvolutionDirection.causal

  init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator) throws {
    try requireDirection(context.direction, supported: [.causal], kernel: Self.typeName, config: config)
    let (d, j) = (context.channels, try config.int("oscillators", default: 4, minimum: 1))
    channels = d
    // Decay times 1 / (1 - rho) spread log-uniformly over 2 ... 200 lags; frequencies over [0, pi).
    let tau = (Tensor.uniform([d, j], generator: &generator) * Float(Foundation.log(100.0))).exp() * 2
    x = (tau - 1).log().requiringGradient()  // logit(1 - 1/tau) = log(tau - 1)
    omega = Tensor.uniform([d, j], high: .pi, generator: &generator).requiringGradient()
    phi = Tensor.uniform([d, j], high: 2 * .pi, generator: &generator).requiringGradient()
    a = Tensor.normal([d, j], std: 1 / Float(j).squareRoot(), generator: &generator).requiringGradient()
    skip =
      try config.bool("skip", default: true)
      ? Tensor.normal([d], generator: &generator).requiringGradient() : nil
  }

  func coefficients(length: Int) throws -> Tensor {
    guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
    let (d, j) = (channels, a.shape[1])
    let k = Tensor.arange(0, Float(length)).reshaped([1, 1, length])
    let logRho = -(-x).softplus()  // log sigmoid(x), finite for every x
    let damping = (logRho.reshaped([d, j, 1]) * k).exp()
    let waves = (omega.reshaped([d, j, 1]) * k + phi.reshaped([d, j, 1])).cos()
    return a.reshaped([d, 1, j]).matmul(damping * waves).reshaped([d, length])
  }

  func stateSpace() -> DiagonalStateSpace? {
    let (x, omega, phi, a) = (x.scalars, omega.scalars, phi.scalars, a.scalars)
    let j = self.a.shape[1]
    func rows(_ f: (Int) -> Double) -> [[Double]] {
      (0..<channels).map { c in (0..<j).map { f(c * j + $0) } }
    }
    let rho = { (i: Int) in 1 / (1 + Foundation.exp(-Double(x[i]))) }
    return DiagonalStateSpace(
      polesReal: rows { rho($0) * Foundation.cos(Double(omega[$0])) },
      polesImaginary: rows { rho($0) * Foundation.sin(Double(omega[$0])) },
      residuesReal: rows { Double(a[$0]) * Foundation.cos(Double(phi[$0])) },
      residuesImaginary: rows { Double(a[$0]) * Foundation.sin(Double(phi[$0])) },
      skip: skip?.scalars.map(Double.init))
  }
}
