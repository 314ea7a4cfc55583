import LongConv
import LongConvTensors

/// The running state of one recurrent mixer for one sequence.
public struct RecurrentMixerState: Sendable {
  /// The long convolution's state.
  public var convolution: RecurrentConvolution.State
  /// Recent inputs a mixer keeps for a short convolution (`[s - 1, channels]`, newest last).
  public var history: [Float]
  /// Tokens consumed so far.
  public var position: Int
}

/// A sequence mixer in recurrent form: the whole prompt at once through the FFT path, then
/// one token at a time at a cost that does not depend on the position.
///
/// Contract: `prefill` on a fresh state followed by `step`s gives the same outputs as
/// stepping every token from the fresh state, and, within the conversion length, the same
/// outputs as the mixer's own forward pass on the whole sequence.
public protocol RecurrentMixer: Sendable {
  /// Width `d` of inputs and outputs.
  var width: Int { get }
  /// States per token stream: the recurrence's complex states.
  var stateCount: Int { get }
  /// A fresh state (no tokens seen).
  func makeState() -> RecurrentMixerState
  /// Outputs `[1, P, d]` for the prompt `x [1, P, d]` (the mixer's FFT forward pass, exact
  /// for any `P` the kernel serves), and the state after it. `state` must be fresh.
  func prefill(_ x: Tensor, state: inout RecurrentMixerState) throws -> Tensor
  /// Output `[1, d]` for the next input `x [1, d]`.
  func step(_ x: Tensor, state: inout RecurrentMixerState) -> Tensor
  /// The recurrence whose state ``RecurrentMixerState/convolution`` holds, for the fused
  /// decoding step (``FusableMixer``); `nil` (the default) keeps the mixer out of it.
  var fusedRecurrence: RecurrentConvolution? { get }
}

extension RecurrentMixer {
  /// None: the mixer steps through its own ``step(_:state:)``.
  public var fusedRecurrence: RecurrentConvolution? { nil }
}

/// A mixer whose long convolution can be replaced by a diagonal recurrence.
public protocol ConvertibleMixer: SequenceMixer {
  /// Its kernel sampled over `length` lags (throws for a bidirectional kernel).
  func kernelSamples(length: Int, name: String) throws -> CausalKernelSamples
  /// The mixer with its long convolution run by `system`.
  func recurrentForm(_ system: DiagonalStateSpace) throws -> any RecurrentMixer
}

extension ConvertibleMixer where Self: LongConvMixer {
  /// The mixer's kernel sampled by ``CausalKernelSamples/init(kernel:length:name:)``.
  public func kernelSamples(length: Int, name: String) throws -> CausalKernelSamples {
    try CausalKernelSamples(kernel: kernel, length: length, name: name)
  }
}

extension ConvertibleMixer {
  func checkChannels(_ system: DiagonalStateSpace, expected: Int) throws {
    guard system.channels == expected else {
      throw ConversionError(
        kernel: "\(Self.self)", problem: "state space has \(system.channels) channels, the kernel \(expected)"
      )
    }
  }
}

/// Runs `recurrence` on one `[1, D]` input.
func step(_ recurrence: RecurrentConvolution, _ x: Tensor, state: inout RecurrentConvolution.State) -> Tensor
{
  let y = Tensor.zeros([1, recurrence.channels])
  x.withUnsafeBufferPointer { input in
    y.withUnsafeMutableBufferPointer { output in
      recurrence.step(input.baseAddress!, into: output.baseAddress!, state: &state)
    }
  }
  return y
}

/// The recurrence's state after the rows of `x [1, P, D]`.
func state(of recurrence: RecurrentConvolution, after x: Tensor) -> RecurrentConvolution.State {
  x.withUnsafeBufferPointer { recurrence.state(after: $0, length: x.shape[1]) }
}

// MARK: Gated Toeplitz unit

extension GatedToeplitzUnit: ConvertibleMixer {
  /// The GTU with `TNO` run by `system`, which must have `innerWidth` (`d1`) channels; throws
  /// ``ConversionError`` otherwise.
  public func recurrentForm(_ system: DiagonalStateSpace) throws -> any RecurrentMixer {
    try checkChannels(system, expected: innerWidth)
    return RecurrentGTU(mixer: self, recurrence: RecurrentConvolution(system))
  }
}

