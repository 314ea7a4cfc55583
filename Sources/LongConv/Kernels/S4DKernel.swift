import Foundation
import LongConvLayers
import LongConvTensors

/// S4D: the diagonal state-space kernel of Gu et al., "On the Parameterization and
/// Initialization of Diagonal State Space Models" (2022), docs/MODELS.md section 4.
///
/// Per channel `c`, `H = N/2` complex modes (the conjugate halves are implied by taking
/// twice the real part):
///
/// ```
/// dt   = exp(logDt[c])
/// A_n  = -exp(logAReal[c, n]) + i aImag[c, n]
/// C_n  = cReal[c, n] + i cImag[c, n],   B_n = 1
/// dA_n = exp(dt A_n)                                  (zero-order hold)
/// C'_n = C_n (exp(dt A_n) - 1) / A_n
/// K[l] = 2 Re sum_n C'_n dA_n^l,   l = 0 ... L-1
/// y[i] = sum_k K[k] x[i - k] + D[c] x[i]
/// ```
///
/// `dt A` and `C'` are computed with real tensor ops (`exp`, `cos`, `sin`, products; the
/// complex division written out as `(a + ib)/(c + id) = ((ac + bd) + i(bc - ad)) / (c^2 + d^2)`),
/// so gradients reach every parameter through the ordinary pullbacks; the sum over modes and
/// lags is one op, ``LongConvTensors/Tensor/diagonalVandermonde(poleLogReal:poleLogImaginary:residueReal:residueImaginary:length:)``
/// (powers `dA_n^l` by recurrence in Double, never stored as `[D, H, L]`).
///
/// Step form (exact, state `H` complex numbers per channel): `s = dA * s + u`,
/// `y = 2 Re(C' . s) + D u`; ``stateSpace()`` returns these poles `dA` and residues `2C'`.
///
/// **Bidirectional** (as S4's `bidirectional=True`): a second complex `C` per channel
/// (`cRealBackward`, `cImagBackward`) shares `A` and `dt` and gives a second causal kernel
/// `Kb`, applied to the reversed sequence shifted by one position, so lag 0 belongs to the
/// forward kernel alone:
/// `t[k] = K[k]` for `k >= 0` and `t[-k] = Kb[k - 1]` for `k = 1 ... L-1`. The result is
/// `[D, 2L - 1]` with lags `-(L-1) ... L-1`; ``stateSpace()`` is `nil` then (the kernel is
/// not causal).
///
/// Initialisation (as `s4d.py`): `logDt` uniform in `[log dt_min, log dt_max]`; S4D-Lin
/// `A_n = -1/2 + i pi n`, or S4D-Inv `A_n = -1/2 + i (N/pi) (N/(2n+1) - 1)`; `C` complex
/// normal with variance 1/2 per part; `D` standard normal.
///
/// Config (`type: "s4d"`):
/// - `state_size` `N` (default 64): even, at least 2; `N/2` complex modes per channel;
/// - `dt_min` (default 0.001), `dt_max` (default 0.1): range of the initial step size;
/// - `init` (default `"lin"`): `"lin"` (S4D-Lin) or `"inv"` (S4D-Inv);
/// - `pole_groups` `G` (default: the channels): channels share `A` in `G` groups, channel `c`
///   using row `c mod G` of `logAReal` and `aImag` (`[G, H]`), as safari's S4D with `n_ssm = G`
///   (its `repeat(w, 't n -> (v t) n')`); `dt` and `C` stay per channel. Must divide the channels.
///
/// The same parametrisation as safari's `SSKernelDiag` (`log_w_real`, `w_imag`, `C` with `B`
/// folded in, `log_dt`): `A = w = -exp(log_w_real) + i w_imag`.
///
/// - Complexity: `O(D N L)` time and memory for ``coefficients(length:)``.
public final class S4DKernel: ConfigurableKernel {
  /// The config `type` of this kernel: `"s4d"`.
  public static let typeName = "s4d"

