import Foundation
import LongConv
import LongConvIO
import LongConvLayers
import LongConvTensors

/// Imports a language model trained with HazyResearch/safari: its `lm_simple` model
/// (`SimpleLMHeadModel`) around a `hyena` (`HyenaOperator`, any order) or `s4d` (safari's own
/// S4D layer) mixer, from the model's state dict in a safetensors file and safari's resolved
/// `model` config as JSON.
///
/// The model becomes a ``LongConv/CausalLanguageModel``: pre-norm blocks with LayerNorm
/// (`layer_norm_epsilon`), the mixer, an ``LongConv/MLP`` with tanh-approximated GELU (`fc1`, `fc2`),
/// a final LayerNorm and the head tied to the embedding, whose rows are padded to
/// `pad_vocab_size_multiple` as safari pads them. The mixer maps to ``LongConv/HyenaOperator`` with a
/// ``LongConv/HyenaFilter`` of `(order - 1) d_model` channels, or to ``LongConv/SSMBlock`` with a linear output
/// around an ``LongConv/S4DKernel`` whose poles are shared in `n_ssm` groups.
///
/// | safari (`backbone.layers.{i}.` prefix) | here (`blocks.{i}.`) |
/// |---|---|
/// | `backbone.embeddings.word_embeddings.weight`, `lm_head.weight` (tied, checked equal) | `embedding.weight` |
/// | `backbone.ln_f.*` | `finalNorm.*` |
/// | `norm1.*`, `norm2.*`, `mlp.fc1.*`, `mlp.fc2.*` | `norm1.*`, `norm2.*`, `channelMixer.l1.*`, `channelMixer.l2.*` |
/// | `mixer.in_proj.*`, `mixer.out_proj.*` | `mixer.inProj.*`, `mixer.outProj.*` |
/// | `mixer.short_filter.weight [S, 1, s]`, `.bias` | `mixer.shortFilter [S, s]` (lags reversed), `mixer.shortFilterBias` |
/// | `mixer.ord_proj_w [N, 1, 1]` | `mixer.orderScales [N]` |
/// | `mixer.filter_fn.implicit_filter.{2k}.*` | `mixer.kernel.implicitFilter.{k}.*` |
/// | `mixer.filter_fn.implicit_filter.{2k+1}.freq [1, w]` (one shared `Sin`, checked equal) | `mixer.kernel.freq [w]` |
/// | `mixer.filter_fn.bias` | `mixer.kernel.skip` |
/// | `mixer.filter_fn.pos_emb.z [1, L, e]`, `.t [1, L, 1]` | `mixer.kernel.positionalFeatures`, `mixer.kernel.times` |
/// | `mixer.filter_fn.modulation.deltas [1, 1, C]` | `mixer.kernel.deltas [C]` |
/// | `mixer.kernel.kernel.log_dt`, `.log_w_real`, `.w_imag` | `mixer.kernel.logDt`, `.logAReal`, `.aImag` |
/// | `mixer.kernel.kernel.C [1, H, N/2, 2]` | `mixer.kernel.cReal`, `mixer.kernel.cImag` |
/// | `mixer.D [1, H]`, `mixer.output_linear.*` | `mixer.kernel.D`, `mixer.output.*` |
///
/// Options that change the function and that the toolkit does not implement are refused by
/// name: `num_heads`, `inner_factor` and `num_blocks` other than 1 (safari's own forward pass
/// fails for the first two), attention layers (`attn_layer_idx`), position embeddings
/// (`max_position_embeddings`), S4D `channels` other than 1, `bidirectional`, `postact`,
/// `transposed`. Training-only settings (learning rates, weight decays, dropout rates,
/// initialisation, fused kernels) are accepted. Every check runs before a value is copied.
public enum SafariImport {
  /// The mixers the importer knows, by safari's `_name_`.
  public static let layerNames = ["hyena", "s4d"]

