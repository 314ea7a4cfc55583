import Foundation
import LongConvInspection
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConv

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// Kernel inspection: Toeplitz sampling against dense Double matrices, channel choice, the
/// SVG drawings, and `ModelInspection.write` on a saved checkpoint.
@Suite struct InspectionTests {
  /// An explicit kernel with `N(0, 1)` coefficients (no soft threshold) and its response.
  static func response(_ direction: ConvolutionDirection, length: Int) throws -> KernelResponse {
    var generator = SeededGenerator(seed: 4)
    let kernel = ExplicitKernel(
      channels: 3, direction: direction, maxLength: length, lambda: 0, initStd: 1, skip: false,
      generator: &generator)
    return try KernelResponse(kernel: kernel, length: length)
  }

  @Test(arguments: [ConvolutionDirection.causal, .bidirectional])
  func toeplitzSampleMatchesTheDenseMatrix(direction: ConvolutionDirection) throws {
    for (n, maxCells) in [(12, 64), (12, 4), (10, 4), (9, 2)] {
      let response = try Self.response(direction, length: n)
      for channel in 0..<3 {
        let t = Dense.toeplitz(response.coefficients[channel], direction: direction, size: n)
        let sample = response.toeplitz(channel: channel, maxCells: maxCells)
        let s = sample.stride
        #expect(sample.cells <= maxCells && sample.cells == (n + s - 1) / s && sample.size == n)
        // Every complete block: the mean of its entries.
        for row in 0..<n / s {
          for column in 0..<n / s {
            var sum = 0.0
            for i in row * s..<(row + 1) * s { for j in column * s..<(column + 1) * s { sum += t[i][j] } }
            let mean = sum / Double(s * s)
            #expect(
              abs(sample.value(row: row, column: column) - mean) < 1e-12, "n \(n), cell \(row), \(column)")
          }
        }
      }
    }
  }

  @Test func representativeChannelsAreChannelZeroThenNormRanks() {
    // Norms 3, 9, 1, 5, 7: largest 1, median 3, smallest 2.
    let rows = [3.0, 9, 1, 5, 7].map { [$0, 0] }
    let response = KernelResponse(kernelName: "test", direction: .causal, length: 2, coefficients: rows)
    #expect(response.representativeChannels(count: 4) == [0, 1, 3, 2])
    #expect(response.representativeChannels(count: 1) == [0])
    #expect(response.representativeChannels(count: 2) == [0, 1])
    #expect(response.representativeChannels(count: 9).sorted() == [0, 1, 2, 3, 4])
  }

  @Test func colourScaleIsSymmetricAroundZero() {
    let scale = DivergingColorScale(limit: 2)
    #expect(scale.color(0) == "#f7f7f7")
    #expect(scale.color(2) == "#b2182b" && scale.color(50) == "#b2182b")
    #expect(scale.color(-2) == "#2166ac")
    #expect(scale.color(1) != scale.color(-1))
    #expect(DivergingColorScale(limit: 0).limit == 1)
  }

  /// Counts the elements named `name` in `markup`, after checking with Foundation's
  /// `XMLParser` that it is well-formed XML with an `<svg>` root.
  static func count(_ name: String, in markup: String) throws -> Int {
    final class Counter: NSObject, XMLParserDelegate {
      var names: [String] = []
      func parser(
        _ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
      ) { names.append(element) }
    }
    let parser = XMLParser(data: Data(markup.utf8))
    let counter = Counter()
    parser.delegate = counter
    // On Linux, `parse()` can return true for malformed markup and set `parserError` only.
    let parsed = parser.parse()
    if let error = parser.parserError { throw error }
    guard parsed else { throw CocoaError(.coderReadCorrupt) }
    #expect(counter.names.first == "svg")
    return counter.names.filter { $0 == name }.count
  }

  @Test func theXMLCheckRejectsMalformedMarkup() {
    #expect(throws: (any Error).self) { try Self.count("g", in: "<svg><g></svg>") }
  }

  @Test(arguments: [ConvolutionDirection.causal, .bidirectional])
  func toeplitzSVGIsWellFormedWithOneStripAndOneRowPerCell(direction: ConvolutionDirection) throws {
    let response = try Self.response(direction, length: 300)
    let svg = KernelPlots.toeplitz(response, channels: [0, 2], title: "a <title> & more", maxCells: 128)
    let cells = response.toeplitz(channel: 0, maxCells: 128).cells
    #expect(cells == 100)  // stride 3
    #expect(try Self.count("use", in: svg.markup) == 2 * cells)
    // The strips' cells, plus the background, two frames and two colour bars.
    #expect(try Self.count("rect", in: svg.markup) == 2 * (2 * cells - 1) + 5 + 2)  // + 2 clip rects
    #expect(svg.markup.contains("a &lt;title&gt; &amp; more"))
  }

  @Test func impulseSVGIsWellFormedWithTwoLinesPerChannel() throws {
    let response = try Self.response(.bidirectional, length: 50)
    let svg = KernelPlots.impulse(response, channels: [0, 1, 2], title: "impulse")
    #expect(try Self.count("polyline", in: svg.markup) == 6)
    let zero = KernelResponse(
      kernelName: "zero", direction: .causal, length: 4, coefficients: [[0, 0, 0, 0]])
    let flat = KernelPlots.impulse(zero, channels: [0], title: "zero").markup
    #expect(try Self.count("polyline", in: flat) == 1 && flat.contains("all coefficients are 0"))
  }

  static func saveModel(_ config: String, in scratch: ScratchDirectory) throws -> URL {
    let model = try ModelBuilder.build(JSONValue.parse(Data(config.utf8), source: "inspect.json"))
    let directory = scratch.file("ckpt")
    try Checkpoint.save(model, to: directory)
    return directory
  }

  @Test func writesEveryLayerOfACheckpointAndLeavesOtherFilesAlone() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let checkpoint = try Self.saveModel(
      """
      {"model": "classifier", "num_classes": 3, "dim": 8, "num_layers": 2, "max_length": 32,
       "layers": {"mixer": {"type": "ssm", "kernel": {"type": "s4d"}}}}
      """, in: scratch)
    let model = try Checkpoint.load(from: checkpoint)
    #expect(model.blocks.allSatisfy { $0.mixer.longConvKernel?.direction == .bidirectional })
    #expect(ModelInspection.defaultLength(of: model) == 32)
    let out = scratch.file("nested/inspect")
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    try Data("keep".utf8).write(to: out.appendingPathComponent("notes.txt"))
    var reported: [String] = []
    let written = try ModelInspection.write(
      model, to: out, length: 32, title: "ckpt", wrote: { reported.append($0.lastPathComponent) })
    let expected = [
      "layer-0-toeplitz.svg", "layer-0-impulse.svg", "layer-1-toeplitz.svg", "layer-1-impulse.svg",
      "index.html",
    ]
    #expect(reported == expected && written.map(\.lastPathComponent) == expected)
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
        == (expected + ["notes.txt"]).sorted())
    let index = try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8)
    #expect(index.contains("<img src=\"layer-1-impulse.svg\""))
    for name in expected where name.hasSuffix(".svg") {
      let data = try Data(contentsOf: out.appendingPathComponent(name))
      #expect(data.count < 1_000_000)
      _ = try Self.count("svg", in: String(decoding: data, as: UTF8.self))
    }
  }

  @Test func lengthBeyondAHyenaKernelNamesTheKernelAndTheLimit() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let config = """
      {"dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "hyena", "kernel": {"type": "hyena", "emb_dim": 5, "filter_width": 8}}}}
      """
    let model = try Checkpoint.load(from: try Self.saveModel(config, in: scratch))
    #expect(throws: (any Error).self) {
      try ModelInspection.write(model, to: scratch.file("out"), length: 17, title: "hyena")
    }
    do {
      try ModelInspection.write(model, to: scratch.file("out"), length: 17, title: "hyena")
    } catch {
      #expect(
        "\(error)"
          == "layer 0: \(KernelError.lengthBeyondMaximum(kernel: "hyena", requested: 17, maximum: 16))")
    }
    // Nothing written, not even the directory; 16 is fine.
    #expect(!FileManager.default.fileExists(atPath: scratch.file("out").path))
    try ModelInspection.write(model, to: scratch.file("out"), length: 16, title: "hyena")
  }

  @Test func anOutputThatIsAFileIsRefused() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let model = try CheckpointTests.model()
    let file = scratch.file("plain")
    try Data("x".utf8).write(to: file)
    #expect(throws: (any Error).self) { try ModelInspection.write(model, to: file, length: 8, title: "m") }
    #expect(try String(contentsOf: file, encoding: .utf8) == "x")
  }

  @Test(arguments: [("gtu", "tnn"), ("hyena", "hyena"), ("ssm", "s4d")])
  func builtInMixersExposeTheirKernel(mixer: String, kernel: String) throws {
    let model = try ModelBuilder.build(
      JSONValue.parse(
        Data(
          """
          {"dim": 4, "num_layers": 1, "max_length": 8,
           "layers": {"mixer": {"type": "\(mixer)", "kernel": {"type": "\(kernel)"}}}}
          """.utf8), source: "test.json"))
    let found = try #require(model.blocks[0].mixer.longConvKernel)
    #expect(try KernelResponse(kernel: found, length: 8).kernelName == kernel)
  }

  @Test func mixersWithoutALongConvKernelAreListedNotDrawn() throws {
    _ = TestComponents.registered
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let model = try ModelBuilder.build(
      JSONValue.parse(
        Data(
          """
          {"dim": 4, "num_layers": 1, "max_length": 8,
           "layers": {"mixer": {"type": "test_project", "kernel": {"type": "test_geometric"}}}}
          """.utf8), source: "test.json"))
    #expect(model.blocks[0].mixer.longConvKernel == nil)
    let written = try ModelInspection.write(model, to: scratch.file("out"), length: 8, title: "m")
    #expect(written.map(\.lastPathComponent) == ["index.html"])
  }
}
