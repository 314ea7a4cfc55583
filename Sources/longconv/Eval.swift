import Foundation
import LongConvCommandLine
import LongConvKit

/// `longconv eval`: next-byte cross-entropy of a checkpoint on a text file.
enum EvalCommand {
  static let help = """
    usage: longconv eval --checkpoint DIR --text FILE [--length N] [--json]

    Reads FILE as bytes (vocabulary 256), cuts it into consecutive chunks of N predictions
    (chunk k reads bytes kN ... kN+N-1 and predicts kN+1 ... kN+N) and reports the mean
    next-byte cross-entropy in nats and in bits per byte. N defaults to the model's
    max_length (512 unless its config says otherwise). --json prints one JSON object.
    """

  static func run(_ arguments: [String]) throws {
    let command = "eval"
    let args = try Arguments(
      arguments, command: command, options: ["--checkpoint", "--text", "--length"], switches: ["--json"])
    if args.wantsHelp {
      print(help)
      return
    }
    let checkpoint = URL(fileURLWithPath: try args.required("--checkpoint", command: command))
    let textPath = try args.required("--text", command: command)
    let requestedLength = try args.positiveInteger("--length", command: command)
    guard let model = try Checkpoint.load(from: checkpoint) as? CausalLanguageModel else {
      throw UserError(message: "\(checkpoint.path): eval needs a causal language model checkpoint")
    }
    guard model.vocabulary == 256 else {
      throw UserError(
        message:
          "\(checkpoint.path): eval reads bytes, but the model's vocabulary is \(model.vocabulary), not 256")
    }
    let bytes: Data
    do {
      bytes = try Data(contentsOf: URL(fileURLWithPath: textPath))
    } catch {
      throw UserError(message: "\(textPath): cannot read the file (\(error.localizedDescription))")
    }
    guard bytes.count >= 2 else {
      throw UserError(message: "\(textPath): needs at least 2 bytes, has \(bytes.count)")
    }
    let length = requestedLength ?? model.maxLength
    let started = Date()
    let result = try model.evaluate(tokens: bytes.map(Int.init), length: length)
    let seconds = Date().timeIntervalSince(started)
    if args.flag("--json") {
      let fields: [(String, String)] = [
        ("checkpoint", "\"\(checkpoint.path)\""), ("text", "\"\(textPath)\""), ("length", "\(result.length)"),
        ("tokens", "\(result.tokens)"), ("loss_nats", "\(result.lossNats)"),
        ("bits_per_byte", "\(result.bitsPerByte)"),
        ("seconds", String(format: "%.3f", seconds)),
      ]
      print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
    } else {
      print(
        String(
          format: "loss %.4f nats, %.4f bits/byte over %d predictions (chunks of %d, %.1f s)",
          result.lossNats, result.bitsPerByte, result.tokens, result.length, seconds))
    }
  }
}
