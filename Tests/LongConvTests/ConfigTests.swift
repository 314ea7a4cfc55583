import Foundation
import LongConvTensors
import Testing

@testable import LongConv

/// Configs: typed keys with defaults, errors that name the key path, registry lookups, and
/// round trips through the resolved config.
@Suite struct ConfigTests {
  init() { _ = TestComponents.registered }

  static func json(_ text: String) throws -> JSONValue {
    try JSONValue.parse(Data(text.utf8), source: "test.json")
  }

  static let base = """
    {"dim": 8, "num_layers": 2, "max_length": 16,
     "layers": {"mixer": {"type": "test_project", "kernel": {"type": "test_geometric", "rho": 0.5}}}}
    """

  func buildError(_ text: String) -> ConfigError? {
    do {
      _ = try ModelBuilder.build(try Self.json(text), file: "test.json")
      return nil
    } catch let error as ConfigError {
      return error
    } catch {
      Issue.record("unexpected error \(error)")
      return nil
    }
  }

  @Test func defaultsAreFilledIntoTheResolvedConfig() throws {
    let model = try ModelBuilder.build(try Self.json(Self.base))
    guard case .object(let top) = model.config, case .object(let layers)? = top["layers"] else {
      Issue.record("resolved config is not an object")
      return
    }
    #expect(top["vocab_size"] == .number(256))
    #expect(top["final_norm"] == .string("layer_norm"))
    #expect(layers["norm"] == .string("simple_rms_norm"))
    #expect(layers["prenorm"] == .bool(true))
    guard case .object(let channel)? = layers["channel_mixer"] else {
      Issue.record("channel mixer missing from the resolved config")
      return
    }
    #expect(channel["type"] == .string("glu"))
    #expect(channel["hidden_dim"] == .number(8))
  }

  @Test func roundTripGivesTheSameModel() throws {
    let first = try ModelBuilder.build(try Self.json(Self.base))
    let encoded = first.config.serialized()
    let second = try ModelBuilder.build(try JSONValue.parse(encoded, source: "round-trip"))
    #expect(second.config == first.config)
    #expect(second.config.serialized() == encoded)
    let a = first.namedParameters()
    let b = second.namedParameters()
    #expect(a.map(\.name) == b.map(\.name))
    #expect(
      zip(a, b).allSatisfy { $0.tensor.shape == $1.tensor.shape && $0.tensor.scalars == $1.tensor.scalars })
  }

  @Test func wrongValueTypeNamesTheKeyPath() {
    let error = buildError(
      """
      {"dim": 8, "num_layers": 1, "layers": {"mixer": {"type": "test_project",
       "kernel": {"type": "test_geometric", "rho": "half"}}}}
      """)
    #expect(error?.path == "layers.mixer.kernel.rho")
    #expect(error?.file == "test.json")
    #expect(
      error?.description == "test.json: layers.mixer.kernel.rho: expected a number, got string \"half\"")
  }

  @Test func missingRequiredKeyNamesIt() {
    #expect(buildError(#"{"num_layers": 1, "layers": {"mixer": {"type": "test_project"}}}"#)?.path == "dim")
    let error = buildError(#"{"dim": 4, "num_layers": 1, "layers": {"mixer": {"type": "test_project"}}}"#)
    #expect(error?.path == "layers.mixer.kernel")
    #expect(error?.problem == "missing required key")
  }

  @Test func unknownTypeNamesListTheKnownOnes() {
    let error = buildError(
      #"{"dim": 4, "num_layers": 1, "layers": {"mixer": {"type": "test_project", "kernel": {"type": "nope"}}}}"#
    )
    #expect(error?.path == "layers.mixer.kernel.type")
    #expect(error?.problem.hasPrefix("unknown kernel type \"nope\"") == true)
    #expect(error?.problem.contains("test_geometric") == true)
    let mixer = buildError(#"{"dim": 4, "num_layers": 1, "layers": {"mixer": {"type": "blender"}}}"#)
    #expect(mixer?.path == "layers.mixer.type")
  }

  @Test func unknownKeysAreRejected() {
    let error = buildError(
      """
      {"dim": 8, "num_layers": 1, "layers": {"mixer": {"type": "test_project",
       "kernel": {"type": "test_geometric", "rhoo": 0.5}}}}
      """)
    #expect(error?.path == "layers.mixer.kernel.rhoo")
    #expect(error?.problem == "unknown key")
  }

  @Test func outOfRangeAndNonIntegerValues() {
    #expect(
      buildError(#"{"dim": 0, "num_layers": 1, "layers": {"mixer": {"type": "test_project"}}}"#)?.problem
        == "must be at least 1, got 0")
    #expect(
      buildError(#"{"dim": 2.5, "num_layers": 1, "layers": {"mixer": {"type": "test_project"}}}"#)?.problem
        == "expected an integer, got number 2.5")
    #expect(
      buildError(#"{"dim": 4, "num_layers": 1, "layers": {"norm": "batch_norm", "mixer": {}}}"#)?.path
        == "layers.norm")
  }

  @Test func invalidJSONNamesTheFile() {
    #expect(throws: ConfigError.self) { try JSONValue.parse(Data("{\"dim\": ".utf8), source: "broken.json") }
    do {
      _ = try JSONValue.parse(Data("{\"dim\": ".utf8), source: "broken.json")
    } catch let error as ConfigError {
      #expect(error.file == "broken.json")
      #expect(error.problem.hasPrefix("invalid JSON"))
    } catch {
      Issue.record("unexpected \(error)")
    }
  }

  @Test func booleansAndNumbersStayDistinct() throws {
    let value = try Self.json(#"{"a": true, "b": 1, "c": 1.5, "d": [null, "x"]}"#)
    #expect(
      value
        == .object([
          "a": .bool(true), "b": .number(1), "c": .number(1.5), "d": .array([.null, .string("x")]),
        ]))
  }

  @Test func parametersAreNamedByReflection() throws {
    let model = try ModelBuilder.build(try Self.json(Self.base))
    let names = model.namedParameters().map(\.name)
    #expect(names.first == "embedding.weight")
    #expect(names.contains("blocks.0.mixer.kernel.amplitude"))
    #expect(names.contains("blocks.1.mixer.projection.weight"))
    #expect(names.contains("blocks.1.channelMixer.l3.bias"))
    #expect(names.contains("finalNorm.weight"))
    // SimpleRMSNorm has no parameters.
    #expect(!names.contains { $0.hasPrefix("blocks.0.norm1") })
  }

  @Test func everyShippedConfigDecodes() throws {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "../../Configs")
    let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
      $0.hasSuffix(".json")
    }
    #expect(!files.isEmpty)
    for file in files.sorted() {
      let model = try ModelBuilder.build(contentsOf: directory.appendingPathComponent(file))
      #expect(model.parameterCount > 0, "\(file)")
    }
  }
}

