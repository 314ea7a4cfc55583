import Foundation
import LongConv
import LongConvIO

/// A converted language model on disk: the directory `longconv convert` writes and
/// `longconv generate --recurrent` reads, beside the checkpoint it was converted from.
///
/// - `kernels.safetensors`: every block's converted kernel in the interchange format of
///   ``StateSpaceFile`` (`blocks.<i>.mixer.kernel.poles`, `.residues`, `.skip`), with metadata
///   `length`, `mode`, `limited_to_length` (`true`/`false`), `source` (the checkpoint's path)
///   and `fingerprint` (of the checkpoint's parameters, so a conversion is never run on
///   another checkpoint of the same shape).
/// - `report.json`: the per-layer ``KernelConversionReport``s (snake-case keys), totals and
///   the conversion time.
/// - `report.txt`: the same as an aligned table (``table(_:byName:)``).
///
/// The model itself (embedding, norms, projections, head) is not copied: loading takes the
/// checkpoint's model and replaces its long convolutions.
public enum RecurrentModelDirectory {
  /// `kernels.safetensors`: the converted kernels and the metadata.
  public static let kernelsFile = "kernels.safetensors"
  /// `report.json`: the per-layer reports, totals and the conversion time.
  public static let reportFile = "report.json"
  /// `report.txt`: the reports as an aligned table.
  public static let tableFile = "report.txt"

  /// A model converted layer by layer, with the state spaces kept for writing.
  public struct Conversion: Sendable {
    /// The model with every block's mixer in recurrent form.
    public var model: RecurrentLanguageModel
    /// Keyed by ``RecurrentLanguageModel/kernelName(layer:)``.
    public var kernels: [String: DiagonalStateSpace]
    /// One report per block, in block order.
    public var reports: [KernelConversionReport]
    /// The converter's mode.
    public var mode: ConversionMode
    /// The conversion length `n`.
    public var length: Int
    /// Whether some channel is exact only within ``length`` (ETSC, or a compact layer's exact
    /// fallback channels).
    public var limitedToLength: Bool
    /// Wall time of the conversion (sampling the kernels included).
    public var seconds: Double
  }

  /// What `kernels.safetensors` says about itself.
  public struct Metadata: Sendable, Equatable {
    /// `length`: the conversion length `n`.
    public var length: Int
    /// `mode`: the converter's mode.
    public var mode: ConversionMode
    /// `limited_to_length`: whether some channel is exact only within ``length``.
    public var limitedToLength: Bool
    /// `source`: the checkpoint's path, when recorded.
    public var source: String?
    /// `fingerprint`: ``RecurrentModelDirectory/fingerprint(of:)`` of the checkpoint's model, when recorded.
    public var fingerprint: String?
  }

  /// Converts every block of `model` with `converter` at `length` (the same conversion as
  /// ``RecurrentLanguageModel/init(model:converter:length:)``, keeping the state spaces).
  public static func convert(
    _ model: CausalLanguageModel, converter: some KernelConverter, length: Int
  ) throws -> Conversion {
    let started = DispatchTime.now().uptimeNanoseconds
    let recurrent = try RecurrentLanguageModel(model: model, converter: converter, length: length)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
    return Conversion(
      model: recurrent, kernels: recurrent.kernels, reports: recurrent.reports, mode: converter.mode,
      length: length, limitedToLength: recurrent.isLimitedToConversionLength, seconds: seconds)
  }

  /// Writes `conversion` into `directory` (created with its parents if needed). Refuses a
  /// path that is a file, or a non-empty directory that does not hold a previous conversion
  /// (`kernels.safetensors`); a previous conversion's files are replaced, each atomically.
  /// `source` names the checkpoint; `fingerprint` is ``fingerprint(of:)`` of its model.
  public static func save(_ conversion: Conversion, to directory: URL, source: String) throws {
    try prepare(directory)
    let metadata: [String: String] = [
      "format": "longconvkit-recurrent-lm", "length": "\(conversion.length)",
      "mode": conversion.mode.rawValue,
      "limited_to_length": conversion.limitedToLength ? "true" : "false", "source": source,
      "fingerprint": fingerprint(of: conversion.model.model),
    ]
    try StateSpaceFile.write(
      conversion.kernels, metadata: metadata, to: directory.appendingPathComponent(kernelsFile))
    let report = ReportFile(
      source: source, mode: conversion.mode, length: conversion.length,
      limitedToLength: conversion.limitedToLength, conversionSeconds: conversion.seconds,
      layers: conversion.reports, totals: Totals(conversion.reports))
    try writeAtomically(
      try encoder.encode(report) + Data("\n".utf8), to: directory.appendingPathComponent(reportFile))
    try writeAtomically(Data(table(conversion.reports).utf8), to: directory.appendingPathComponent(tableFile))
  }

