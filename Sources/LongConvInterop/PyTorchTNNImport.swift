import Foundation
import LongConv
import LongConvIO
import LongConvLayers
import LongConvTensors

/// Imports a TNN language model saved from PyTorch: the authors' `TnnLayer` parameter names
/// (docs/MODELS.md section 2) under `layers.{i}.`, plus `embedding.weight` and
/// `final_norm.{weight,bias}`, in a safetensors file, with the config keys that
/// `Benchmarks/torch_baseline.py export` writes.
///
/// | reference | here |
/// |---|---|
/// | `embedding.weight` | `embedding.weight` |
/// | `final_norm.{weight,bias}` (LayerNorm, eps 1e-5) | `finalNorm.{weight,bias}` |
/// | `layers.{i}.token_mixer.{u_proj,v_proj,o}.*` | `blocks.{i}.mixer.{uProj,vProj,out}.*` |
/// | `layers.{i}.token_mixer.toep.rpe.pos_proj.*` | `blocks.{i}.mixer.kernel.posProj.*` |
/// | `layers.{i}.token_mixer.toep.rpe.layers.{k}.2.*` | `blocks.{i}.mixer.kernel.layers.{k}.linear.*` |
/// | `layers.{i}.token_mixer.toep.rpe.out.2.*` | `blocks.{i}.mixer.kernel.out.linear.*` |
/// | `layers.{i}.token_mixer.toep.gamma` `[h, 1, e]` | the config's `gamma` (must be that constant) |
/// | `layers.{i}.feature_mixer.{l1,l2,l3}.*` | `blocks.{i}.channelMixer.{l1,l2,l3}.*` |
///
/// Both are PyTorch-layout (`Linear.weight` is `[out, in]` on both sides), so weights copy
/// unchanged. Everything is checked (names, shapes, gamma) before any value is copied.
public enum PyTorchTNNImport {
  /// The toolkit config for a reference config (keys of `Benchmarks/torch_baseline.py export`).
  public static func config(fromReference json: JSONValue, file: String) throws -> JSONValue {
    let reference = try ConfigReader(json, file: file)
    let vocabulary = try reference.int("vocab_size", minimum: 1)
    let dim = try reference.int("dim", minimum: 1)
    let layers = try reference.int("layers", minimum: 0)
    let expand = try reference.int("expand_ratio", default: 3, minimum: 1)
    let gluDim = try reference.int("glu_dim", default: dim, minimum: 1)
    let rpeWidth = try reference.int("rpe_width", default: 64, minimum: 1)
    let rpeLayers = try reference.int("rpe_layers", default: 3, minimum: 0)
    let gamma = try reference.double("gamma", default: 0.99, range: 0...1)
    let norm = try reference.string(
      "norm", default: "simple_rms_norm", allowed: ["simple_rms_norm", "rms_norm", "layer_norm"])
    let prenorm = try reference.bool("prenorm", default: true)
    let finalNorm = try reference.string(
      "final_norm", default: "layer_norm", allowed: ["simple_rms_norm", "rms_norm", "layer_norm"])
    guard try reference.bool("causal", default: true) else {
      throw reference.error("causal", "only causal language models import (got false)")
    }
    guard try reference.bool("tied_embedding", default: true) else {
      throw reference.error(
        "tied_embedding", "only models whose head is tied to the embedding import (got false)")
    }
    let maxLength = try reference.int("max_length", default: 512, minimum: 1)
    try reference.rejectUnknownKeys()
    return .object([
      "model": .string("causal_lm"), "vocab_size": .number(Double(vocabulary)), "dim": .number(Double(dim)),
      "num_layers": .number(Double(layers)), "max_length": .number(Double(maxLength)),
      "final_norm": .string(finalNorm),
      "layers": .object([
        "norm": .string(norm), "prenorm": .bool(prenorm),
        "mixer": .object([
          "type": .string("gtu"), "expand_ratio": .number(Double(expand)),
          "kernel": .object([
            "type": .string("tnn"), "rpe_width": .number(Double(rpeWidth)),
            "rpe_layers": .number(Double(rpeLayers)),
            "gamma": .number(gamma), "decay": .string("fixed"),
          ]),
        ]),
        "channel_mixer": .object(["type": .string("glu"), "hidden_dim": .number(Double(gluDim))]),
      ]),
    ])
  }