  /// `[D]`: log of the step size.
  public let logDt: Tensor
  /// `[G, H]`: `Re(A) = -exp(logAReal)`, one row per pole group (`G = D` unless shared).
  public let logAReal: Tensor
  /// `[G, H]`: `Im(A)`.
  public let aImag: Tensor
  /// `[D, H]`: real and imaginary parts of `C`.
  public let cReal: Tensor, cImag: Tensor
  /// `[D, H]`: `C` of the backward kernel (bidirectional only).
  public let cRealBackward: Tensor?, cImagBackward: Tensor?
  /// `[D]`: the skip weights, saved under `s4d.py`'s name `D`.
  @Parameter(key: "D") public private(set) var skipWeight = Tensor.zeros([1])  // set by init
  /// Bidirectional exactly when the backward `C` (``cRealBackward``, ``cImagBackward``) is present, else
  /// causal.
  public let direction: ConvolutionDirection

  /// A kernel from its parameter tensors (for example loaded from a checkpoint); pass the
  /// backward `C` for a bidirectional kernel.
  public init(
    logDt: Tensor, logAReal: Tensor, aImag: Tensor, cReal: Tensor, cImag: Tensor, skipWeight: Tensor,
    cRealBackward: Tensor? = nil, cImagBackward: Tensor? = nil
  ) {
    let channels = logDt.count
    let modes = logAReal.shape.last ?? 0
    let groups = logAReal.shape.first ?? 0
    precondition(
      logDt.rank == 1 && skipWeight.shape == [channels],
      "S4DKernel: logDt \(logDt.shape), skip \(skipWeight.shape)")
    precondition(
      logAReal.rank == 2 && groups >= 1 && channels % groups == 0,
      "S4DKernel: logAReal \(logAReal.shape): its pole groups must divide the \(channels) channels")
    for (name, t) in [("aImag", aImag)] {
      precondition(
        t.shape == [groups, modes], "S4DKernel: \(name) is \(t.shape), expected [\(groups), \(modes)]")
    }
    for (name, t) in [("cReal", cReal), ("cImag", cImag)] {
      precondition(
        t.shape == [channels, modes], "S4DKernel: \(name) is \(t.shape), expected [\(channels), \(modes)]")
    }
    precondition(
      (cRealBackward == nil) == (cImagBackward == nil),
      "S4DKernel: give both parts of the backward C or neither")
    if let cRealBackward, let cImagBackward {
      precondition(
        cRealBackward.shape == [channels, modes] && cImagBackward.shape == [channels, modes],
        "S4DKernel: backward C is \(cRealBackward.shape), \(cImagBackward.shape), expected [\(channels), \(modes)]"
      )
    }
    self.logDt = logDt
    self.logAReal = logAReal
    self.aImag = aImag
    self.cReal = cReal
    self.cImag = cImag
    self.skipWeight = skipWeight
    self.cRealBackward = cRealBackward
    self.cImagBackward = cImagBackward
    direction = cRealBackward == nil ? .causal : .bidirectional
  }

  /// The S4D initialisation schemes for `A`.
  public enum Initialization: String, Sendable, CaseIterable {
    /// `A_n = -1/2 + i pi n`.
    case lin
    /// `A_n = -1/2 + i (N/pi) (N/(2n+1) - 1)`.
    case inv
  }

