import Foundation
import LongConvCommandLine
import LongConvKit

/// `longconv import-torch`: a model saved from PyTorch becomes a checkpoint.
enum ImportTorchCommand {
  static let help = """
    usage: longconv import-torch --state-dict FILE.safetensors --config CONFIG.json --out DIR
                                 [--format tnn|safari]

    Turns a language model saved from PyTorch into a toolkit checkpoint directory. Every name,
    shape and option is checked before anything is written.

    --format tnn (default): a TNN language model with the authors' parameter names and the
      config keys Benchmarks/torch_baseline.py export writes.
    --format safari: HazyResearch/safari's lm_simple model with a hyena (any order) or s4d
      layer. CONFIG is safari's resolved `model` section as JSON (at the top or under a
      "model" key); FILE is the model's state dict (see the README for turning a .ckpt into
      safetensors).
    """

  static func run(_ arguments: [String]) throws {
    let command = "import-torch"
    let args = try Arguments(
      arguments, command: command, options: ["--state-dict", "--config", "--out", "--format"])
    if args.wantsHelp {
      print(help)
      return
    }
    let stateDict = URL(fileURLWithPath: try args.required("--state-dict", command: command))
    let config = URL(fileURLWithPath: try args.required("--config", command: command))
    let out = URL(fileURLWithPath: try args.required("--out", command: command))
    let model: CausalLanguageModel
    switch args.string("--format") ?? "tnn" {
    case "tnn": model = try PyTorchTNNImport.importModel(stateDict: stateDict, config: config)
    case "safari": model = try SafariImport.importModel(stateDict: stateDict, config: config)
    case let other:
      throw UsageError(message: "import-torch: unknown --format '\(other)' (tnn or safari)")
    }
    try Checkpoint.save(model, to: out)
    print("imported \(model.blocks.count) layers, \(model.parameterCount) parameters into \(out.path)")
  }
}
