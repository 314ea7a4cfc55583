import CConvolutionKernels

/// The FFT long convolution's loops around FFTW in the CPU's widest vector instructions
/// (CConvolutionKernels: AVX-512, AVX2 + FMA, or SSE2), chosen once per process: the transposes
/// between a `[B, L, D]` tensor and the FFT's rows and the spectral products
/// (`LongConvolution`), and the real spectrum's unpacking and packing around the half-size
/// complex transforms (``FFT``).
enum ConvolutionKernels {
  /// The functions of this CPU's widest instruction set.
  static let best = functions(for: lck_cpu_isa())!

  /// The functions of `isa`, or nil when this CPU lacks it (tests run every one it has).
  static func functions(for isa: lck_isa) -> lck_convolution_kernels? {
    var kernels = lck_convolution_kernels()
    return lck_convolution_kernels_for(isa, &kernels) == 1 ? kernels : nil
  }
}
