import Foundation
import LongConvLayers
import LongConvTensors

/// A sequence model assembled from a config.
public protocol SequenceModel: Module {
  /// The complete config it was built from, defaults filled in.
  var config: JSONValue { get }
  /// The layers, first to last.
  var blocks: [Block] { get }
}

extension SequenceModel {
  /// The config's `max_length`: the longest sequence its kernels must serve (512 when absent).
  public var maxLength: Int {
    if case .object(let top) = config, case .number(let n)? = top["max_length"] { return Int(n) }
    return 512
  }
}

/// Causal language model: token embedding (no positional embedding: the kernels carry
/// position), blocks, a final norm, and logits from the embedding matrix (tied head):
/// `logits = norm(h) E^T`.
public final class CausalLanguageModel: SequenceModel {
  /// The token embedding `E [vocabulary, D]` (also the output head).
  public let embedding: Embedding
  /// The layers, in order.
  public let blocks: [Block]
  /// The norm applied before the head.
  public let finalNorm: Normalization
  /// The resolved config, defaults filled in.
  public let config: JSONValue

  init(embedding: Embedding, blocks: [Block], finalNorm: Normalization, config: JSONValue) {
    self.embedding = embedding
    self.blocks = blocks
    self.finalNorm = finalNorm
    self.config = config
  }

  /// The number of tokens.
  public var vocabulary: Int { embedding.vocabulary }

  /// Logits `[B, L, vocabulary]` for `tokens` laid out `[B, L]`.
  public func logits(_ tokens: [Int], batch: Int, length: Int) throws -> Tensor {
    head(try hidden(tokens, batch: batch, length: length))
  }

  /// The last block's output `[B, L, D]` for `tokens` laid out `[B, L]`.
  func hidden(_ tokens: [Int], batch: Int, length: Int) throws -> Tensor {
    var h = embedding(tokens, shape: [batch, length])
    for block in blocks { h = try block(h) }
    return h
  }

  /// Logits from hidden states `[..., D]`: the final norm, then the tied head.
  func head(_ h: Tensor) -> Tensor { finalNorm(h).matmul(embedding.weight, transposeB: true) }

  /// Mean next-token cross-entropy: position `i` of each row predicts `targets[i]`.
  public func loss(inputs: [Int], targets: [Int], batch: Int, length: Int) throws -> Tensor {
    try logits(inputs, batch: batch, length: length).crossEntropy(targets: targets)
  }
}

/// Bidirectional encoder with a mean-pooled classification head:
/// `logits = W (mean_i norm(h_i)) + b`.
public final class SequenceClassifier: SequenceModel {
  /// The token embedding `E [vocabulary, D]`.
  public let embedding: Embedding
  /// The layers, in order.
  public let blocks: [Block]
  /// The norm applied before the head.
  public let finalNorm: Normalization
  /// The classification head `D -> classes`.
  public let head: Linear
  /// The resolved config, defaults filled in.
  public let config: JSONValue

  init(embedding: Embedding, blocks: [Block], finalNorm: Normalization, head: Linear, config: JSONValue) {
    self.embedding = embedding
    self.blocks = blocks
    self.finalNorm = finalNorm
    self.head = head
    self.config = config
  }

  /// Class logits `[B, classes]` for `tokens` laid out `[B, L]`.
  public func logits(_ tokens: [Int], batch: Int, length: Int) throws -> Tensor {
    var h = embedding(tokens, shape: [batch, length])
    for block in blocks { h = try block(h) }
    return head(finalNorm(h).mean(alongAxis: 1))
  }
}

/// Builds models from JSON configs.
///
/// ```json
/// {
///   "model": "causal_lm",             // or "classifier" (bidirectional encoder)
///   "vocab_size": 256, "dim": 128, "num_layers": 4,
///   "max_length": 512,                // longest sequence kernels must serve (default 512)
///   "num_classes": 10,                // classifier only
///   "seed": 0,                        // initialisation (default 0)
///   "init": "default",                // or "gpt2" (safari's lm_simple scheme, below)
///   "pad_vocab_size_multiple": 1,     // embedding rows rounded up to a multiple (default 1)
///   "final_norm": "layer_norm",       // default layer_norm
///   "final_norm_epsilon": 1e-5,       // default: the norm's own
///   "layers": {
///     "norm": "simple_rms_norm", "prenorm": true,
///     "norm_epsilon": 1e-8,           // default: the norm's own
///     "recompute_activations": false, // recompute each block in the backward pass (less memory)
///     "mixer": { "type": "gtu", "kernel": { "type": "tnn" } },
///     "channel_mixer": { "type": "glu" }
///   },
///   "training": { "steps": 1500 }     // optional recipe, read by `longconv train` (not here)
/// }
/// ```
///
/// `pad_vocab_size_multiple` rounds the embedding (and tied head) rows up, as safari's
/// `SimpleLMHeadModel` does: the padded rows are tokens that never occur, and their logits
/// take part in the softmax. `init: "gpt2"` re-initialises every ``LongConvLayers/Linear`` weight of the
/// model (kernels' MLPs included) from `N(0, 0.02)` with zero biases, the embedding from
/// `N(0, 0.02)`, and the residual output projections (a Hyena operator's `outProj`, an MLP's
/// `l2`) from `N(0, 0.02 / sqrt(2 num_layers))`: safari's `_init_weights`.
public enum ModelBuilder {
  /// Reads and builds the model in the config file at `url`.
  public static func build(contentsOf url: URL) throws -> any SequenceModel {
    try build(JSONValue.read(contentsOf: url), file: url.path)
  }