/// ``GatedToeplitzUnit`` in recurrent form: `y = W_o (SiLU(W_u x) * TNO(SiLU(W_v x)))`, the
/// Toeplitz operator run as a recurrence.
struct RecurrentGTU<Kernel: LongConvKernel>: RecurrentMixer, @unchecked Sendable {
  let mixer: GatedToeplitzUnit<Kernel>
  let recurrence: RecurrentConvolution
  var fusedRecurrence: RecurrentConvolution? { recurrence }

  var width: Int { mixer.width }
  var stateCount: Int { recurrence.stateCount }

  func makeState() -> RecurrentMixerState {
    RecurrentMixerState(convolution: recurrence.makeState(), history: [], position: 0)
  }

  func prefill(_ x: Tensor, state: inout RecurrentMixerState) throws -> Tensor {
    let u = mixer.uProj(x).silu()
    let v = mixer.vProj(x).silu()
    state.convolution = LongConvRecurrence.state(of: recurrence, after: v)
    state.position = x.shape[1]
    return mixer.out(u * (try mixer.kernel.convolve(v)))
  }

  func step(_ x: Tensor, state: inout RecurrentMixerState) -> Tensor {
    let u = mixer.uProj(x).silu()
    let v = mixer.vProj(x).silu()
    state.position += 1
    return mixer.out(u * LongConvRecurrence.step(recurrence, v, state: &state.convolution))
  }
}

// MARK: Hyena operator

extension HyenaOperator: ConvertibleMixer {
  /// The operator with its long convolutions run by `system` (the kernel's `(N-1) d` channels in
  /// its layout, else throws ``ConversionError``) and its short convolution fed from the last
  /// `s - 1` projected inputs.
  public func recurrentForm(_ system: DiagonalStateSpace) throws -> any RecurrentMixer {
    try checkChannels(system, expected: kernel.channels)
    return RecurrentHyena(mixer: self, recurrence: RecurrentConvolution(system.selecting(stepMajorChannels)))
  }

  /// The kernel's channels in step order: entry `o d + c` is step `o` of channel `c`, kernel
  /// channel `c (N-1) + o`; so step `o` is the contiguous range `o d ..< (o+1) d`.
  var stepMajorChannels: [Int] {
    (0..<order - 1).flatMap { o in (0..<width).map { c in c * (order - 1) + o } }
  }
}

extension DiagonalStateSpace {
  /// The system of `channels` (indices into this one), in that order.
  func selecting(_ channels: [Int]) -> DiagonalStateSpace {
    DiagonalStateSpace(
      polesReal: channels.map { polesReal[$0] }, polesImaginary: channels.map { polesImaginary[$0] },
      residuesReal: channels.map { residuesReal[$0] },
      residuesImaginary: channels.map { residuesImaginary[$0] },
      skip: skip.map { skip in channels.map { skip[$0] } })
  }
}

/// ``HyenaOperator`` in recurrent form: the short convolution keeps its last `s - 1` inputs,
/// the `N - 1` long ones run as one recurrence whose channels are in step order (step `o` is
/// channels `o d ..< (o+1) d`), stepped a step at a time inside
/// ``HyenaOperator/recurrence(streams:longConvolution:)``.
struct RecurrentHyena<Kernel: LongConvKernel>: RecurrentMixer, @unchecked Sendable {
  let mixer: HyenaOperator<Kernel>
  let recurrence: RecurrentConvolution
  var fusedRecurrence: RecurrentConvolution? { recurrence }

  var width: Int { mixer.width }
  var stateCount: Int { recurrence.stateCount }
  /// `(N+1) d` streams through the short filter, `s` taps.
  var streams: Int { (mixer.order + 1) * mixer.width }
  var taps: Int { mixer.shortFilter.shape[1] }

  func makeState() -> RecurrentMixerState {
    RecurrentMixerState(
      convolution: recurrence.makeState(), history: [Float](repeating: 0, count: (taps - 1) * streams),
      position: 0)
  }

  func prefill(_ x: Tensor, state: inout RecurrentMixerState) throws -> Tensor {
    let projected = mixer.inProj(x)  // [1, P, (N+1) d]
    let u = projected.longConvolution(kernel: mixer.shortFilter, direction: .causal) + mixer.shortFilterBias
    let coefficients = try mixer.kernel.coefficients(length: x.shape[1])
    // Each step's input, in step order: what the recurrence has seen after the prompt.
    var inputs: [Tensor] = []
    let y = mixer.recurrence(streams: u) { o, v in
      inputs.append(v)
      return mixer.longConvolution(v, step: o, coefficients: coefficients)
    }
    state.convolution = LongConvRecurrence.state(
      of: recurrence, after: inputs.count == 1 ? inputs[0] : Tensor.concatenate(inputs, axis: 2))
    // The last s - 1 projected rows, zeros before the start.
    let length = x.shape[1]
    let rows = projected.scalars
    for j in 0..<taps - 1 {
      let source = length - (taps - 1) + j
      for c in 0..<streams { state.history[j * streams + c] = source >= 0 ? rows[source * streams + c] : 0 }
    }
    state.position = length
    return y
  }

