// longconv: the toolkit's command-line tool.
//
// Exit status: 0 on success, 1 on a user error (a one-line message on standard error),
// 2 on a usage error.
import Foundation
import LongConvCommandLine
import LongConvKit

/// A wrong or missing command-line argument: exit status 2, with the usage.

/// A problem with what the user asked for (a file, a value): exit status 1.
struct UserError: Error { let message: String }

let usage = """
  usage: longconv <command> [options]

  commands:
    demo           check the long convolution, then train a small language model from a config
                   [--steps N] [--threads N] [--seed S] [--config FILE] [--text FILE]
    train          train a model from a config on a text file or a synthetic task
                   --config FILE (--text FILE | --task recall|copy|listops) --out DIR [--steps N] [--resume]
    import-torch   turn a PyTorch TNN or safari Hyena/S4D state dict (safetensors) into a checkpoint
                   --state-dict FILE --config CONFIG.json --out DIR
    eval           next-byte cross-entropy of a checkpoint on a text file
                   --checkpoint DIR --text FILE [--length N] [--json]
    inspect        draw each layer's Toeplitz matrix and impulse responses as SVG files
                   --checkpoint DIR --out DIR [--length N] [--channels K]
    convert        turn a checkpoint's (or bare kernels') long convolutions into recurrences
                   --checkpoint DIR --mode native|exact|compact [--tolerance T] [--length N]
                   [--max-states S] --out DIR
                   --kernels FILE --mode exact|compact [--tolerance T] [--max-states S]
                   --out FILE [--report FILE.json]
    generate       continue a prompt byte by byte, by FFT recomputation or a converted model
                   --checkpoint DIR [--recurrent DIR] --prompt TEXT --tokens N
                   [--temperature T] [--top-k K] [--seed S]

  Run `longconv <command> --help` for a command's options.
  """

func fail(_ message: String, status: Int32) -> Never {
  FileHandle.standardError.write(Data("longconv: \(message)\n".utf8))
  exit(status)
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
  switch arguments.first {
  case "demo":
    try Demo(arguments: Array(arguments.dropFirst())).run()
  case "import-torch":
    try ImportTorchCommand.run(Array(arguments.dropFirst()))
  case "eval":
    try EvalCommand.run(Array(arguments.dropFirst()))
  case "inspect":
    try InspectCommand.run(Array(arguments.dropFirst()))
  case "train":
    try TrainCommand.run(Array(arguments.dropFirst()))
  case "convert":
    try ConvertCommand.run(Array(arguments.dropFirst()))
  case "generate":
    try GenerateCommand.run(Array(arguments.dropFirst()))
  case "-h", "--help", "help":
    print(usage)
  case nil:
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(2)
  case let other?:
    throw UsageError(message: "unknown command '\(other)'")
  }
} catch let error as UsageError {
  fail("\(error.message)\n\(usage)", status: 2)
} catch let error as UserError {
  fail(error.message, status: 1)
} catch {
  fail("\(error)", status: 1)
}
