import LongConv
import LongConvLayers
import LongConvTensors

/// One token of a sequence mixer in the fused decoding step (``RecurrentLanguageModel``): the
/// modules and choices it is made of, from which the decoder packs its weights. Each form
/// states its math once; the decoder runs it on each team member's share of the channels.
///
/// `rec` is the mixer's converted long convolution (the recurrence of its recurrent form), on
/// the channels the output product reads (`C`, its input width).
public enum FusedMixerStep {
  /// `y = W_o (act(W_u x) * rec(act(W_v x)))` over `C` channels (a GTU: SiLU).
  case gated(u: Linear, v: Linear, out: Linear, activation: Activation)
  /// The Hyena operator of order `N` (``LongConv/HyenaOperator``); `rec` has `(N-1) C` channels in step
  /// order (step `o` is channels `o C ..< (o+1) C`).
  case hyena(FusedHyenaStep)
  /// `y = output(act(rec(x)))`, then `y[:C] * sigmoid(y[C:])` for a GLU output (an SSM block).
  case ssm(output: Linear, activation: Activation, outputGLU: Bool)
}

/// A Hyena operator's parts for ``FusedMixerStep/hyena(_:)``: input projection `[(N+1) C, C]`,
/// short filter `[(N+1) C, s]` (lag order) and its bias, output projection, the step scales
/// (`post_order_ffn`) and the activation.
public struct FusedHyenaStep {
  /// `C -> (N+1) C`.
  public let inProj: Linear
  /// `[(N+1) C, s]`.
  public let shortFilter: Tensor
  /// `[(N+1) C]`.
  public let shortFilterBias: Tensor
  /// `C -> C`.
  public let outProj: Linear
  /// `N`.
  public let order: Int
  /// `[N]` or `nil`.
  public let orderScales: Tensor?
  /// Applied to `v * x_0`.
  public let activation: Activation

  /// The parts of one operator.
  public init(
    inProj: Linear, shortFilter: Tensor, shortFilterBias: Tensor, outProj: Linear, order: Int,
    orderScales: Tensor?, activation: Activation
  ) {
    (self.inProj, self.shortFilter, self.shortFilterBias, self.outProj) = (
      inProj, shortFilter, shortFilterBias, outProj
    )
    (self.order, self.orderScales, self.activation) = (order, orderScales, activation)
  }
}

/// A sequence mixer whose token the fused decoding step can run: it says how, in one of the
/// forms of ``FusedMixerStep``. A mixer defined outside the toolkit opts in by conforming (its
/// recurrent form must expose its ``RecurrentMixer/fusedRecurrence``).
public protocol FusableMixer: ConvertibleMixer {
  /// The mixer's decoding step, or `nil` when this instance has none (then the model steps
  /// through its modules).
  var fusedStep: FusedMixerStep? { get }
}

/// One position of a channel mixer in the fused decoding step.
public enum FusedChannelStep {
  /// `y = W_out (act(W_first x) * (W_gate x))` (a GLU: SiLU).
  case gated(first: Linear, gate: Linear, out: Linear, activation: Activation)
  /// `y = W_out act(W_first x)` (an MLP).
  case pointwise(first: Linear, out: Linear, activation: Activation)
}

/// A channel mixer the fused decoding step can run.
public protocol FusableChannelMixer: ChannelMixer {
  /// The mixer's step.
  var fusedStep: FusedChannelStep { get }
}

extension GatedToeplitzUnit: FusableMixer {
  /// `W_o (SiLU(W_u x) * rec(SiLU(W_v x)))`.
  public var fusedStep: FusedMixerStep? { .gated(u: uProj, v: vProj, out: out, activation: .silu) }
}

extension HyenaOperator: FusableMixer {
  /// The operator's parts; `nil` with outer mixing, whose gate sums every channel per step
  /// (a reduction across the members' channel split that the step does not have).
  public var fusedStep: FusedMixerStep? {
    guard !outerMixing else { return nil }
    return .hyena(
      FusedHyenaStep(
        inProj: inProj, shortFilter: shortFilter, shortFilterBias: shortFilterBias, outProj: outProj,
        order: order, orderScales: orderScales, activation: activation))
  }
}

extension SSMBlock: FusableMixer {
  /// `output(act(rec(x)))`, GLU or linear.
  public var fusedStep: FusedMixerStep? { .ssm(output: output, activation: activation, outputGLU: outputGLU) }
}

extension GLU: FusableChannelMixer {
  /// `W3 (SiLU(W1 x) * (W2 x))`.
  public var fusedStep: FusedChannelStep { .gated(first: l1, gate: l2, out: l3, activation: .silu) }
}

extension MLP: FusableChannelMixer {
  /// `W2 act(W1 x)`.
  public var fusedStep: FusedChannelStep { .pointwise(first: l1, out: l2, activation: activation) }
}