  func step(_ x: Tensor, state: inout RecurrentMixerState) -> Tensor {
    let d = width
    let projected = mixer.inProj(x).scalars  // [(N+1) d]
    var u = [Float](repeating: 0, count: streams)
    mixer.shortFilter.withUnsafeBufferPointer { filter in
      mixer.shortFilterBias.withUnsafeBufferPointer { bias in
        state.history.withUnsafeMutableBufferPointer { history in
          for c in 0..<streams {
            u[c] = shortFilterStep(
              c, input: projected[c], filter: filter.baseAddress!, bias: bias.baseAddress!, taps: taps,
              history: history.baseAddress, streams: streams)
          }
        }
      }
    }
    var input = [Float](repeating: 0, count: recurrence.channels)
    var output = [Float](repeating: 0, count: recurrence.channels)
    let y = mixer.recurrence(streams: Tensor(u).reshaped([1, streams])) { o, v in
      let range = o * d..<(o + 1) * d
      v.withUnsafeBufferPointer { input.replaceSubrange(range, with: $0) }
      recurrence.step(channels: range, input, into: &output, state: &state.convolution)
      return Tensor(Array(output[range])).reshaped([1, d])
    }
    // Each channel group stepped once: one input for the recurrence.
    state.convolution.time += 1
    state.position += 1
    return y
  }
}

/// Hyena's short causal filter on one stream: `q = b + sum_j f_j p_(i-j)` over the new input
/// `p_i` and the last `taps - 1` inputs in `history [taps - 1, streams]` (newest last; `nil`
/// when `taps` is 1), which then shifts by one to take `p_i`. `filter` is `[streams, taps]`,
/// column `j` multiplying `p_(i-j)`.
@inline(__always)
func shortFilterStep(
  _ stream: Int, input: Float, filter: UnsafePointer<Float>, bias: UnsafePointer<Float>, taps: Int,
  history: UnsafeMutablePointer<Float>?, streams: Int
) -> Float {
  let f = filter + stream * taps
  var sum = bias[stream] + f[0] * input
  guard taps > 1, let history else { return sum }
  for j in 1..<taps { sum += f[j] * history[(taps - 1 - j) * streams + stream] }
  for j in 0..<taps - 2 { history[j * streams + stream] = history[(j + 1) * streams + stream] }
  history[(taps - 2) * streams + stream] = input
  return sum
}

// MARK: SSM block

extension SSMBlock: ConvertibleMixer {
  /// The block with `kernel.convolve` run by `system` (`D` channels, skip included; else throws
  /// ``ConversionError``), then the activation and the output position by position.
  public func recurrentForm(_ system: DiagonalStateSpace) throws -> any RecurrentMixer {
    try checkChannels(system, expected: width)
    return RecurrentSSM(mixer: self, recurrence: RecurrentConvolution(system))
  }
}

/// ``SSMBlock`` in recurrent form: the convolution with skip as a recurrence, then the
/// activation and the output projection, position by position.
struct RecurrentSSM<Kernel: LongConvKernel>: RecurrentMixer, @unchecked Sendable {
  let mixer: SSMBlock<Kernel>
  let recurrence: RecurrentConvolution
  var fusedRecurrence: RecurrentConvolution? { recurrence }

  var width: Int { mixer.width }
  var stateCount: Int { recurrence.stateCount }

  func makeState() -> RecurrentMixerState {
    RecurrentMixerState(convolution: recurrence.makeState(), history: [], position: 0)
  }

  func prefill(_ x: Tensor, state: inout RecurrentMixerState) throws -> Tensor {
    state.convolution = LongConvRecurrence.state(of: recurrence, after: x)
    state.position = x.shape[1]
    return try mixer(x)
  }

  func step(_ x: Tensor, state: inout RecurrentMixerState) -> Tensor {
    let y = mixer.project(mixer.activation(LongConvRecurrence.step(recurrence, x, state: &state.convolution)))
    state.position += 1
    return y
  }
}
