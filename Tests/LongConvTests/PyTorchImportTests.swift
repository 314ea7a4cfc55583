import Foundation
import LongConvIO
import LongConvTensors
import Testing

@testable import LongConv
@testable import LongConvInterop

/// PyTorch TNN checkpoints (fixtures made by the team's earlier PyTorch baseline, `export`, whose model
/// matches the authors' modules) import and reproduce the outputs PyTorch computed.
@Suite struct PyTorchImportTests {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../Fixtures")

  struct Expected: Decodable {
    let tokens: [Int]
    let mean_cross_entropy_nats: Double
    let last_position_logits: [Double]
  }

  @Test(arguments: ["tnn-d16-l2", "tnn-d24-l3"])
  func importedFixtureReproducesPyTorch(fixture: String) throws {
    let directory = Self.fixtures.appendingPathComponent(fixture)
    let model = try PyTorchTNNImport.importModel(
      stateDict: directory.appendingPathComponent("model.safetensors"),
      config: directory.appendingPathComponent("config.json"))
    let expected = try JSONDecoder().decode(
      Expected.self, from: Data(contentsOf: directory.appendingPathComponent("expected.json")))
    let n = expected.tokens.count - 1
    let logits = try Tensor.withoutRecording {
      try model.logits(Array(expected.tokens[..<n]), batch: 1, length: n)
    }
    let loss = Double(logits.crossEntropy(targets: Array(expected.tokens[1...])).scalar)
    #expect(Swift.abs(loss - expected.mean_cross_entropy_nats) <= 1e-4 * expected.mean_cross_entropy_nats)
    let last = logits.slice(axis: 1, n - 1..<n).scalars
    let worst = zip(last, expected.last_position_logits).map { Swift.abs(Double($0) - $1) }.max() ?? .infinity
    #expect(worst <= 1e-4, "largest last-position logit difference \(worst)")
    // The same through eval's chunking, one chunk.
    let evaluation = try model.evaluate(tokens: expected.tokens, length: n)
    #expect(
      Swift.abs(evaluation.lossNats - expected.mean_cross_entropy_nats) <= 1e-4
        * expected.mean_cross_entropy_nats)
    #expect(evaluation.tokens == n)
  }

  /// Writes the d16 fixture's tensors with `edit` applied, and returns the import error.
  func importError(_ edit: (inout [String: Tensor]) -> Void) throws -> CheckpointError? {
    let directory = Self.fixtures.appendingPathComponent("tnn-d16-l2")
    let original = try SafeTensors.read(contentsOf: directory.appendingPathComponent("model.safetensors"))
    var tensors: [String: Tensor] = [:]
    for name in original.names { tensors[name] = original.tensor(name) }
    edit(&tensors)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("import-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let file = scratch.appendingPathComponent("edited.safetensors")
    try SafeTensors.write(tensors, to: file)
    do {
      _ = try PyTorchTNNImport.importModel(
        stateDict: file, config: directory.appendingPathComponent("config.json"))
      return nil
    } catch let error as CheckpointError {
      return error
    }
  }

  @Test func missingTensorIsNamed() throws {
    let error = try importError { $0["layers.1.feature_mixer.l2.bias"] = nil }
    #expect(error?.tensor == "layers.1.feature_mixer.l2.bias")
    #expect(error?.problem == "missing (needed for blocks.1.channelMixer.l2.bias, shape [16])")
  }

  @Test func extraTensorIsNamed() throws {
    let error = try importError { $0["layers.0.token_mixer.extra"] = Tensor.zeros([2]) }
    #expect(error?.tensor == "layers.0.token_mixer.extra")
    #expect(error?.problem.hasPrefix("not part of a TNN language model") == true)
  }

  @Test func wrongShapeIsNamed() throws {
    let error = try importError { $0["layers.0.token_mixer.o.weight"] = Tensor.zeros([48, 16]) }
    #expect(error?.tensor == "layers.0.token_mixer.o.weight")
    #expect(error?.problem == "shape [48, 16] does not match the config's [16, 48]")
  }

  @Test func perChannelDecayIsRefused() throws {
    let error = try importError {
      $0["layers.1.token_mixer.toep.gamma"] = try! Tensor(
        shape: [1, 1, 48], scalars: (0..<48).map { 0.9 + Float($0) * 0.001 })
    }
    #expect(error?.tensor == "layers.1.token_mixer.toep.gamma")
    #expect(error?.problem.contains("per-channel decays do not import") == true)
  }

  @Test func referenceConfigErrorsNameTheKey() throws {
    let bad = try JSONValue.parse(
      Data(#"{"vocab_size": 256, "dim": 16, "layers": "two"}"#.utf8), source: "c.json")
    #expect(
      throws: ConfigError(file: "c.json", path: "layers", problem: "expected an integer, got string \"two\"")
    ) {
      _ = try PyTorchTNNImport.config(fromReference: bad, file: "c.json")
    }
    let bidirectional = try JSONValue.parse(
      Data(#"{"vocab_size": 256, "dim": 16, "layers": 2, "causal": false}"#.utf8), source: "c.json")
    #expect(throws: ConfigError.self) {
      _ = try PyTorchTNNImport.config(fromReference: bidirectional, file: "c.json")
    }
  }

  @Test func everyParameterHasAReferenceName() throws {
    let directory = Self.fixtures.appendingPathComponent("tnn-d24-l3")
    let model = try PyTorchTNNImport.importModel(
      stateDict: directory.appendingPathComponent("model.safetensors"),
      config: directory.appendingPathComponent("config.json"))
    #expect(
      PyTorchTNNImport.referenceName(of: "blocks.2.mixer.kernel.layers.1.linear.weight")
        == "layers.2.token_mixer.toep.rpe.layers.1.2.weight")
    let mapped = model.namedParameters().compactMap { PyTorchTNNImport.referenceName(of: $0.name) }
    #expect(mapped.count == model.namedParameters().count)
    #expect(Set(mapped).count == mapped.count)
  }
}

/// `evaluate(tokens:length:)`: consecutive chunks, every token but the first predicted once.
@Suite struct EvaluationTests {
  @Test func chunksMatchAManualComputation() throws {
    let config = try JSONValue.parse(
      Data(
        #"{"dim": 8, "num_layers": 1, "vocab_size": 20, "max_length": 16, "layers": {"mixer": {"type": "gtu", "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}}}"#
          .utf8), source: "eval")
    let model = try #require(try ModelBuilder.build(config) as? CausalLanguageModel)
    let tokens = (0..<38).map { ($0 * 7 + 3) % 20 }
    let result = try model.evaluate(tokens: tokens, length: 10, batch: 2)
    // Chunks: predictions 1...10, 11...20, 21...30, 31...37 (the last one shorter).
    var total = 0.0
    for start in stride(from: 0, to: 37, by: 10) {
      let width = min(10, 37 - start)
      let loss = try Tensor.withoutRecording {
        try model.loss(
          inputs: Array(tokens[start..<start + width]), targets: Array(tokens[start + 1...start + width]),
          batch: 1,
          length: width)
      }
      total += Double(loss.scalar) * Double(width)
    }
    #expect(result.tokens == 37)
    #expect(Swift.abs(result.lossNats - total / 37) < 1e-5)
    #expect(Swift.abs(result.bitsPerByte - result.lossNats / log(2)) < 1e-12)
  }
}
