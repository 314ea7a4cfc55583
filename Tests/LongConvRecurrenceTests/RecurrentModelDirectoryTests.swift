import Foundation
import LongConv
import LongConvIO
import LongConvRecurrence
import LongConvTensors
import Testing

/// A small TNN language model (2 layers, width 8, GTU expand 2 so 16 kernel channels).
private func tinyModel(seed: Int = 0, dim: Int = 8) throws -> CausalLanguageModel {
  let config = """
    {"dim": \(dim), "num_layers": 2, "max_length": 24, "seed": \(seed),
     "layers": {"mixer": {"type": "gtu", "expand_ratio": 2,
                          "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1, "gamma": 0.95}},
                "channel_mixer": {"type": "glu"}}}
    """
  return try #require(
    try ModelBuilder.build(JSONValue.parse(Data(config.utf8), source: "test")) as? CausalLanguageModel)
}

private func temporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("rmd-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// Logits of `tokens` fed one at a time from the empty state.
private func stepped(_ model: RecurrentLanguageModel, _ tokens: [Int]) -> [[Float]] {
  var state = model.makeState()
  return tokens.map { model.step($0, state: &state) }
}

@Suite struct RecurrentModelDirectoryTests {
  let tokens = [3, 141, 59, 26, 5, 35, 89, 79, 32, 38]

  @Test func savedConversionLoadsToTheSameModel() throws {
    let model = try tinyModel()
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let converters: [(ConversionMode, any KernelConverter)] = [
      (.exact, ExactConverter()), (.compact, try CompactConverter(tolerance: 1e-3, maxStates: 8)),
    ]
    for (mode, converter) in converters {
      let conversion = try RecurrentModelDirectory.convert(model, converter: converter, length: 16)
      #expect(conversion.mode == mode)
      let directory = root.appendingPathComponent("\(mode.rawValue)/nested")  // parents created
      try RecurrentModelDirectory.save(conversion, to: directory, source: "tiny")
      for file in [
        RecurrentModelDirectory.kernelsFile, RecurrentModelDirectory.reportFile,
        RecurrentModelDirectory.tableFile,
      ] {
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(file).path))
      }
      let loaded = try RecurrentModelDirectory.load(model: model, from: directory)
      #expect(loaded.conversionLength == 16)
      #expect(loaded.isLimitedToConversionLength == conversion.limitedToLength)
      #expect(loaded.reports == conversion.reports)
      #expect(loaded.stateCount == conversion.model.stateCount)
      // The file holds the Double state spaces exactly: identical logits.
      #expect(stepped(loaded, tokens) == stepped(conversion.model, tokens))
      let metadata = try RecurrentModelDirectory.metadata(of: directory)
      #expect(metadata.mode == mode && metadata.length == 16 && metadata.source == "tiny")
      // A previous conversion may be replaced.
      try RecurrentModelDirectory.save(conversion, to: directory, source: "again")
      #expect(try RecurrentModelDirectory.metadata(of: directory).source == "again")
    }
  }

  @Test func exactConversionMatchesTheFFTForwardWithinItsLength() throws {
    let model = try tinyModel()
    let conversion = try RecurrentModelDirectory.convert(model, converter: ExactConverter(), length: 16)
    #expect(conversion.limitedToLength)
    let full = try Tensor.withoutRecording {
      try model.logits(tokens, batch: 1, length: tokens.count).scalars
    }
    let rows = stepped(conversion.model, tokens)
    for (i, row) in rows.enumerated() {
      for (v, logit) in row.enumerated() { #expect(abs(logit - full[i * row.count + v]) < 1e-4) }
    }
    // The same conversion as RecurrentLanguageModel's own initialiser.
    let direct = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: 16)
    #expect(direct.reports == conversion.reports)
    #expect(stepped(direct, tokens) == rows)
  }

  @Test func refusesAFileOrAForeignNonEmptyDirectory() throws {
    let model = try tinyModel()
    let conversion = try RecurrentModelDirectory.convert(model, converter: ExactConverter(), length: 8)
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let file = root.appendingPathComponent("file.txt")
    try Data("x".utf8).write(to: file)
    #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.save(conversion, to: file, source: "")
    }
    let busy = root.appendingPathComponent("busy")
    try FileManager.default.createDirectory(at: busy, withIntermediateDirectories: false)
    try Data("x".utf8).write(to: busy.appendingPathComponent("notes.txt"))
    let error = #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.save(conversion, to: busy, source: "")
    }
    #expect(error?.problem.contains("no previous conversion") == true)
    #expect(try FileManager.default.contentsOfDirectory(atPath: busy.path) == ["notes.txt"])
  }

  @Test func loadNamesTheProblem() throws {
    let model = try tinyModel()
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    // Not a conversion at all.
    let empty = #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.load(model: model, from: root)
    }
    #expect(empty?.problem.contains(RecurrentModelDirectory.kernelsFile) == true)

    // Converted from another checkpoint of the same shape: the fingerprint differs.
    let other = try tinyModel(seed: 7)
    let saved = root.appendingPathComponent("other")
    try RecurrentModelDirectory.save(
      try RecurrentModelDirectory.convert(other, converter: ExactConverter(), length: 8), to: saved,
      source: "other")
    let foreign = #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.load(model: model, from: saved)
    }
    #expect(foreign?.problem.contains("another checkpoint") == true)

    // Hand-written files without a fingerprint: missing, extra and mis-sized kernels.
    let conversion = try RecurrentModelDirectory.convert(model, converter: ExactConverter(), length: 8)
    let metadata = ["length": "8", "mode": "exact", "limited_to_length": "true"]
    func write(_ kernels: [String: DiagonalStateSpace], _ metadata: [String: String]) throws -> URL {
      let directory = root.appendingPathComponent(UUID().uuidString)
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
      try StateSpaceFile.write(
        kernels, metadata: metadata, to: directory.appendingPathComponent(RecurrentModelDirectory.kernelsFile)
      )
      return directory
    }
    let first = RecurrentLanguageModel.kernelName(layer: 0)
    let second = RecurrentLanguageModel.kernelName(layer: 1)
    // Loads fine as written (no fingerprint to check).
    let plain = try RecurrentModelDirectory.load(model: model, from: try write(conversion.kernels, metadata))
    #expect(stepped(plain, tokens) == stepped(conversion.model, tokens))

    var missing = conversion.kernels
    missing[second] = nil
    let missingError = #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.load(model: model, from: try write(missing, metadata))
    }
    #expect(missingError?.tensor == "\(second).poles")

    var extra = conversion.kernels
    extra["blocks.2.mixer.kernel"] = conversion.kernels[first]
    let extraError = #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.load(model: model, from: try write(extra, metadata))
    }
    #expect(extraError?.tensor == "blocks.2.mixer.kernel")

    let wide = try RecurrentModelDirectory.convert(
      try tinyModel(dim: 12), converter: ExactConverter(), length: 8)
    var misSized = conversion.kernels
    misSized[first] = wide.kernels[first]
    let sizeError = #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.load(model: model, from: try write(misSized, metadata))
    }
    #expect(sizeError?.problem.contains("24 channels, but the model's kernel has 16") == true)

    let noMode = #expect(throws: TensorFileError.self) {
      try RecurrentModelDirectory.load(model: model, from: try write(conversion.kernels, ["length": "8"]))
    }
    #expect(noMode?.tensor == "__metadata__")
  }

  @Test func reportTableHasARowPerLayerAndTotals() throws {
    let conversion = try RecurrentModelDirectory.convert(
      try tinyModel(), converter: try CompactConverter(tolerance: 1e-2, maxStates: 4), length: 16)
    let lines = RecurrentModelDirectory.table(conversion.reports).split(separator: "\n")
    #expect(lines.count == 4)
    #expect(lines[0].hasPrefix("layer"))
    #expect(lines[1].hasPrefix("0") && lines[1].contains("compact"))
    #expect(lines[3].hasPrefix("all"))
    let json = try JSONSerialization.jsonObject(with: RecurrentModelDirectory.json(conversion.reports))
    #expect((json as? [[String: Any]])?.first?["requested_mode"] as? String == "compact")
  }
}