  /// The toolkit config for safari's `model` section (at the top of `json` or under its
  /// `model` key).
  public static func config(fromSafari json: JSONValue, file: String) throws -> JSONValue {
    var top = try ConfigReader(json, file: file)
    if case .object(let values) = json, values["d_model"] == nil, case .object? = values["model"] {
      top = try top.object("model")
    }
    let model = top
    if let name = model.accept("_name_") {
      guard name == .string("lm_simple") else {
        throw model.error(
          "_name_", "only safari's lm_simple (SimpleLMHeadModel) imports, got \(name.kindDescription) \(name)"
        )
      }
    }
    let dim = try model.int("d_model", minimum: 1)
    let layers = try model.int("n_layer", minimum: 0)
    let inner = model.accept("d_inner") == nil ? 4 * dim : try model.int("d_inner", minimum: 1)
    let vocabulary = try model.int("vocab_size", minimum: 1)
    let padMultiple = try model.int("pad_vocab_size_multiple", default: 1, minimum: 1)
    let epsilon = try model.double("layer_norm_epsilon", default: 1e-5, range: 0...1)
    if let attention = model.accept("attn_layer_idx"), attention != .array([]) {
      throw model.error("attn_layer_idx", "attention layers are not part of the toolkit (got \(attention))")
    }
    _ = model.accept("attn_cfg")
    if try model.int("max_position_embeddings", default: 0, minimum: 0) != 0 {
      throw model.error(
        "max_position_embeddings", "position embeddings are not part of the toolkit; only 0 imports")
    }
    for key in ["resid_dropout", "embed_dropout", "initializer_cfg", "residual_in_fp32", "device", "dtype"] {
      _ = model.accept(key)
    }
    let layer = try model.object("layer")
    let layerName = try layer.string("_name_", allowed: layerNames)
    let (mixer, maxLength) = layerName == "hyena" ? try hyenaMixer(layer) : try s4dMixer(layer, width: dim)
    try model.rejectUnknownKeys()
    return .object([
      "model": .string("causal_lm"), "vocab_size": .number(Double(vocabulary)),
      "pad_vocab_size_multiple": .number(Double(padMultiple)), "dim": .number(Double(dim)),
      "num_layers": .number(Double(layers)), "max_length": .number(Double(maxLength)),
      "final_norm": .string("layer_norm"), "final_norm_epsilon": .number(epsilon),
      "layers": .object([
        "norm": .string("layer_norm"), "norm_epsilon": .number(epsilon), "prenorm": .bool(true),
        "mixer": mixer,
        "channel_mixer": .object([
          "type": .string("mlp"), "hidden_dim": .number(Double(inner)), "activation": .string("gelu_tanh"),
        ]),
      ]),
    ])
  }

  /// Keys of safari's layers that only matter for training or for which kernel runs the same
  /// math (fused variants), or that safari itself swallows.
  static let acceptedLayerKeys = [
    "lr", "wd", "lr_pos_emb", "modulation_lr", "dropout", "filter_dropout", "fused_bias_fc", "fused_fft_conv",
    "jit_filter", "return_state", "layer_idx", "local_order", "device", "dtype", "scaling", "train_w",
    "train_dt",
  ]

  /// `HyenaOperator(d_model, l_max, ...)` and its `HyenaFilter` keyword arguments.
  static func hyenaMixer(_ layer: ConfigReader) throws -> (JSONValue, Int) {
    let maxLength = try layer.int("l_max", minimum: 1)
    let order = try layer.int("order", default: 2, minimum: 2)
    for key in ["num_heads", "inner_factor", "num_blocks"]
    where try layer.int(key, default: 1, minimum: 1) != 1 {
      throw layer.error(
        key, "only 1 imports (safari's forward pass supports no other value with one head per model)")
    }
    let filterClass = try layer.string("filter_cls", default: "hyena-filter")
    guard filterClass == "hyena-filter" else {
      throw layer.error("filter_cls", "only safari's hyena-filter imports, got \"\(filterClass)\"")
    }
    let activationName = try layer.string("activation", default: "id")
    guard let activation = Activation(configName: activationName) else {
      throw layer.error("activation", "\"\(activationName)\" is not an activation the toolkit has")
    }
    let embedding = try layer.int("emb_dim", default: 3, minimum: 3)
    guard embedding % 2 == 1 else { throw layer.error("emb_dim", "must be odd, got \(embedding)") }
    let kernel: [String: JSONValue] = [
      "type": .string("hyena"), "emb_dim": .number(Double(embedding)),
      "filter_width": .number(Double(try layer.int("filter_order", default: 64, minimum: 1))),
      "num_inner_layers": .number(Double(try layer.int("num_inner_mlps", default: 2, minimum: 0))),
      "sin_frequency": .number(try layer.double("w", default: 1)),
      "modulate": .bool(try layer.bool("modulate", default: true)),
      "fast_decay_pct": .number(try layer.double("fast_decay_pct", default: 0.3)),
      "slow_decay_pct": .number(try layer.double("slow_decay_pct", default: 1.5)),
      "decay_target": .number(try layer.double("target", default: 1e-2)),
      "shift": .number(try layer.double("shift", default: 0)),
      "normalized": .bool(try layer.bool("normalized", default: false)),
      "train_positional_features": .bool(try layer.double("lr_pos_emb", default: 1e-5) > 0),
      "skip": .bool(try layer.bool("bias", default: true)),
      "max_length": .number(Double(maxLength)),
    ]
    let mixer: [String: JSONValue] = [
      "type": .string("hyena"), "order": .number(Double(order)),
      "short_filter_width": .number(Double(try layer.int("short_filter_order", default: 3, minimum: 1))),
      "outer_mixing": .bool(try layer.bool("outer_mixing", default: false)),
      "post_order_ffn": .bool(try layer.bool("post_order_ffn", default: false)),
      "activation": .string(activation.rawValue), "kernel": .object(kernel),
    ]
    for key in acceptedLayerKeys { _ = layer.accept(key) }
    return (.object(mixer), maxLength)
  }

