import Foundation
import LongConvIO
import LongConvInterop
import LongConvTensors
import Testing

@testable import LongConv

/// Models from HazyResearch/safari and state-spaces/s4 import and reproduce the outputs of the
/// authors' own modules (fixtures made by Tests/Fixtures/make_safari_fixtures.py from the
/// unmodified `hyena.py`, `simple_lm.py`, safari's `ssm/s4d.py` and s4's `models/s4/s4d.py`,
/// every parameter and buffer perturbed).
@Suite struct SafariImportTests {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../Fixtures")

  struct Expected: Decodable {
    let tokens: [Int]
    let eval_length: Int
    let mean_loss_nats: Double
    let last_position_logits: [Double]
    let loss_if_z_recomputed: Double?
  }

  static func load(_ fixture: String) throws -> (CausalLanguageModel, Expected) {
    let directory = fixtures.appendingPathComponent(fixture)
    let model = try SafariImport.importModel(
      stateDict: directory.appendingPathComponent("model.safetensors"),
      config: directory.appendingPathComponent("config.json"))
    let expected = try JSONDecoder().decode(
      Expected.self, from: Data(contentsOf: directory.appendingPathComponent("expected.json")))
    return (model, expected)
  }

  static let languageModels = ["safari-hyena-o2", "safari-hyena-o3", "safari-hyena-o4", "safari-s4d"]