/// One registration style for every kind of component, and no silent replacement.
@Suite struct RegistrationTests {
  @Test func aTakenNameIsRefusedUnlessReplacing() throws {
    // The same type again changes nothing.
    try Registry.register(kernel: TNNKernel.self)
    try Registry.register(mixer: GTUFactory.self)
    try Registry.register(channelMixer: GLU.self)
    // Another component under a built-in's name is refused, naming the kind and the name.
    #expect(throws: RegistryError.nameTaken(kind: "kernel", name: "tnn")) {
      try Registry.register(kernel: "tnn") { config, context, generator in
        try TNNKernel(config: config, context: context, generator: &generator)
      }
    }
    #expect(throws: RegistryError.nameTaken(kind: "channel mixer", name: "glu")) {
      try Registry.register(channelMixer: MLPNamedGLU.self)
    }
    #expect(throws: RegistryError.nameTaken(kind: "mixer", name: "hyena")) {
      try Registry.register(mixer: "hyena") { config, context, generator in
        try HyenaOperatorFactory.make(config: config, context: context, generator: &generator)
      }
    }
    // Replacing is a choice (here with the same builder, so other suites see no change).
    try Registry.register(mixer: "gtu", replacing: true) { config, context, generator in
      try GTUFactory.make(config: config, context: context, generator: &generator)
    }
    try Registry.register(mixer: GTUFactory.self, replacing: true)
    #expect(Registry.mixerTypes.contains("gtu"))
  }
}

/// A channel mixer that claims the built-in GLU's name.
final class MLPNamedGLU: ConfigurableChannelMixer {
  static let typeName = "glu"
  let inner: MLP
  init(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator) throws {
    inner = try MLP(config: config, context: context, generator: &generator)
  }
  var width: Int { inner.width }
  func callAsFunction(_ x: Tensor) -> Tensor { inner(x) }
}

/// Configs that cannot fit are refused before anything is allocated.
@Suite struct MemoryGuardTests {
  @Test(arguments: [2_147_483_648, 1_000_000])
  func oversizeModelsAreRefusedWithTheEstimate(dim: Int) throws {
    let json = try JSONValue.parse(
      Data(
        #"{"vocab_size": 256, "dim": \#(dim), "num_layers": 2, "layers": {"mixer": {"type": "gtu", "kernel": {"type": "tnn"}}}}"#
          .utf8), source: "big.json")
    do {
      _ = try ModelBuilder.build(json, file: "big.json")
      Issue.record("a model of dim \(dim) was built")
    } catch let error as ConfigError {
      #expect(error.path == "dim")
      #expect(
        error.problem.contains("needs about") && error.problem.contains("available"), "\(error.problem)")
    }
  }

  @Test func estimatesGrowWithTheSizes() {
    let small = MemoryEstimate.parameterBytes(rows: 256, dim: 64, layers: 2, maxLength: 512)
    // At least the embedding and a GTU's three projections of width 3 dim per layer.
    #expect(small >= 4 * Double(256 * 64 + 2 * 9 * 64 * 64))
    #expect(MemoryEstimate.parameterBytes(rows: 256, dim: 128, layers: 2, maxLength: 512) > 2 * small)
    #expect(MemoryEstimate.describe(3 * 1024 * 1024 * 1024) == "3.0 GB")
  }
}
