import LongConv

/// Exports a kernel's own exact state-space form (``LongConv/LongConvKernel/stateSpace()``: S4D, EMA),
/// exact at every length. A kernel without one is converted exactly by ``ExactConverter``
/// instead, and the report says so.
///
/// The report's error compares the native form with the sampled coefficients over the
/// conversion length (in Double; the coefficients themselves were Float32).
public struct NativeConverter: KernelConverter {
  /// The native converter; it has no settings.
  public init() {}

  /// Always ``ConversionMode/native`` (the report says ``ConversionMode/exact`` for a kernel without a native
  /// form).
  public var mode: ConversionMode { .native }

  /// The kernel's ``CausalKernelSamples/native`` form with its error measured against the samples, or,
  /// without one, ``ExactConverter``'s result with a note. Throws ``ConversionError`` when the native form
  /// has another channel count.
  public func convert(_ kernel: CausalKernelSamples) throws -> KernelConversion {
    guard let native = kernel.native else {
      var conversion = try ExactConverter().convert(kernel)
      conversion.report.requestedMode = .native
      conversion.report.note = "no native state-space form; converted exactly (ETSC)"
      return conversion
    }
    guard native.channels == kernel.channels else {
      throw ConversionError(
        kernel: kernel.name,
        problem: "native form has \(native.channels) channels, the kernel \(kernel.channels)")
    }
    let (relative, absolute) = measure(native, against: kernel)
    let counts = (0..<native.channels).map(native.states)
    let report = KernelConversionReport(
      kernel: kernel.name, requestedMode: .native, mode: .native, channels: kernel.channels,
      length: kernel.length, maxStates: counts.max() ?? 0, totalStates: counts.reduce(0, +),
      relativeError: relative, errorBound: absolute)
    return KernelConversion(stateSpace: native, report: report)
  }
}
