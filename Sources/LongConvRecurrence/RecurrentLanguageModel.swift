import CDecodeKernels
import Foundation
import LongConv
import LongConvTensors
import Synchronization

/// A ``LongConv/CausalLanguageModel`` whose long convolutions run as diagonal recurrences: the prompt
/// goes through the FFT path once (``prefill(_:state:)``), then every generated token costs
/// the same whatever the position (``step(_:state:)``).
///
/// Everything but the long convolutions (embedding, norms, projections, channel mixers, head)
/// is the model's own modules, shared with it. Exact (ETSC) layers are exact for the first
/// ``conversionLength`` positions; past it their kernels repeat periodically (see
/// ``ExactConverter``) and ``passedConversionLength(_:)`` tells the caller to warn.
public final class RecurrentLanguageModel: @unchecked Sendable {
  /// The source model; its embedding, norms, projections, channel mixers and head are used as they are.
  public let model: CausalLanguageModel
  /// One per block.
  public let mixers: [any RecurrentMixer]
  /// The per-layer conversion reports (empty when loaded from a file without them).
  public let reports: [KernelConversionReport]
  /// The converted kernels by name (``kernelName(layer:)``), as written to interchange files.
  public let kernels: [String: DiagonalStateSpace]
  /// The length the kernels were converted at.
  public let conversionLength: Int
  /// Whether some layer is exact only within ``conversionLength`` (an ETSC layer, or a compact
  /// layer with channels that fell back to ETSC).
  public let isLimitedToConversionLength: Bool
  /// The fused step, made at the first step (it copies the weights and starts threads, which
  /// a model that is only converted and saved does not need).
  private let fused = Mutex<FusedDecoder?>(nil)

  /// Whether ``step(_:state:)`` runs as one fused pass over packed weights on a team of
  /// threads (blocks of the toolkit's mixers, GTU, Hyena or SSM, with a GLU or MLP) rather
  /// than through the model's modules. Both give the same logits up to Float32 rounding.
  public let usesFusedStep: Bool

  /// The instruction set the fused step's vector kernels use on this machine: `"avx512"`,
  /// `"avx2"` (with FMA) or `"portable"`.
  public static var kernelInstructionSet: String { String(cString: lck_kernel_isa()) }

  /// The instruction set this model's fused step uses (`"best"`, the machine's widest, unless
  /// chosen with ``usingInstructionSet(_:)``).
  public let instructionSet: String

  /// The format the fused step keeps its weights in (``DecodingWeights/float32`` unless chosen
  /// with ``usingWeights(_:)``).
  public let weights: DecodingWeights

  /// The same model whose fused step uses the kernels of `isa` (`"avx512"`, `"avx2"`,
  /// `"portable"` or `"best"`), or `nil` when this machine lacks them: for comparisons. The
  /// choice belongs to the returned model alone; nothing process-wide changes.
  public func usingInstructionSet(_ isa: String) -> RecurrentLanguageModel? {
    var kernels = lck_kernels()
    guard lck_kernels_named(isa, &kernels) == 1 else { return nil }
    return RecurrentLanguageModel(sharing: self, instructionSet: isa, weights: weights)
  }

  /// The same model whose fused step keeps its weights in `format` (its own decoder; this model
  /// is unchanged). Steps through the modules, where the fused step does not cover a model, use
  /// the Float32 weights whatever the format.
  public func usingWeights(_ format: DecodingWeights) -> RecurrentLanguageModel {
    RecurrentLanguageModel(sharing: self, instructionSet: instructionSet, weights: format)
  }

  /// `other`'s model, recurrences and reports, with a decoder of its own on `instructionSet`
  /// with `weights`.
  private init(sharing other: RecurrentLanguageModel, instructionSet: String, weights: DecodingWeights) {
    model = other.model
    mixers = other.mixers
    reports = other.reports
    kernels = other.kernels
    conversionLength = other.conversionLength
    isLimitedToConversionLength = other.isLimitedToConversionLength
    usesFusedStep = other.usesFusedStep
    self.instructionSet = instructionSet
    self.weights = weights
  }

  /// Converts every block's mixer of `model` with `converter` at `length`.
  public init(model: CausalLanguageModel, converter: some KernelConverter, length: Int) throws {
    guard length >= 1 else {
      throw ConversionError(kernel: "model", problem: "conversion length must be at least 1, got \(length)")
    }
    var mixers: [any RecurrentMixer] = []
    var reports: [KernelConversionReport] = []
    var kernels: [String: DiagonalStateSpace] = [:]
    for (i, mixer) in try Self.convertibleMixers(model).enumerated() {
      let name = Self.kernelName(layer: i)
      let conversion = try converter.convert(try mixer.kernelSamples(length: length, name: name))
      mixers.append(try mixer.recurrentForm(conversion.stateSpace))
      reports.append(conversion.report)
      kernels[name] = conversion.stateSpace
    }
    self.model = model
    self.mixers = mixers
    self.reports = reports
    self.kernels = kernels
    instructionSet = "best"
    weights = .float32
    conversionLength = length
    isLimitedToConversionLength = reports.contains { $0.mode == .exact || ($0.exactChannels ?? 0) > 0 }
    usesFusedStep = FusedDecoder.covers(model: model, mixers: mixers)
  }