  /// The reference name of one of our parameter names, or `nil` if it has none.
  static func referenceName(of name: String) -> String? {
    let rules: [(String, String)] = [
      ("embedding.", "embedding."), ("finalNorm.", "final_norm."),
    ]
    for (ours, theirs) in rules where name.hasPrefix(ours) { return theirs + name.dropFirst(ours.count) }
    let parts = name.split(separator: ".").map(String.init)
    guard parts.count >= 4, parts[0] == "blocks", let layer = Int(parts[1]) else { return nil }
    let rest = parts[2...].joined(separator: ".")
    let prefix = "layers.\(layer)."
    let blockRules: [(String, String)] = [
      ("mixer.uProj.", "token_mixer.u_proj."), ("mixer.vProj.", "token_mixer.v_proj."),
      ("mixer.out.", "token_mixer.o."),
      ("mixer.kernel.posProj.", "token_mixer.toep.rpe.pos_proj."),
      ("mixer.kernel.out.linear.", "token_mixer.toep.rpe.out.2."),
      ("channelMixer.l1.", "feature_mixer.l1."), ("channelMixer.l2.", "feature_mixer.l2."),
      ("channelMixer.l3.", "feature_mixer.l3."),
    ]
    for (ours, theirs) in blockRules where rest.hasPrefix(ours) {
      return prefix + theirs + rest.dropFirst(ours.count)
    }
    // mixer.kernel.layers.{k}.linear.{weight,bias} -> token_mixer.toep.rpe.layers.{k}.2.{...}
    let kernelLayer = rest.split(separator: ".").map(String.init)
    if kernelLayer.count == 6, kernelLayer[0...2] == ["mixer", "kernel", "layers"], kernelLayer[4] == "linear"
    {
      return prefix + "token_mixer.toep.rpe.layers.\(kernelLayer[3]).2.\(kernelLayer[5])"
    }
    return nil
  }

  /// Builds the model that `configURL` describes and fills it from `stateDictURL`.
  ///
  /// - Throws: `ConfigError` for the config; `CheckpointError` naming the file and tensor for
  ///   a missing, extra or misshapen tensor, or a `gamma` that is not the config's constant;
  ///   `SafeTensorsError` for a malformed file. Nothing is modified before every check passes.
  public static func importModel(stateDict stateDictURL: URL, config configURL: URL) throws
    -> CausalLanguageModel
  {
    let ourConfig = try config(fromReference: JSONValue.read(contentsOf: configURL), file: configURL.path)
    guard let model = try ModelBuilder.build(ourConfig, file: configURL.path) as? CausalLanguageModel else {
      preconditionFailure("PyTorchTNNImport: the built model is not a language model")
    }
    var reader = try StateDictReader(contentsOf: stateDictURL)
    for (name, parameter) in model.namedParameters() {
      guard let source = referenceName(of: name) else {
        throw CheckpointError(
          file: reader.file, tensor: name, problem: "no reference name for this parameter")
      }
      try reader.fill(parameter, named: name, from: .init(name: source, shape: parameter.shape))
    }
    let mixerConfig = try ConfigReader(ourConfig).object("layers").object("mixer")
    let kernelChannels = try mixerConfig.int("expand_ratio") * model.embedding.width
    let gamma = Float(try mixerConfig.object("kernel").double("gamma"))
    for layer in 0..<model.blocks.count {
      let name = "layers.\(layer).token_mixer.toep.gamma"
      guard let stored = reader.weights.tensor(name) else {
        throw CheckpointError(
          file: reader.file, tensor: name, problem: "missing (the decay of layer \(layer))")
      }
      guard stored.count == kernelChannels else {
        throw CheckpointError(
          file: reader.file, tensor: name,
          problem: "has \(stored.count) values, expected \(kernelChannels) (expand_ratio x dim)")
      }
      let tensor = try reader.tensor(name, shape: stored.shape, for: "the decay of layer \(layer)")
      guard tensor.scalars.allSatisfy({ Swift.abs($0 - gamma) <= 1e-6 }) else {
        throw CheckpointError(
          file: reader.file, tensor: name,
          problem: "holds values other than the config's gamma \(gamma); per-channel decays do not import")
      }
    }
    try reader.finish { count, names in "not part of a TNN language model (\(count) unused: \(names))" }
    return model
  }
}