  /// safari's `S4D(d_model, d_state, ...)` (src/models/sequence/ssm/s4d.py) and its kernel's
  /// keyword arguments.
  static func s4dMixer(_ layer: ConfigReader, width: Int) throws -> (JSONValue, Int) {
    let state = try layer.int("d_state", default: 64, minimum: 2)
    guard state % 2 == 0 else {
      throw layer.error("d_state", "must be even (N/2 complex modes), got \(state)")
    }
    guard try layer.int("channels", default: 1, minimum: 1) == 1 else {
      throw layer.error(
        "channels", "only 1 imports (several output channels per feature are not implemented)")
    }
    guard try !layer.bool("bidirectional", default: false) else {
      throw layer.error("bidirectional", "a causal language model needs false")
    }
    guard try !layer.bool("transposed", default: true) else {
      throw layer.error(
        "transposed",
        "lm_simple feeds (batch, length, features): only false imports (safari's S4D defaults to true)")
    }
    if let postact = layer.accept("postact") {
      throw layer.error(
        "postact", "an activation after the output projection is not implemented (got \(postact))")
    }
    let activationName = try layer.string("activation", default: "gelu")
    guard let activation = Activation(configName: activationName) else {
      throw layer.error("activation", "\"\(activationName)\" is not an activation the toolkit has")
    }
    let maxLength = try layer.int("l_max", default: 2048, minimum: 1)
    let groups = try layer.int("n_ssm", default: 1, minimum: 1)
    guard width % groups == 0 else {
      throw layer.error("n_ssm", "must divide d_model (\(width)), got \(groups)")
    }
    let kernel: [String: JSONValue] = [
      "type": .string("s4d"), "state_size": .number(Double(state)), "pole_groups": .number(Double(groups)),
      "dt_min": .number(try layer.double("dt_min", default: 1e-3)),
      "dt_max": .number(try layer.double("dt_max", default: 1e-1)),
    ]
    for key in acceptedLayerKeys { _ = layer.accept(key) }
    return (
      .object([
        "type": .string("ssm"), "output": .string("linear"), "activation": .string(activation.rawValue),
        "kernel": .object(kernel),
      ]), maxLength
    )
  }

  typealias Source = StateDictReader.Source

