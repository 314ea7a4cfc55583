import LongConv
import LongConvTensors

/// A causal kernel sampled for conversion, in Double: `t_c[k]` for channels `c < channels`
/// and lags `k < length`, row-major (`values[c * length + k]`).
///
/// When the kernel is separable, `t_c[k] = gamma_c^k r_c[k]`, ``decay`` holds `gamma` and
/// ``undecayed`` holds `r` (computed without the decay, so it never divides by a vanishing
/// `gamma^k`); converters fold `gamma` into the poles. ``native`` carries a kernel's own exact
/// state-space form when it has one.
public struct CausalKernelSamples: Sendable {
  /// A name for reports and interchange files (a model's kernels use their parameter path,
  /// `blocks.0.mixer.kernel`).
  public var name: String
  /// Channels `D`: the rows of ``values``.
  public let channels: Int
  /// The conversion length `n`: lags `0 ..< n`.
  public let length: Int
  /// `t`, `[channels, length]`.
  public let values: [Double]
  /// `gamma [channels]`, when the kernel declares a separable decay.
  public let decay: [Double]?
  /// `r [channels, length]` with `t = gamma^k r`, present exactly when ``decay`` is.
  public let undecayed: [Double]?
  /// The kernel's skip `[channels]` (`y += skip * x`), if any.
  public let skip: [Double]?
  /// The kernel's exact state-space form, if it has one.
  public let native: DiagonalStateSpace?

  /// Samples given as numbers. Throws ``ConversionError`` for a zero length or channel count,
  /// a count that does not match, or a value that is not finite.
  public init(
    name: String, channels: Int, length: Int, values: [Double], decay: [Double]? = nil,
    undecayed: [Double]? = nil, skip: [Double]? = nil, native: DiagonalStateSpace? = nil
  ) throws {
    guard channels >= 1, length >= 1 else {
      throw ConversionError(
        kernel: name, problem: "needs at least one channel and one lag, got [\(channels), \(length)]")
    }
    guard values.count == channels * length else {
      throw ConversionError(
        kernel: name,
        problem: "\(values.count) values for [\(channels), \(length)] (expected \(channels * length))")
    }
    guard (decay == nil) == (undecayed == nil) else {
      throw ConversionError(kernel: name, problem: "a decay needs the undecayed kernel beside it, and back")
    }
    if let decay, let undecayed {
      guard decay.count == channels, undecayed.count == values.count else {
        throw ConversionError(kernel: name, problem: "decay or undecayed kernel of the wrong size")
      }
      guard decay.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 1 }) else {
        throw ConversionError(kernel: name, problem: "a decay outside (0, 1]")
      }
      try Self.requireFinite(undecayed, name: name, what: "undecayed kernel", length: length)
    }
    if let skip, skip.count != channels || !skip.allSatisfy(\.isFinite) {
      throw ConversionError(kernel: name, problem: "skip must hold \(channels) finite values")
    }
    try Self.requireFinite(values, name: name, what: "kernel", length: length)
    self.name = name
    self.channels = channels
    self.length = length
    self.values = values
    self.decay = decay
    self.undecayed = undecayed
    self.skip = skip
    self.native = native
  }

  /// Samples `kernel` (which must be causal) over `length` lags, with its decay, skip and
  /// native form. The coefficients are computed without recording a graph.
  public init(kernel: some LongConvKernel, length: Int, name: String) throws {
    guard kernel.direction == .causal else {
      throw ConversionError(
        kernel: name,
        problem:
          "the kernel is bidirectional: its output depends on later inputs, so it has no causal recurrent form"
      )
    }
    let (values, decay, undecayed, skip) = try Tensor.withoutRecording {
      let values = try kernel.coefficients(length: length).scalars.map(Double.init)
      let skip = kernel.skip?.scalars.map(Double.init)
      guard let gamma = kernel.separableDecay, let r = try kernel.undecayedCoefficients(length: length) else {
        return (values, [Double]?.none, [Double]?.none, skip)
      }
      return (values, gamma.scalars.map(Double.init), r.scalars.map(Double.init), skip)
    }
    try self.init(
      name: name, channels: kernel.channels, length: length, values: values, decay: decay,
      undecayed: undecayed, skip: skip, native: kernel.stateSpace())
  }

  /// Lags of channel `c`.
  public func channel(_ c: Int) -> ArraySlice<Double> { values[c * length..<(c + 1) * length] }

  private static func requireFinite(_ values: [Double], name: String, what: String, length: Int) throws {
    if let i = values.firstIndex(where: { !$0.isFinite }) {
      throw ConversionError(
        kernel: name, problem: "\(what) value at channel \(i / length), lag \(i % length) is \(values[i])")
    }
  }
}

/// Why a kernel or model cannot be converted.
public struct ConversionError: Error, Equatable, CustomStringConvertible {
  /// The kernel (or file) concerned.
  public var kernel: String
  /// What is wrong.
  public var problem: String

  /// An error about `kernel`.
  public init(kernel: String, problem: String) {
    self.kernel = kernel
    self.problem = problem
  }

  /// `<kernel>: <problem>`.
  public var description: String { "\(kernel): \(problem)" }
}