  @Test(arguments: languageModels)
  func importedModelReproducesSafari(fixture: String) throws {
    let (model, expected) = try Self.load(fixture)
    // `longconv eval`'s chunks: every token but the first predicted once.
    let evaluation = try model.evaluate(tokens: expected.tokens, length: expected.eval_length)
    #expect(evaluation.tokens == expected.tokens.count - 1)
    #expect(
      Swift.abs(evaluation.lossNats - expected.mean_loss_nats) <= 2e-6,
      "loss \(evaluation.lossNats) vs safari's \(expected.mean_loss_nats)")
    let n = expected.eval_length
    let logits = try Tensor.withoutRecording {
      try model.logits(Array(expected.tokens[..<n]), batch: 1, length: n)
    }
    let last = logits.slice(axis: 1, n - 1..<n).scalars
    #expect(last.count == expected.last_position_logits.count)
    let worst = zip(last, expected.last_position_logits).map { Swift.abs(Double($0) - $1) }.max() ?? .infinity
    #expect(worst <= 1e-4, "largest last-position logit difference \(worst)")
  }

  /// The stored positional features matter: recomputing `z` from the formula moves the loss
  /// far beyond the tolerance above (and by what the authors' module says it moves).
  @Test(arguments: ["safari-hyena-o2", "safari-hyena-o3", "safari-hyena-o4"])
  func storedPositionalFeaturesAreRead(fixture: String) throws {
    let (model, expected) = try Self.load(fixture)
    for block in model.blocks {
      let filter = try #require(block.mixer.longConvKernel as? HyenaFilter)
      let z = HyenaFilter.positionalFeatures(
        maxLength: filter.maxLength, bands: (filter.positionalFeatures.shape[1] - 1) / 2)
      filter.positionalFeatures.withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] = Float(z[i]) }
      }
    }
    let loss = try model.evaluate(tokens: expected.tokens, length: expected.eval_length).lossNats
    #expect(Swift.abs(loss - expected.mean_loss_nats) > 1e-3)
    let reference = try #require(expected.loss_if_z_recomputed)
    #expect(Swift.abs(loss - reference) <= 2e-6, "recomputed-z loss \(loss) vs safari's \(reference)")
  }

  @Test func hyenaOptionsArriveInTheModel() throws {
    let (o3, _) = try Self.load("safari-hyena-o3")
    let mixer = try #require(o3.blocks[0].mixer as? HyenaOperator<HyenaFilter>)
    #expect(mixer.order == 3 && mixer.orderScales?.shape == [3] && !mixer.outerMixing)
    #expect(mixer.kernel.channels == 2 * 24 && mixer.kernel.shift == 0.1)
    #expect(!mixer.kernel.positionalFeatures.requiresGradient)  // lr_pos_emb 0: a buffer
    let (o4, _) = try Self.load("safari-hyena-o4")
    let mixer4 = try #require(o4.blocks[0].mixer as? HyenaOperator<HyenaFilter>)
    #expect(mixer4.order == 4 && mixer4.outerMixing && mixer4.kernel.normalized)
    #expect(o4.vocabulary == 256)  // 250 padded to a multiple of 8
    let (s4d, _) = try Self.load("safari-s4d")
    let block = try #require(s4d.blocks[0].mixer as? SSMBlock<S4DKernel>)
    #expect(!block.outputGLU && block.activation == .gelu && block.kernel.poleGroups == 2)
    let mlp = try #require(s4d.blocks[0].channelMixer as? MLP)
    #expect(mlp.activation == .geluTanh)
  }

  /// s4's `models/s4/s4d.py` block (per-channel poles, GLU output) is the toolkit's SSM block
  /// around its S4D kernel.
  @Test func s4BlockMatchesTheAuthorsModule() throws {
    let directory = Self.fixtures.appendingPathComponent("s4-s4d-block")
    let weights = try SafeTensors.read(contentsOf: directory.appendingPathComponent("block.safetensors"))
    let io = try SafeTensors.read(contentsOf: directory.appendingPathComponent("io.safetensors"))
    func tensor(_ name: String) throws -> Tensor { try #require(weights.tensor(name)) }
    let c = try tensor("kernel.C")  // [H, N/2, 2]
    let (h, modes) = (c.shape[0], c.shape[1])
    let parts = c.scalars
    let kernel = S4DKernel(
      logDt: try tensor("kernel.log_dt"), logAReal: try tensor("kernel.log_A_real"),
      aImag: try tensor("kernel.A_imag"),
      cReal: try Tensor(shape: [h, modes], scalars: (0..<h * modes).map { parts[2 * $0] }),
      cImag: try Tensor(shape: [h, modes], scalars: (0..<h * modes).map { parts[2 * $0 + 1] }),
      skipWeight: try tensor("D"))
    var generator = SeededGenerator(seed: 0)
    let block = SSMBlock(kernel: kernel, generator: &generator)
    let weight = try tensor("output_linear.0.weight")  // [2H, H, 1]
    block.output.weight.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: weight.scalars) }
    let bias = try tensor("output_linear.0.bias")
    try #require(block.output.bias).withUnsafeMutableBufferPointer {
      _ = $0.update(fromContentsOf: bias.scalars)
    }
    let input = try #require(io.tensor("input"))
    let expected = try #require(io.tensor("output")).scalars
    let output = try Tensor.withoutRecording { try block(input) }.scalars
    let scale = expected.map { Swift.abs(Double($0)) }.max()!
    let worst = zip(output, expected).map { Swift.abs(Double($0) - Double($1)) }.max()!
    #expect(worst <= 1e-5 * scale, "largest difference \(worst) (outputs up to \(scale))")
  }

  // MARK: Malformed imports

  /// Imports the o3 fixture with its tensors and config edited; returns the error thrown.
  func importError(
    fixture: String = "safari-hyena-o3", tensors edit: (inout [String: Tensor]) -> Void = { _ in },
    config editConfig: (inout [String: JSONValue]) -> Void = { _ in }
  ) throws -> any Error {
    let directory = Self.fixtures.appendingPathComponent(fixture)
    let original = try SafeTensors.read(contentsOf: directory.appendingPathComponent("model.safetensors"))
    var tensors: [String: Tensor] = [:]
    for name in original.names { tensors[name] = original.tensor(name) }
    edit(&tensors)
    guard
      case .object(var top) = try JSONValue.read(contentsOf: directory.appendingPathComponent("config.json"))
    else { throw CancellationError() }
    if case .object(var model)? = top["model"] {
      editConfig(&model)
      top["model"] = .object(model)
    } else {
      editConfig(&top)
    }
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("safari-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let file = scratch.appendingPathComponent("model.safetensors")
    try SafeTensors.write(tensors, to: file)
    let config = scratch.appendingPathComponent("config.json")
    try Data(JSONValue.object(top).serialized()).write(to: config)
    do {
      _ = try SafariImport.importModel(stateDict: file, config: config)
    } catch {
      return error
    }
    Issue.record("the edited import succeeded")
    return CancellationError()
  }

  static func layer(_ edit: @escaping (inout [String: JSONValue]) -> Void) -> (inout [String: JSONValue]) ->
    Void
  {
    { model in
      guard case .object(var layer)? = model["layer"] else { return }
      edit(&layer)
      model["layer"] = .object(layer)
    }
  }

  @Test func missingTensorIsNamed() throws {
    let error = try importError(tensors: { $0["backbone.layers.1.mixer.filter_fn.pos_emb.z"] = nil })
    let checkpoint = try #require(error as? CheckpointError)
    #expect(checkpoint.tensor == "backbone.layers.1.mixer.filter_fn.pos_emb.z")
    #expect(checkpoint.problem.hasPrefix("missing (needed for blocks.1.mixer.kernel.positionalFeatures"))
  }

  @Test func extraTensorIsNamed() throws {
    let error = try importError(tensors: { $0["backbone.layers.0.mixer.extra"] = Tensor.zeros([2]) })
    let checkpoint = try #require(error as? CheckpointError)
    #expect(checkpoint.tensor == "backbone.layers.0.mixer.extra")
    #expect(checkpoint.problem.hasPrefix("not part of the model the config describes"))
  }

  @Test func misshapenTensorIsNamed() throws {
    let error = try importError(tensors: {
      $0["backbone.layers.0.mixer.ord_proj_w"] = Tensor.zeros([3, 2, 2])
    })
    let checkpoint = try #require(error as? CheckpointError)
    #expect(checkpoint.tensor == "backbone.layers.0.mixer.ord_proj_w")
    #expect(checkpoint.problem == "shape [3, 2, 2] does not match the config's [3, 1, 1]")
  }

  @Test func nonFiniteTensorIsNamed() throws {
    let error = try importError(tensors: { $0["backbone.ln_f.bias"] = Tensor(repeating: .nan, shape: [24]) })
    #expect((error as? CheckpointError)?.problem == "holds values that are not finite")
  }

  @Test func tiedCopiesAreCheckedNotTrusted() throws {
    let head = try importError(tensors: { $0["lm_head.weight"] = Tensor.zeros([256, 24]) })
    #expect((head as? CheckpointError)?.tensor == "lm_head.weight")
    #expect(
      (head as? CheckpointError)?.problem.hasPrefix("differs from backbone.embeddings.word_embeddings.weight")
        == true)
    let freq = try importError(tensors: {
      $0["backbone.layers.1.mixer.filter_fn.implicit_filter.3.freq"] = Tensor(repeating: 3, shape: [1, 8])
    })
    #expect((freq as? CheckpointError)?.tensor == "backbone.layers.1.mixer.filter_fn.implicit_filter.3.freq")
  }

  @Test(arguments: [
    ("num_heads", JSONValue.number(2), "model.layer.num_heads"),
    ("inner_factor", .number(2), "model.layer.inner_factor"),
    ("num_blocks", .number(4), "model.layer.num_blocks"),
    ("filter_cls", .string("implicit_freq"), "model.layer.filter_cls"),
    ("activation", .string("laplace"), "model.layer.activation"),
    ("channels", .number(1), "model.layer.channels"),
    ("bogus_option", .bool(true), "model.layer.bogus_option"),
  ])
  func unsupportedLayerOptionsAreRefusedByName(key: String, value: JSONValue, path: String) throws {
    let error = try importError(config: Self.layer { $0[key] = value })
    #expect((error as? ConfigError)?.path == path, "\(error)")
  }

  @Test(arguments: [
    ("attn_layer_idx", JSONValue.array([.number(1)]), "model.attn_layer_idx"),
    ("max_position_embeddings", .number(64), "model.max_position_embeddings"),
    ("_name_", .string("lm"), "model._name_"),
    ("unknown_model_key", .number(1), "model.unknown_model_key"),
  ])
  func unsupportedModelOptionsAreRefusedByName(key: String, value: JSONValue, path: String) throws {
    let error = try importError(config: { $0[key] = value })
    #expect((error as? ConfigError)?.path == path, "\(error)")
  }

  @Test func unknownLayerIsRefused() throws {
    let error = try importError(config: Self.layer { $0["_name_"] = .string("h3") })
    #expect((error as? ConfigError)?.path == "model.layer._name_")
  }

  @Test(arguments: [
    ("channels", JSONValue.number(2), "layer.channels"),
    ("bidirectional", .bool(true), "layer.bidirectional"),
    ("transposed", .bool(true), "layer.transposed"),
    ("postact", .string("glu"), "layer.postact"),
    ("activation", .string("glu"), "layer.activation"),
    ("n_ssm", .number(3), "layer.n_ssm"),
  ])
  func unsupportedS4DOptionsAreRefusedByName(key: String, value: JSONValue, path: String) throws {
    let error = try importError(fixture: "safari-s4d", config: Self.layer { $0[key] = value })
    #expect((error as? ConfigError)?.path == path, "\(error)")
  }

  @Test func trainingOnlyKeysAreAccepted() throws {
    let directory = Self.fixtures.appendingPathComponent("safari-hyena-o2")
    guard
      case .object(var top) = try JSONValue.read(contentsOf: directory.appendingPathComponent("config.json"))
    else { throw CancellationError() }
    Self.layer {
      $0["lr"] = .number(3e-4)
      $0["wd"] = .number(0.1)
      $0["local_order"] = .number(3)
    }(&top)
    top["resid_dropout"] = .number(0.1)
    top["embed_dropout"] = .number(0.1)
    let config = try SafariImport.config(fromSafari: .object(top), file: "config.json")
    #expect(try ModelBuilder.build(config) is CausalLanguageModel)
  }
}
