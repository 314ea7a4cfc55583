import LongConvTensors

/// `y = x W^T + b` over the last axis, with `W` stored `[out, in]` as in PyTorch (the
/// transpose is passed to BLAS, not copied).
public final class Linear: Module {
  /// `[out, in]`.
  public let weight: Tensor
  /// `[out]`, or `nil` without bias.
  public let bias: Tensor?

  /// A layer `inputs -> outputs`, initialised as PyTorch's: uniform on `[-1/sqrt(inputs), 1/sqrt(inputs)]`.
  public init(_ inputs: Int, _ outputs: Int, bias: Bool = true, generator: inout SeededGenerator) {
    weight = uniformParameter([outputs, inputs], fanIn: inputs, generator: &generator)
    self.bias = bias ? uniformParameter([outputs], fanIn: inputs, generator: &generator) : nil
  }

  /// `in`.
  public var inputCount: Int { weight.shape[1] }
  /// `out`.
  public var outputCount: Int { weight.shape[0] }

  /// `[..., in] -> [..., out]`: `x W^T + b` in one fused op.
  public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight: weight, bias: bias) }
}

/// A table of `[vocabulary, width]` vectors looked up by integer token.
public final class Embedding: Module {
  /// `[vocabulary, width]`.
  public let weight: Tensor

  /// A table initialised `N(0, std^2)`.
  public init(vocabulary: Int, width: Int, std: Float, generator: inout SeededGenerator) {
    weight = Tensor.normal([vocabulary, width], std: std, generator: &generator).requiringGradient()
  }

  /// Rows: the number of tokens.
  public var vocabulary: Int { weight.shape[0] }
  /// Columns: the vector width.
  public var width: Int { weight.shape[1] }

  /// Vectors for `tokens` laid out as `shape`: result `shape + [width]`.
  public func callAsFunction(_ tokens: [Int], shape: [Int]) -> Tensor {
    weight.gather(rows: tokens, indexShape: shape)
  }
}
