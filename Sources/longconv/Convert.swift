import Foundation
import LongConvCommandLine
import LongConvKit

/// `longconv convert`: a checkpoint's (or a file of bare kernels') long convolutions into
/// diagonal state-space recurrences.
enum ConvertCommand {
  static let help = """
    usage: longconv convert --checkpoint DIR --mode native|exact|compact [--tolerance T]
                            [--length N] [--max-states S] --out DIR
           longconv convert --kernels FILE.safetensors --mode exact|compact [--tolerance T]
                            [--max-states S] --out FILE.safetensors [--report FILE.json]

    With --checkpoint (a causal language model): converts every layer's kernel at length N
    (default: the model's max_length) and writes into the --out directory (created; an
    existing one must be empty or hold a previous conversion):
      kernels.safetensors  the converted kernels (poles, residues, skip; F64) with metadata
                           length, mode, limited_to_length, source and the checkpoint's fingerprint
      report.json          per-layer conversion reports, totals, conversion seconds
      report.txt           the same as a table (also printed)
    `longconv generate --checkpoint DIR --recurrent OUT` then decodes with it.

    With --kernels: every tensor of FILE, [channels, n] (F32, F64, F16 or BF16), holds the
    causal lags 0 ... n-1 of one kernel; the converted kernels are written to the --out file
    (never the input itself), and the reports to --report FILE.json if given.

    Modes:
      native   a kernel's own exact state-space form (S4D, EMA), else exact
      exact    ETSC: floor((N+1)/2) complex states per channel, exact for N positions; beyond
               N the kernel repeats periodically (damped by its decay)
      compact  per channel, the fewest states (at most S, default 64) whose kernel is within a
               relative l1 error T (default 1e-4) of the original over N lags; channels that
               cannot are converted exactly
    """

  static func run(_ arguments: [String]) throws {
    let command = "convert"
    let args = try Arguments(
      arguments, command: command,
      options: [
        "--checkpoint", "--kernels", "--mode", "--tolerance", "--length", "--max-states", "--out", "--report",
      ])
    if args.wantsHelp {
      print(help)
      return
    }
    let modeText = try args.required("--mode", command: command)
    guard let mode = ConversionMode(rawValue: modeText) else {
      throw UsageError(message: "\(command): --mode must be native, exact or compact, got '\(modeText)'")
    }
    var tolerance = 1e-4
    if let text = args.string("--tolerance") {
      guard let value = Double(text), value.isFinite, value > 0 else {
        throw UsageError(message: "\(command): --tolerance needs a positive finite number, got '\(text)'")
      }
      tolerance = value
    }
    let maxStates = try args.positiveInteger("--max-states", command: command)
    if mode != .compact {
      for option in ["--tolerance", "--max-states"] where args.string(option) != nil {
        throw UsageError(message: "\(command): \(option) applies to --mode compact only")
      }
    }
    let out = URL(fileURLWithPath: try args.required("--out", command: command))

    switch (args.string("--checkpoint"), args.string("--kernels")) {
    case (let checkpoint?, nil):
      if args.string("--report") != nil {
        throw UsageError(
          message: "\(command): --report goes with --kernels (a checkpoint's report is in --out)")
      }
      let length = try args.positiveInteger("--length", command: command)
      try convertCheckpoint(
        checkpoint, mode: mode, tolerance: tolerance, maxStates: maxStates, length: length, out: out)
    case (nil, let kernels?):
      if args.string("--length") != nil {
        throw UsageError(
          message: "\(command): --length goes with --checkpoint (a kernel file's length is its lags)")
      }
      guard mode != .native else {
        throw UsageError(message: "\(command): bare kernels have no native form; use --mode exact or compact")
      }
      try convertKernels(
        kernels, mode: mode, tolerance: tolerance, maxStates: maxStates, out: out,
        report: args.string("--report").map { URL(fileURLWithPath: $0) })
    default:
      throw UsageError(message: "\(command): give exactly one of --checkpoint DIR and --kernels FILE")
    }
  }

  static func converter(_ mode: ConversionMode, tolerance: Double, maxStates: Int?) throws
    -> any KernelConverter
  {
    switch mode {
    case .native: return NativeConverter()
    case .exact: return ExactConverter()
    case .compact: return try CompactConverter(tolerance: tolerance, maxStates: maxStates ?? 64)
    }
  }

  static func convertCheckpoint(
    _ path: String, mode: ConversionMode, tolerance: Double, maxStates: Int?, length: Int?, out: URL
  ) throws {
    let directory = URL(fileURLWithPath: path)
    let loaded = try Checkpoint.load(from: directory)
    guard let model = loaded as? CausalLanguageModel else {
      throw UserError(
        message:
          "\(path): bidirectional model: its kernels look at later positions, so it has no causal recurrent form"
      )
    }
    let length = length ?? model.maxLength
    let conversion = try RecurrentModelDirectory.convert(
      model, converter: try converter(mode, tolerance: tolerance, maxStates: maxStates), length: length)
    try RecurrentModelDirectory.save(conversion, to: out, source: directory.standardizedFileURL.path)
    print(RecurrentModelDirectory.table(conversion.reports), terminator: "")
    print(
      String(
        format: "converted %d layers (%@, length %d) in %.2f s: %d complex states per token stream%@",
        conversion.reports.count, mode.rawValue, length, conversion.seconds, conversion.model.stateCount,
        conversion.limitedToLength ? "; exact only within \(length) positions" : ""))
    print(
      "wrote \(out.path)/{\(RecurrentModelDirectory.kernelsFile),\(RecurrentModelDirectory.reportFile),\(RecurrentModelDirectory.tableFile)}"
    )
  }

  static func convertKernels(
    _ path: String, mode: ConversionMode, tolerance: Double, maxStates: Int?, out: URL, report: URL?
  ) throws {
    let input = URL(fileURLWithPath: path)
    if let report, KernelFileConversion.sameFile(report, input) || KernelFileConversion.sameFile(report, out)
    {
      throw UsageError(message: "convert: --report must be another file than --kernels and --out")
    }
    let started = DispatchTime.now().uptimeNanoseconds
    let reports = try KernelFileConversion.convert(
      contentsOf: input, converter: try converter(mode, tolerance: tolerance, maxStates: maxStates),
      writingTo: out)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
    if let report {
      let data = try RecurrentModelDirectory.json(reports) + Data("\n".utf8)
      try AtomicFile.write(to: report) { sink in try data.withUnsafeBytes { try sink($0) } }
    }
    print(RecurrentModelDirectory.table(reports, byName: true), terminator: "")
    print(String(format: "converted %d kernel(s) in %.2f s into %@", reports.count, seconds, out.path))
  }
}