  /// The source of our tensor `name` of shape `shape`, or `nil` when there is no rule.
  static func source(of name: String, shape: [Int]) -> Source? {
    switch name {
    case "embedding.weight": return Source(name: "backbone.embeddings.word_embeddings.weight", shape: shape)
    case "finalNorm.weight", "finalNorm.bias":
      return Source(name: "backbone.ln_f." + name.dropFirst("finalNorm.".count), shape: shape)
    default: break
    }
    let parts = name.split(separator: ".", maxSplits: 2).map(String.init)
    guard parts.count == 3, parts[0] == "blocks", let layer = Int(parts[1]) else { return nil }
    let prefix = "backbone.layers.\(layer)."
    let rest = parts[2]
    let renames: [(String, String)] = [
      ("norm1.", "norm1."), ("norm2.", "norm2."), ("channelMixer.l1.", "mlp.fc1."),
      ("channelMixer.l2.", "mlp.fc2."),
      ("mixer.inProj.", "mixer.in_proj."), ("mixer.outProj.", "mixer.out_proj."),
      ("mixer.output.", "mixer.output_linear."),
    ]
    for (ours, theirs) in renames where rest.hasPrefix(ours) {
      return Source(name: prefix + theirs + rest.dropFirst(ours.count), shape: shape)
    }
    let filter = prefix + "mixer.filter_fn."
    let s4d = prefix + "mixer.kernel.kernel."
    switch rest {
    case "mixer.shortFilter":
      let (streams, taps) = (shape[0], shape[1])
      return Source(name: prefix + "mixer.short_filter.weight", shape: [streams, 1, taps]) { t in
        let v = t.scalars
        return (0..<streams * taps).map { i in v[i / taps * taps + taps - 1 - i % taps] }
      }
    case "mixer.shortFilterBias": return Source(name: prefix + "mixer.short_filter.bias", shape: shape)
    case "mixer.orderScales": return Source(name: prefix + "mixer.ord_proj_w", shape: shape + [1, 1])
    case "mixer.kernel.freq": return Source(name: filter + "implicit_filter.1.freq", shape: [1] + shape)
    case "mixer.kernel.skip": return Source(name: filter + "bias", shape: shape)
    case "mixer.kernel.positionalFeatures": return Source(name: filter + "pos_emb.z", shape: [1] + shape)
    case "mixer.kernel.times": return Source(name: filter + "pos_emb.t", shape: [1] + shape)
    case "mixer.kernel.deltas": return Source(name: filter + "modulation.deltas", shape: [1, 1] + shape)
    case "mixer.kernel.logDt": return Source(name: s4d + "log_dt", shape: shape)
    case "mixer.kernel.logAReal": return Source(name: s4d + "log_w_real", shape: shape)
    case "mixer.kernel.aImag": return Source(name: s4d + "w_imag", shape: shape)
    case "mixer.kernel.cReal", "mixer.kernel.cImag":
      let part = rest.hasSuffix("cReal") ? 0 : 1
      return Source(name: s4d + "C", shape: [1] + shape + [2]) { t in
        let v = t.scalars
        return (0..<v.count / 2).map { v[2 * $0 + part] }
      }
    case "mixer.kernel.D": return Source(name: prefix + "mixer.D", shape: [1] + shape)
    default: break
    }
    // mixer.kernel.implicitFilter.{k}.{weight,bias} <- mixer.filter_fn.implicit_filter.{2k}.{...}
    let pieces = rest.split(separator: ".").map(String.init)
    if pieces.count == 5, pieces[0...2] == ["mixer", "kernel", "implicitFilter"], let k = Int(pieces[3]) {
      return Source(name: filter + "implicit_filter.\(2 * k).\(pieces[4])", shape: shape)
    }
    return nil
  }

  /// Builds the model that `configURL` describes and fills it from `stateDictURL`.
  ///
  /// - Throws: `ConfigError` naming the key for the config; `CheckpointError` naming the file
  ///   and tensor for a missing, unused, misshapen or non-finite tensor, or tied copies that
  ///   differ; `SafeTensorsError` for a malformed file. Nothing is modified before every check
  ///   passes.
  public static func importModel(stateDict stateDictURL: URL, config configURL: URL) throws
    -> CausalLanguageModel
  {
    let ourConfig = try config(fromSafari: JSONValue.read(contentsOf: configURL), file: configURL.path)
    guard let model = try ModelBuilder.build(ourConfig, file: configURL.path) as? CausalLanguageModel else {
      preconditionFailure("SafariImport: the built model is not a language model")
    }
    var reader = try StateDictReader(contentsOf: stateDictURL)
    for (name, tensor) in model.namedState() {
      guard let source = source(of: name, shape: tensor.shape) else {
        throw CheckpointError(file: reader.file, tensor: name, problem: "no safari name for this tensor")
      }
      try reader.fill(tensor, named: name, from: source)
    }
    // Copies safari keeps of one tensor: the tied head, the shared Sin's frequency.
    var twins: [(copy: String, of: String)] = [
      ("lm_head.weight", "backbone.embeddings.word_embeddings.weight")
    ]
    for (index, block) in model.blocks.enumerated() {
      guard let filter = block.mixer.longConvKernel as? HyenaFilter else { continue }
      let prefix = "backbone.layers.\(index).mixer.filter_fn."
      for k in 1..<filter.implicitFilter.count - 1 {
        twins.append((prefix + "implicit_filter.\(2 * k + 1).freq", prefix + "implicit_filter.1.freq"))
      }
      // Without `bias`, safari keeps the skip's tensor but multiplies it by 0.
      if filter.skip == nil { reader.ignore(prefix + "bias") }
    }
    for (copy, original) in twins {
      guard let reference = reader.weights.tensor(original) else { continue }
      let tensor = try reader.tensor(copy, shape: reference.shape, for: original)
      guard tensor.scalars == reference.scalars else {
        throw CheckpointError(
          file: reader.file, tensor: copy,
          problem: "differs from \(original), of which safari's model holds a tied copy")
      }
    }
    try reader.finish { count, names in
      "not part of the model the config describes (\(count) unused: \(names))"
    }
    return model
  }
}