  /// A freshly initialised kernel of `channels` channels and `stateSize / 2` complex modes.
  public convenience init(
    channels: Int, stateSize: Int = 64, direction: ConvolutionDirection = .causal,
    initialization: Initialization = .lin, dtMin: Double = 1e-3, dtMax: Double = 1e-1, poleGroups: Int? = nil,
    generator: inout SeededGenerator
  ) {
    precondition(
      channels >= 1 && stateSize >= 2 && stateSize % 2 == 0,
      "S4DKernel: \(channels) channels, state \(stateSize)")
    let groups = poleGroups ?? channels
    precondition(
      groups >= 1 && channels % groups == 0, "S4DKernel: \(groups) pole groups for \(channels) channels")
    precondition(dtMin > 0 && dtMin <= dtMax, "S4DKernel: dt range [\(dtMin), \(dtMax)]")
    let modes = stateSize / 2
    let (lo, hi) = (Foundation.log(dtMin), Foundation.log(dtMax))
    let logDt = (0..<channels).map { _ in Float(lo + (hi - lo) * generator.nextUniformDouble()) }
    let imag: [Float] = (0..<modes).map { n in
      switch initialization {
      case .lin: Float(Double.pi * Double(n))
      case .inv:
        Float(Double(stateSize) / Double.pi * (Double(stateSize) / Double(2 * n + 1) - 1))
      }
    }
    let shape = [channels, modes]
    let std = Float(0.5).squareRoot()
    let cReal = Tensor.normal(shape, std: std, generator: &generator)
    let cImag = Tensor.normal(shape, std: std, generator: &generator)
    var backward: (Tensor, Tensor)?
    if direction == .bidirectional {
      backward = (
        Tensor.normal(shape, std: std, generator: &generator),
        Tensor.normal(shape, std: std, generator: &generator)
      )
    }
    let skip = Tensor.normal([channels], generator: &generator)
    self.init(
      logDt: Tensor(logDt).requiringGradient(),
      logAReal: Tensor(repeating: Float(Foundation.log(0.5)), shape: [groups, modes]).requiringGradient(),
      aImag: try! Tensor(
        shape: [groups, modes], scalars: Array(repeating: imag, count: groups).flatMap { $0 }
      )
      .requiringGradient(),
      cReal: cReal.requiringGradient(), cImag: cImag.requiringGradient(),
      skipWeight: skip.requiringGradient(),
      cRealBackward: backward?.0.requiringGradient(), cImagBackward: backward?.1.requiringGradient())
  }