  /// Builds the model that `json` describes.
  public static func build(_ json: JSONValue, file: String? = nil) throws -> any SequenceModel {
    let top = try ConfigReader(json, file: file)
    let kind = try top.string("model", default: "causal_lm", allowed: ["causal_lm", "classifier"])
    let vocabulary = try top.int("vocab_size", default: 256, minimum: 1)
    let dim = try top.int("dim", minimum: 1)
    let layerCount = try top.int("num_layers", minimum: 0)
    let maxLength = try top.int("max_length", default: 512, minimum: 1)
    let seed = try top.int("seed", default: 0, minimum: 0)
    let initialization = try top.string("init", default: "default", allowed: ["default", "gpt2"])
    let padMultiple = try top.int("pad_vocab_size_multiple", default: 1, minimum: 1)
    let rows = (vocabulary + padMultiple - 1) / padMultiple * padMultiple
    let finalNormKind = try normalization(top, "final_norm", default: .layerNorm)
    let finalEpsilon = try epsilon(top, "final_norm_epsilon", kind: finalNormKind)
    // Before anything is allocated: a model that cannot fit is a clear error, not an abort.
    let needed = MemoryEstimate.parameterBytes(rows: rows, dim: dim, layers: layerCount, maxLength: maxLength)
    if let problem = try MemoryEstimate.check(
      needed, for: "a model of dim \(dim), \(layerCount) layers and \(rows) tokens",
      available: MemoryEstimate.availableBytes())
    {
      throw top.error("dim", problem)
    }
    let classes = kind == "classifier" ? try top.int("num_classes", minimum: 2) : 0
    let layers = try top.object("layers")
    let norm = try normalization(layers, "norm", default: .simpleRMSNorm)
    let normEpsilon = try epsilon(layers, "norm_epsilon", kind: norm)
    let prenorm = try layers.bool("prenorm", default: true)
    let recompute = try layers.bool("recompute_activations", default: false)
    let mixerConfig = try layers.object("mixer")
    let channelConfig = try layers.object("channel_mixer", optional: true)
    top.ignore("training")  // the recipe: LongConvTraining's TrainingOptions reads it

    var generator = SeededGenerator(seed: UInt64(seed))
    let context = MixerContext(
      width: dim, direction: kind == "causal_lm" ? .causal : .bidirectional, maxLength: maxLength)
    let embedding = Embedding(
      vocabulary: rows, width: dim, std: 1 / Float(dim).squareRoot(), generator: &generator)
    var blocks: [Block] = []
    for _ in 0..<layerCount {
      let mixer = try Registry.makeMixer(mixerConfig, context: context, generator: &generator)
      let channelMixer = try Registry.makeChannelMixer(channelConfig, context: context, generator: &generator)
      blocks.append(
        Block(
          mixer: mixer, channelMixer: channelMixer, norm: norm, normEpsilon: normEpsilon, prenorm: prenorm,
          recomputesActivations: recompute))
    }
    if layerCount == 0 {
      // Read the layer template anyway, so its errors surface and it is kept in the config.
      var scratch = SeededGenerator(seed: 0)
      _ = try Registry.makeMixer(mixerConfig, context: context, generator: &scratch)
      _ = try Registry.makeChannelMixer(channelConfig, context: context, generator: &scratch)
    }
    try top.rejectUnknownKeys()
    let finalNorm = Normalization(finalNormKind, width: dim, epsilon: finalEpsilon)
    let model: any SequenceModel
    if kind == "classifier" {
      let head = Linear(dim, classes, generator: &generator)
      model = SequenceClassifier(
        embedding: embedding, blocks: blocks, finalNorm: finalNorm, head: head, config: top.resolved)
    } else {
      model = CausalLanguageModel(
        embedding: embedding, blocks: blocks, finalNorm: finalNorm, config: top.resolved)
    }
    if initialization == "gpt2" { initializeGPT2(model, layers: layerCount, generator: &generator) }
    return model
  }

  /// safari's `_init_weights` (see ``ModelBuilder``).
  static func initializeGPT2(_ model: any SequenceModel, layers: Int, generator: inout SeededGenerator) {
    let std: Float = 0.02
    let residualStd = std / Float(2 * Swift.max(layers, 1)).squareRoot()
    func fill(_ tensor: Tensor, std: Float) {
      let values = Tensor.normal(tensor.shape, std: std, generator: &generator)
      values.withUnsafeBufferPointer { source in
        tensor.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: source) }
      }
    }
    let modules = model.namedModules()
    // Residual outputs: a Hyena operator's `outProj` (safari's `out_proj`), an MLP's `l2` (`fc2`).
    let residualOutputs = Set(
      modules.compactMap { name, module -> String? in
        if module is MLP { return name + ".l2" }
        return module is any LongConvMixer && name.hasSuffix("mixer") ? name + ".outProj" : nil
      })
    for (name, module) in modules {
      if let linear = module as? Linear {
        let residual = residualOutputs.contains(name)
        fill(linear.weight, std: residual ? residualStd : std)
        if let bias = linear.bias { bias.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
      } else if let embedding = module as? Embedding {
        fill(embedding.weight, std: std)
      }
    }
  }

  static func epsilon(_ config: ConfigReader, _ key: String, kind: NormalizationKind) throws -> Float {
    Float(try config.double(key, default: Double(kind.defaultEpsilon), range: 0...1))
  }

  static func normalization(_ config: ConfigReader, _ key: String, default fallback: NormalizationKind) throws
    -> NormalizationKind
  {
    NormalizationKind(
      rawValue: try config.string(
        key, default: fallback.rawValue, allowed: NormalizationKind.allCases.map(\.rawValue)))!
  }
}
