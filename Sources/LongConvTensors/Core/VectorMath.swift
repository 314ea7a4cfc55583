import CVectorMath

/// Element-wise activations over whole arrays in the CPU's widest vector instructions
/// (CVectorMath: AVX-512, AVX2 + FMA, or SSE2), chosen once per process: Swift compiles for the
/// baseline x86-64 and cannot pick wider instructions per function. The formulas are those of
/// ``FastMath``, ``SiLUFunction`` and ``GELUTanhFunction``.
public enum VectorMath {
  /// The functions of this CPU's widest instruction set.
  static let best = functions(for: lck_cpu_isa())!

  /// The functions of `isa`, or nil when this CPU lacks it (tests run every one it has).
  static func functions(for isa: lck_isa) -> lck_vector_math? {
    var math = lck_vector_math()
    return lck_vector_math_for(isa, &math) == 1 ? math : nil
  }
}

/// An element-wise function over arrays: `forward(x, y, n)` writes `f(x)`, `backward(g, x, dx, n)`
/// writes `g f'(x)`. The toolkit's vector kernels only; a function of one's own runs element by
/// element through its `value` and `derivative`.
public struct ElementwiseArrayKernels: Sendable {
  let forward: @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
  let backward:
    @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
}