  /// Builds the kernel from its config object (keys and defaults above), for `context`'s channels, direction and maximum length.
  public convenience init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator)
    throws
  {
    let stateSize = try config.int("state_size", default: 64, minimum: 2)
    guard stateSize % 2 == 0 else {
      throw config.error("state_size", "must be even (N/2 complex modes), got \(stateSize)")
    }
    let dtMin = try config.double("dt_min", default: 1e-3, range: 1e-12...1e6)
    let dtMax = try config.double("dt_max", default: 1e-1, range: 1e-12...1e6)
    guard dtMin <= dtMax else {
      throw config.error("dt_max", "must be at least dt_min (\(dtMin)), got \(dtMax)")
    }
    let initialization = Initialization(
      rawValue: try config.string("init", default: "lin", allowed: Initialization.allCases.map(\.rawValue)))!
    let groups = try config.int("pole_groups", default: context.channels, minimum: 1)
    guard context.channels % groups == 0 else {
      throw config.error(
        "pole_groups", "must divide the kernel's \(context.channels) channels, got \(groups)")
    }
    self.init(
      channels: context.channels, stateSize: stateSize, direction: context.direction,
      initialization: initialization, dtMin: dtMin, dtMax: dtMax, poleGroups: groups, generator: &generator)
  }

  /// Channels `D`: the entries of ``logDt``.
  public var channels: Int { logDt.count }
  /// Complex modes per channel, `N/2`.
  public var modes: Int { logAReal.shape[1] }
  /// The skip `D` (``skipWeight``).
  public var skip: Tensor? { skipWeight }
  /// `G`: channels share poles in this many groups (``channels`` when not shared).
  public var poleGroups: Int { logAReal.shape[0] }

  /// `[G, H]` pole parameters repeated to one row per channel, row `c` from group `c mod G`.
  private func perChannel(_ t: Tensor) -> Tensor {
    poleGroups == channels
      ? t : Tensor.concatenate(Array(repeating: t, count: channels / poleGroups), axis: 0)
  }

  /// `Re(dt A)`, `Im(dt A)` and the real and imaginary parts of `C' = C (exp(dt A) - 1) / A`
  /// for `C` = (`cr`, `ci`), all `[D, H]`.
  private func discretized(cr: Tensor, ci: Tensor) -> (dtARe: Tensor, dtAIm: Tensor, cRe: Tensor, cIm: Tensor)
  {
    let dt = logDt.exp().reshaped([channels, 1])
    let aRe = -1 * perChannel(logAReal).exp()
    let aIm = perChannel(aImag)
    let dtARe = aRe * dt
    let dtAIm = aIm * dt
    // exp(dtA) - 1 = (e cos - 1) + i e sin
    let e = dtARe.exp()
    let nRe = e * dtAIm.cos() - 1
    let nIm = e * dtAIm.sin()
    // (exp(dtA) - 1) / A
    let denominator = aRe * aRe + aIm * aIm
    let zRe = (nRe * aRe + nIm * aIm) / denominator
    let zIm = (nIm * aRe - nRe * aIm) / denominator
    // C * z
    return (dtARe, dtAIm, cr * zRe - ci * zIm, cr * zIm + ci * zRe)
  }

  /// `K[c, l] = 2 Re sum_n C'_n exp(dtA_n l)` for `l < length`: `[D, length]`.
  private func causalKernel(
    length: Int, dtARe: Tensor, dtAIm: Tensor, cRe: Tensor, cIm: Tensor
  ) -> Tensor {
    Tensor.diagonalVandermonde(
      poleLogReal: dtARe, poleLogImaginary: dtAIm, residueReal: cRe, residueImaginary: cIm, length: length)
  }

  /// `[D, L]`, `K[l] = 2 Re sum_n C'_n dA_n^l` (causal), or `[D, 2L - 1]`: `Kb[L-2] ... Kb[0]` at lags
  /// `-(L-1) ... -1`, then `K[0] ... K[L-1]` (bidirectional); the skip `D` is not included. Throws
  /// ``KernelError/invalidLength(kernel:requested:)`` for `length < 1`.
  public func coefficients(length: Int) throws -> Tensor {
    guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
    let forward = discretized(cr: cReal, ci: cImag)
    let k = causalKernel(
      length: length, dtARe: forward.dtARe, dtAIm: forward.dtAIm, cRe: forward.cRe, cIm: forward.cIm)
    guard let cRealBackward, let cImagBackward else { return k }
    if length == 1 { return k }
    let backward = discretized(cr: cRealBackward, ci: cImagBackward)
    // Lags -(L-1) ... -1 hold Kb[L-2] ... Kb[0].
    let kb = causalKernel(
      length: length - 1, dtARe: backward.dtARe, dtAIm: backward.dtAIm, cRe: backward.cRe, cIm: backward.cIm)
    return Tensor.concatenate([kb.flipped(axis: 1), k], axis: 1)
  }

  /// The exact recurrence of the causal kernel, computed in Double from the parameters:
  /// poles `exp(dt A_n)`, residues `2 C'_n`, skip `D`. `nil` for a bidirectional kernel.
  public func stateSpace() -> DiagonalStateSpace? {
    guard direction == .causal else { return nil }
    let (d, h) = (channels, modes)
    let (logDt, logAReal, aImag, cReal, cImag, skip) = (
      self.logDt.scalars, self.logAReal.scalars, self.aImag.scalars, self.cReal.scalars, self.cImag.scalars,
      skipWeight.scalars
    )
    var poles = (re: [[Double]](), im: [[Double]]())
    var residues = (re: [[Double]](), im: [[Double]]())
    for c in 0..<d {
      let dt = Foundation.exp(Double(logDt[c]))
      var row = (pr: [Double](), pi: [Double](), rr: [Double](), ri: [Double]())
      for n in 0..<h {
        let i = c * h + n
        let pole = c % poleGroups * h + n
        let aRe = -Foundation.exp(Double(logAReal[pole]))
        let aIm = Double(aImag[pole])
        let e = Foundation.exp(dt * aRe)
        let (pRe, pIm) = (e * Foundation.cos(dt * aIm), e * Foundation.sin(dt * aIm))
        let (nRe, nIm) = (pRe - 1, pIm)
        let den = aRe * aRe + aIm * aIm
        let (zRe, zIm) = ((nRe * aRe + nIm * aIm) / den, (nIm * aRe - nRe * aIm) / den)
        let (cr, ci) = (Double(cReal[i]), Double(cImag[i]))
        row.pr.append(pRe)
        row.pi.append(pIm)
        row.rr.append(2 * (cr * zRe - ci * zIm))
        row.ri.append(2 * (cr * zIm + ci * zRe))
      }
      poles.re.append(row.pr)
      poles.im.append(row.pi)
      residues.re.append(row.rr)
      residues.im.append(row.ri)
    }
    return DiagonalStateSpace(
      polesReal: poles.re, polesImaginary: poles.im, residuesReal: residues.re,
      residuesImaginary: residues.im,
      skip: skip.map(Double.init))
  }
}