  /// The model with its kernels replaced by given state spaces (keyed by ``kernelName(layer:)``),
  /// as read from an interchange file.
  public init(
    model: CausalLanguageModel, kernels: [String: DiagonalStateSpace], length: Int, limitedToLength: Bool,
    reports: [KernelConversionReport] = []
  ) throws {
    var mixers: [any RecurrentMixer] = []
    for (i, mixer) in try Self.convertibleMixers(model).enumerated() {
      let name = Self.kernelName(layer: i)
      guard let system = kernels[name] else {
        throw ConversionError(kernel: name, problem: "no converted kernel of that name")
      }
      mixers.append(try mixer.recurrentForm(system))
    }
    self.model = model
    self.mixers = mixers
    self.reports = reports
    self.kernels = kernels
    instructionSet = "best"
    weights = .float32
    conversionLength = length
    isLimitedToConversionLength = limitedToLength
    usesFusedStep = FusedDecoder.covers(model: model, mixers: mixers)
  }

  /// The name of block `layer`'s kernel: its parameter path, `blocks.<layer>.mixer.kernel`.
  public static func kernelName(layer: Int) -> String { "blocks.\(layer).mixer.kernel" }

  static func convertibleMixers(_ model: CausalLanguageModel) throws -> [any ConvertibleMixer] {
    try model.blocks.enumerated().map { i, block in
      guard let mixer = block.mixer as? any ConvertibleMixer else {
        throw ConversionError(
          kernel: "blocks.\(i).mixer", problem: "\(type(of: block.mixer)) has no recurrent form")
      }
      return mixer
    }
  }

  /// The decoding state of one sequence.
  public struct State: Sendable {
    /// One state per block, in block order.
    public var layers: [RecurrentMixerState]
    /// Tokens consumed.
    public var position: Int
  }

  /// A fresh state.
  public func makeState() -> State { State(layers: mixers.map { $0.makeState() }, position: 0) }

  /// Complex states per sequence over all layers.
  public var stateCount: Int { mixers.reduce(0) { $0 + $1.stateCount } }

  /// What one sequence's decoding state holds: the complex states of modal layers, and the
  /// Float32 slots of the layers on ETSC's grid, which decode in the folded basis instead of
  /// their ``stateCount`` modes (``RecurrentConvolution``).
  public var decodingState: (complex: Int, folded: Int) {
    makeState().layers.reduce((0, 0)) { ($0.0 + $1.convolution.re.count, $0.1 + $1.convolution.slots.count) }
  }

  /// ``decodingState`` in words: "1450 complex", "12352 folded" or both.
  public var decodingStateSummary: String {
    let (complex, folded) = decodingState
    return [complex > 0 || folded == 0 ? "\(complex) complex" : nil, folded > 0 ? "\(folded) folded" : nil]
      .compactMap { $0 }.joined(separator: " + ")
  }

  /// Runs the prompt through the FFT path (one pass per layer), leaves `state` after it and
  /// returns the logits `[vocabulary]` that predict the next token. `state` must be fresh
  /// and `tokens` not empty.
  public func prefill(_ tokens: [Int], state: inout State) throws -> [Float] {
    precondition(!tokens.isEmpty && state.position == 0, "prefill: needs tokens and a fresh state")
    return try Tensor.withoutRecording {
      var h = model.embedding(tokens, shape: [1, tokens.count])
      for (i, block) in model.blocks.enumerated() {
        if block.prenorm {
          h = h + (try mixers[i].prefill(block.norm1(h), state: &state.layers[i]))
          h = h + block.channelMixer(block.norm2(h))
        } else {
          h = block.norm1(h + (try mixers[i].prefill(h, state: &state.layers[i])))
          h = block.norm2(h + block.channelMixer(h))
        }
      }
      state.position = tokens.count
      let last = h.slice(axis: 1, tokens.count - 1..<tokens.count).reshaped([1, model.embedding.width])
      return logits(last)
    }
  }

  /// Consumes `token` and returns the logits `[vocabulary]` for the next one.
  public func step(_ token: Int, state: inout State) -> [Float] {
    guard usesFusedStep, let decoder = fusedDecoder() else { return stepThroughModules(token, state: &state) }
    let logits = decoder.step(token, states: &state.layers)
    state.position += 1
    return logits
  }

  /// The bytes one fused step reads and writes (the packed weights and recurrence constants,
  /// and the states read and written back), or nil when the model steps through its modules:
  /// the floor a memory-bound step approaches.
  public var fusedStepBytes: (read: Int, written: Int)? {
    guard usesFusedStep, let decoder = fusedDecoder() else { return nil }
    return decoder.bytesPerStep()
  }

  private func fusedDecoder() -> FusedDecoder? {
    fused.withLock { decoder in
      if decoder == nil {
        decoder = FusedDecoder.make(model: model, mixers: mixers, kernels: instructionSet, weights: weights)
      }
      return decoder
    }
  }

  /// ``step(_:state:)`` through the model's modules and the mixers' own steps.
  func stepThroughModules(_ token: Int, state: inout State) -> [Float] {
    Tensor.withoutRecording {
      var h = model.embedding([token], shape: [1])
      for (i, block) in model.blocks.enumerated() {
        if block.prenorm {
          h = h + mixers[i].step(block.norm1(h), state: &state.layers[i])
          h = h + block.channelMixer(block.norm2(h))
        } else {
          h = block.norm1(h + mixers[i].step(h, state: &state.layers[i]))
          h = block.norm2(h + block.channelMixer(h))
        }
      }
      state.position += 1
      return logits(h)
    }
  }

  /// Whether `state` has gone past the positions an exact layer reproduces.
  public func passedConversionLength(_ state: State) -> Bool {
    isLimitedToConversionLength && state.position > conversionLength
  }

  private func logits(_ h: Tensor) -> [Float] {
    model.finalNorm(h).matmul(model.embedding.weight, transposeB: true).scalars
  }
}
