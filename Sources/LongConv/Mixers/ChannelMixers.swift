import LongConvLayers
import LongConvTensors

/// GLU channel mixer (TNN's feature mixer): `y = W3 (SiLU(W1 x + b1) * (W2 x + b2)) + b3`.
///
/// Config (`type: "glu"`): `hidden_dim` (default: the model width).
public final class GLU: ConfigurableChannelMixer {
  /// `"glu"`.
  public static let typeName = "glu"

  /// `W1`, `W2`: `D -> hidden`; `W3`: `hidden -> D`.
  public let l1: Linear, l2: Linear, l3: Linear

  /// A GLU of width `width` with `hidden` inner features.
  public init(width: Int, hidden: Int, generator: inout SeededGenerator) {
    l1 = Linear(width, hidden, generator: &generator)
    l2 = Linear(width, hidden, generator: &generator)
    l3 = Linear(hidden, width, generator: &generator)
  }

  /// `D`: the input width of `l1` (and the output width of `l3`).
  public var width: Int { l1.inputCount }

  /// `[..., D] -> [..., D]`, position by position: `W3 (SiLU(W1 x + b1) * (W2 x + b2)) + b3`.
  public func callAsFunction(_ x: Tensor) -> Tensor { l3(l1(x).siluGate(l2(x))) }

  /// Builds the GLU from its config (`hidden_dim`, default the model width).
  public convenience init(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator)
    throws
  {
    self.init(
      width: context.width, hidden: try config.int("hidden_dim", default: context.width, minimum: 1),
      generator: &generator)
  }
}

/// Two-layer perceptron channel mixer: `y = W2 act(W1 x + b1) + b2`.
///
/// Config (`type: "mlp"`): `hidden_dim` (default: 4 x width), `activation` (an
/// ``LongConvLayers/Activation`` name; `"gelu"` by default, `"gelu_tanh"` as safari's `lm_simple` uses).
/// Parameters `l1`, `l2` (safari's `fc1`, `fc2`).
public final class MLP: ConfigurableChannelMixer {
  /// `"mlp"`.
  public static let typeName = "mlp"

  /// `W1`: `D -> hidden`; `W2`: `hidden -> D`.
  public let l1: Linear, l2: Linear
  /// Between the two layers.
  public let activation: Activation

  /// A perceptron of width `width` with `hidden` inner features and `activation` between its layers.
  public init(width: Int, hidden: Int, activation: Activation, generator: inout SeededGenerator) {
    l1 = Linear(width, hidden, generator: &generator)
    l2 = Linear(hidden, width, generator: &generator)
    self.activation = activation
  }

  /// `D`: the input width of `l1` (and the output width of `l2`).
  public var width: Int { l1.inputCount }

  /// `[..., D] -> [..., D]`, position by position: `W2 act(W1 x + b1) + b2`.
  public func callAsFunction(_ x: Tensor) -> Tensor { l2(activation(l1(x))) }

  /// Builds the perceptron from its config (`hidden_dim`, default 4 x width; `activation`).
  public convenience init(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator)
    throws
  {
    self.init(
      width: context.width, hidden: try config.int("hidden_dim", default: 4 * context.width, minimum: 1),
      activation: Activation(
        rawValue: try config.string(
          "activation", default: Activation.gelu.rawValue, allowed: Activation.allCases.map(\.rawValue)))!,
      generator: &generator)
  }
}
