import Foundation
import LongConvCommandLine
import LongConvKit

/// `longconv inspect`: draws every layer's kernel of a checkpoint as SVG files.
enum InspectCommand {
  static let help = """
    usage: longconv inspect --checkpoint DIR --out DIR [--length N] [--channels K]

    For every layer of the checkpoint (causal language model or classifier), writes into the
    --out directory (created if needed; other files there are left alone):
      layer-<i>-toeplitz.svg  the layer's Toeplitz matrix T[i][j] = t[i-j] for K channels
                              (channel 0 and the largest, median and smallest kernel norms),
                              averaged to at most 128 x 128 cells, on a diverging colour scale
      layer-<i>-impulse.svg   the impulse responses t[k] against the lag k, and |t[k]| on a log scale
      index.html              all of them on one page
    N (the sequence length) defaults to the model's max_length, at most 1024; K defaults to 4
    (at most 8).
    """

  static func run(_ arguments: [String]) throws {
    let command = "inspect"
    let args = try Arguments(
      arguments, command: command, options: ["--checkpoint", "--out", "--length", "--channels"])
    if args.wantsHelp {
      print(help)
      return
    }
    let checkpointPath = try args.required("--checkpoint", command: command)
    let checkpoint = URL(fileURLWithPath: checkpointPath)
    let out = URL(fileURLWithPath: try args.required("--out", command: command))
    let length = try args.positiveInteger("--length", command: command)
    let channels = try args.positiveInteger("--channels", command: command) ?? 4
    guard channels <= 8 else {
      throw UsageError(message: "\(command): --channels is at most 8, got \(channels)")
    }
    let model = try Checkpoint.load(from: checkpoint)
    try ModelInspection.write(
      model, to: out, length: length ?? ModelInspection.defaultLength(of: model), channels: channels,
      title: checkpointPath, wrote: { print("wrote \($0.path)") })
  }
}