  /// Creates `directory` or checks that it may be written into.
  static func prepare(_ directory: URL) throws {
    let path = directory.path
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
      guard isDirectory.boolValue else {
        throw TensorFileError(file: path, problem: "exists and is not a directory")
      }
      let contents = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
      guard contents.isEmpty || contents.contains(kernelsFile) else {
        throw TensorFileError(
          file: path,
          problem:
            "exists, is not empty and holds no previous conversion (\(kernelsFile)); not writing into it")
      }
    } else {
      do {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      } catch {
        throw TensorFileError(
          file: path, problem: "cannot create the directory (\(error.localizedDescription))")
      }
    }
  }

  /// Reads the metadata of the conversion in `directory`.
  public static func metadata(of directory: URL) throws -> Metadata {
    try read(directory).metadata
  }

  /// The recurrent form of `model` stored in `directory`. Throws a ``LongConvIO/TensorFileError`` naming
  /// the file when a kernel is missing or extra, has the wrong channel count, the metadata is
  /// incomplete, or the conversion was made from a checkpoint with other parameters.
  public static func load(model: CausalLanguageModel, from directory: URL) throws -> RecurrentLanguageModel {
    let (kernels, metadata) = try read(directory)
    let file = directory.appendingPathComponent(kernelsFile).path
    if let stored = metadata.fingerprint, stored != fingerprint(of: model) {
      throw TensorFileError(
        file: file,
        problem:
          "converted from another checkpoint (\(metadata.source ?? "unknown")): the parameters differ; convert this checkpoint again"
      )
    }
    let mixers = try RecurrentLanguageModel.convertibleMixers(model)
    let expected = Set(mixers.indices.map(RecurrentLanguageModel.kernelName(layer:)))
    if let extra = kernels.keys.sorted().first(where: { !expected.contains($0) }) {
      throw TensorFileError(
        file: file, tensor: extra,
        problem:
          "no such kernel in the model (it has \(mixers.count) layer(s)); converted from another model?")
    }
    for (i, mixer) in mixers.enumerated() {
      let name = RecurrentLanguageModel.kernelName(layer: i)
      guard let system = kernels[name] else {
        throw TensorFileError(
          file: file, tensor: "\(name).poles", problem: "missing: the model has a kernel of that name")
      }
      if let channels = mixer.longConvKernel?.channels, channels != system.channels {
        throw TensorFileError(
          file: file, tensor: "\(name).poles",
          problem: "\(system.channels) channels, but the model's kernel has \(channels)")
      }
    }
    var reports: [KernelConversionReport] = []
    let reportURL = directory.appendingPathComponent(reportFile)
    if let data = try? Data(contentsOf: reportURL),
      let report = try? decoder.decode(ReportFile.self, from: data)
    {
      reports = report.layers
    }
    return try RecurrentLanguageModel(
      model: model, kernels: kernels, length: metadata.length, limitedToLength: metadata.limitedToLength,
      reports: reports)
  }

  static func read(_ directory: URL) throws -> (kernels: [String: DiagonalStateSpace], metadata: Metadata) {
    let url = directory.appendingPathComponent(kernelsFile)
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw TensorFileError(
        file: directory.path,
        problem: "holds no \(kernelsFile): not a conversion written by `longconv convert`")
    }
    let (kernels, raw) = try StateSpaceFile.read(contentsOf: url)
    func missing(_ key: String) -> TensorFileError {
      TensorFileError(file: url.path, tensor: "__metadata__", problem: "no valid '\(key)' entry")
    }
    guard let length = raw["length"].flatMap({ Int($0) }), length >= 1 else { throw missing("length") }
    guard let mode = raw["mode"].flatMap(ConversionMode.init(rawValue:)) else { throw missing("mode") }
    guard let limited = raw["limited_to_length"].flatMap({ Bool($0) }) else {
      throw missing("limited_to_length")
    }
    return (
      kernels,
      Metadata(
        length: length, mode: mode, limitedToLength: limited, source: raw["source"],
        fingerprint: raw["fingerprint"])
    )
  }

  /// FNV-1a (64-bit) over the model's parameters and buffers, by name, in name order: a
  /// fingerprint to tell checkpoints apart, not a cryptographic hash.
  public static func fingerprint(of model: CausalLanguageModel) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ value: UInt64) {
      hash ^= value
      hash &*= 0x100_0000_01b3
    }
    for (name, tensor) in model.namedState().sorted(by: { $0.name < $1.name }) {
      for byte in name.utf8 { mix(UInt64(byte)) }
      for dimension in tensor.shape { mix(UInt64(dimension)) }
      tensor.withUnsafeBufferPointer { values in
        for value in values { mix(UInt64(value.bitPattern)) }
      }
    }
    return String(hash, radix: 16)
  }

  // MARK: Reports

  /// `report.json`.
  struct ReportFile: Codable {
    var source: String
    var mode: ConversionMode
    var length: Int
    var limitedToLength: Bool
    var conversionSeconds: Double
    var layers: [KernelConversionReport]
    var totals: Totals
  }

  /// Over all layers.
  struct Totals: Codable {
    var layers: Int
    /// Complex states per token stream, all layers together.
    var states: Int
    var maxStatesPerChannel: Int
    var maxRelativeError: Double
    var maxErrorBound: Double
    var exactChannels: Int

    init(_ reports: [KernelConversionReport]) {
      layers = reports.count
      states = reports.reduce(0) { $0 + $1.totalStates }
      maxStatesPerChannel = reports.map(\.maxStates).max() ?? 0
      maxRelativeError = reports.map(\.relativeError).max() ?? 0
      maxErrorBound = reports.map(\.errorBound).max() ?? 0
      exactChannels = reports.reduce(0) { $0 + ($1.exactChannels ?? 0) }
    }
  }

  static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return encoder
  }

  static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return decoder
  }

  /// The reports of `reports` as a JSON array (snake-case keys).
  public static func json(_ reports: [KernelConversionReport]) throws -> Data {
    try encoder.encode(reports)
  }

  /// The reports as an aligned plain-text table, one row per layer and a total row: layer,
  /// requested mode, mode used, states (largest channel / total), relative error, certified
  /// bound, Hankel tail, channels that fell back to exact, the kernel at lag `n` (exact), note.
  /// With `byName`, the first column is the kernel's name instead of the layer's index.
  public static func table(_ reports: [KernelConversionReport], byName: Bool = false) -> String {
    func number(_ value: Double?) -> String {
      guard let value else { return "-" }
      return value == 0 ? "0" : String(format: "%.2e", value)
    }
    let header = [
      byName ? "kernel" : "layer", "requested", "mode", "states max", "states total", "rel. error",
      "certified bound",
      "hankel tail", "exact channels", "lag n", "note",
    ]
    var rows = reports.enumerated().map { i, r -> [String] in
      [
        byName ? r.kernel : "\(i)", r.requestedMode.rawValue, r.mode.rawValue, "\(r.maxStates)",
        "\(r.totalStates)",
        number(r.relativeError), number(r.errorBound), number(r.hankelTail),
        r.exactChannels.map { "\($0)/\(r.channels)" } ?? "-", number(r.lagBeyondLength), r.note ?? "",
      ]
    }
    let totals = Totals(reports)
    rows.append([
      "all", "", "", "\(totals.maxStatesPerChannel)", "\(totals.states)", number(totals.maxRelativeError),
      number(totals.maxErrorBound), "", "", "", "",
    ])
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return
      all.map { row in
        row.enumerated().map { column, text in
          column == row.count - 1
            ? text
            : (column <= 2
              ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
              : String(repeating: " ", count: widths[column] - text.count) + text)
        }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
      }.joined(separator: "\n") + "\n"
  }

  static func writeAtomically(_ data: Data, to url: URL) throws {
    try AtomicFile.write(to: url) { sink in try data.withUnsafeBytes { try sink($0) } }
  }
}
