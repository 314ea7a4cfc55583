import Foundation
import LongConvIO
import LongConvTensors
import Testing

@testable import LongConv

/// Checkpoints: round trips of a small model, byte-identical re-saves, atomic replacement,
/// interrupted saves, and the errors for missing, extra and misshapen tensors.
@Suite struct CheckpointTests {
  static let config = """
    {"dim": 8, "num_layers": 1, "max_length": 16,
     "layers": {"mixer": {"type": "gtu", "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}}}
    """

  static func model(seed: Int = 0) throws -> CausalLanguageModel {
    let text = config.replacingOccurrences(of: "{\"dim\"", with: "{\"seed\": \(seed), \"dim\"")
    return try #require(
      try ModelBuilder.build(JSONValue.parse(Data(text.utf8), source: "test.json")) as? CausalLanguageModel)
  }

  static let tokens = [1, 5, 9, 200, 3, 3, 7, 0, 42, 17]

  static func logits(_ model: any SequenceModel) throws -> [Float] {
    let lm = try #require(model as? CausalLanguageModel)
    return try lm.logits(tokens, batch: 2, length: 5).scalars
  }

  /// Adds `delta` to every scalar of the first parameter.
  static func perturb(_ model: any SequenceModel, by delta: Float = 0.25) {
    let first = model.namedParameters()[0].tensor
    first.withUnsafeMutableBufferPointer { buffer in
      for i in buffer.indices { buffer[i] += delta * Float(i % 7 + 1) }
    }
  }

  static func loadError(_ directory: URL) -> CheckpointError? {
    do {
      _ = try Checkpoint.load(from: directory)
      Issue.record("expected an error")
      return nil
    } catch let error as CheckpointError {
      return error
    } catch {
      Issue.record("unexpected error \(error)")
      return nil
    }
  }

  @Test func roundTripRestoresParametersAndLogits() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let original = try Self.model()
    Self.perturb(original)
    let directory = scratch.file("ckpt")
    try Checkpoint.save(original, to: directory)
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == [
        "config.json", "model.safetensors",
      ])
    #expect(try scratch.listing() == ["ckpt"])

    let loaded = try Checkpoint.load(from: directory)
    #expect(loaded.config == original.config)
    let (a, b) = (original.namedParameters(), loaded.namedParameters())
    #expect(a.map(\.name) == b.map(\.name))
    for (p, q) in zip(a, b) {
      #expect(p.tensor.shape == q.tensor.shape)
      #expect(p.tensor.scalars == q.tensor.scalars, "\(p.name)")
    }
    // A fresh model from the same config differs (the perturbation was saved).
    #expect(try Self.logits(Self.model()) != Self.logits(original))
    #expect(try Self.logits(loaded) == Self.logits(original))
  }

  @Test func saveLoadSaveGivesIdenticalBytes() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let model = try Self.model(seed: 4)
    Self.perturb(model)
    let first = scratch.file("one")
    let second = scratch.file("two")
    try Checkpoint.save(model, to: first)
    try Checkpoint.save(try Checkpoint.load(from: first), to: second)
    for name in [Checkpoint.weightsFile, Checkpoint.configFile] {
      let x = try Data(contentsOf: first.appendingPathComponent(name))
      let y = try Data(contentsOf: second.appendingPathComponent(name))
      #expect(x == y, "\(name)")
    }
  }

  @Test func savingReplacesAnEarlierCheckpointAndLeavesNoSiblings() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let directory = scratch.file("ckpt")
    let old = try Self.model(seed: 1)
    let new = try Self.model(seed: 2)
    try Checkpoint.save(old, to: directory)
    try Checkpoint.save(new, to: directory)
    #expect(try scratch.listing() == ["ckpt"])
    #expect(try Self.logits(Checkpoint.load(from: directory)) == Self.logits(new))
    // An empty directory may be the target too.
    let empty = scratch.file("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: false)
    try Checkpoint.save(new, to: empty)
    #expect(try Self.logits(Checkpoint.load(from: empty)) == Self.logits(new))
  }

  @Test func interruptedSavesLeaveTheOldCheckpointLoadable() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let directory = scratch.file("ckpt")
    let old = try Self.model(seed: 1)
    try Checkpoint.save(old, to: directory)
    let oldLogits = try Self.logits(old)

    // Crash while writing the new checkpoint: a stray temporary directory with a partial
    // weights file and a stray temporary file inside it.
    let stray = scratch.file(".ckpt.tmp-CRASHED")
    try FileManager.default.createDirectory(at: stray, withIntermediateDirectories: false)
    try Data([1, 2, 3]).write(to: stray.appendingPathComponent("model.safetensors"))
    try Data([4]).write(to: stray.appendingPathComponent(".config.json.tmp-CRASHED"))
    #expect(try Self.logits(Checkpoint.load(from: directory)) == oldLogits)

    // Crash between the two renames: the old checkpoint is aside, the target is absent.
    try FileManager.default.moveItem(at: directory, to: Checkpoint.previousURL(directory))
    #expect(try Self.logits(Checkpoint.load(from: directory)) == oldLogits)

    // The next save puts a checkpoint in place and tidies `.previous` away.
    let new = try Self.model(seed: 2)
    try Checkpoint.save(new, to: directory)
    #expect(try Self.logits(Checkpoint.load(from: directory)) == Self.logits(new))
    #expect(try scratch.listing() == [".ckpt.tmp-CRASHED", "ckpt"])

    // Crash after the swap but before removing the old one: the new one loads, and the
    // leftover is removed by the next save.
    try Checkpoint.save(old, to: scratch.file("copy"))
    try FileManager.default.moveItem(at: scratch.file("copy"), to: Checkpoint.previousURL(directory))
    #expect(try Self.logits(Checkpoint.load(from: directory)) == Self.logits(new))
    try Checkpoint.save(new, to: directory)
    #expect(try scratch.listing() == [".ckpt.tmp-CRASHED", "ckpt"])
  }

  @Test func failedSavesCreateNothing() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let model = try Self.model()

    // The parent does not exist.
    #expect(throws: CheckpointError.self) { try Checkpoint.save(model, to: scratch.file("no/such/ckpt")) }
    #expect(try scratch.listing().isEmpty)

    // The target is a file.
    let file = scratch.file("file")
    try Data([1]).write(to: file)
    do {
      try Checkpoint.save(model, to: file)
      Issue.record("expected an error")
    } catch let error as CheckpointError {
      #expect(error.problem == "exists and is not a directory")
      #expect(error.file == file.path)
    }
    // The target is a directory that is not a checkpoint: it is not replaced.
    let other = scratch.file("other")
    try FileManager.default.createDirectory(at: other, withIntermediateDirectories: false)
    try Data([2]).write(to: other.appendingPathComponent("notes.txt"))
    do {
      try Checkpoint.save(model, to: other)
      Issue.record("expected an error")
    } catch let error as CheckpointError {
      #expect(error.problem.contains("is not a checkpoint"))
    }
    #expect(try scratch.listing() == ["file", "other"])
    #expect(try FileManager.default.contentsOfDirectory(atPath: other.path) == ["notes.txt"])
  }

  // MARK: Load errors

  /// Saves a model, then rewrites its weights file with `edit` applied to the tensors.
  static func checkpoint(in scratch: ScratchDirectory, edit: (inout [String: Tensor]) throws -> Void) throws
    -> URL
  {
    let directory = scratch.file("ckpt")
    try Checkpoint.save(try model(), to: directory)
    let weights = directory.appendingPathComponent(Checkpoint.weightsFile)
    let stored = try SafeTensors.read(contentsOf: weights)
    var tensors: [String: Tensor] = [:]
    for name in stored.names { tensors[name] = stored.tensor(name)! }
    try edit(&tensors)
    try SafeTensors.write(tensors, to: weights)
    return directory
  }

  /// `loadState(into:from:)` (a run started from another run's weights): a model built from the
  /// same config takes every parameter and buffer; a model of another shape is refused by name
  /// and left as it was.
  @Test func stateLoadsIntoAModelBuiltElsewhere() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let trained = try Self.model()
    Self.perturb(trained)
    let directory = scratch.file("ckpt")
    try Checkpoint.save(trained, to: directory)
    let fresh = try Self.model(seed: 9)
    #expect(try Self.logits(fresh) != Self.logits(trained))
    try Checkpoint.loadState(into: fresh, from: directory)
    #expect(try Self.logits(fresh) == Self.logits(trained))
    for ((name, p), (_, q)) in zip(trained.namedState(), fresh.namedState()) {
      #expect(p.scalars == q.scalars, "\(name)")
    }

    let wider = try #require(
      try ModelBuilder.build(
        JSONValue.parse(
          Data(Self.config.replacingOccurrences(of: "\"dim\": 8", with: "\"dim\": 12").utf8), source: "t"))
        as? CausalLanguageModel)
    let before = try Self.logits(wider)
    do {
      try Checkpoint.loadState(into: wider, from: directory)
      Issue.record("a model of another width took the checkpoint")
    } catch let error as CheckpointError {
      #expect(error.tensor == "embedding.weight")
      #expect(error.problem == "shape mismatch: expected [256, 12], found [256, 8]")
    }
    #expect(try Self.logits(wider) == before)
  }

  @Test func loadRejectsMisshapenTensors() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let directory = try Self.checkpoint(in: scratch) { tensors in
      tensors["embedding.weight"] = Tensor(repeating: 0, shape: [256, 4])
    }
    let error = try #require(Self.loadError(directory))
    #expect(error.file.hasSuffix("ckpt/model.safetensors"))
    #expect(error.tensor == "embedding.weight")
    #expect(error.problem == "shape mismatch: expected [256, 8], found [256, 4]")
    #expect(error.description.contains(#"tensor "embedding.weight""#))
  }

  @Test func loadRejectsMissingTensors() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let names = try Self.model().namedParameters().map(\.name)
    let directory = try Self.checkpoint(in: scratch) { tensors in
      tensors[names[1]] = nil
      tensors[names[3]] = nil
    }
    let error = try #require(Self.loadError(directory))
    #expect(error.tensor == names[1])
    #expect(
      error.problem
        == "missing; the model needs 2 parameter(s) the file lacks: \(names[1]), \(names[3])")
  }

  @Test func loadRejectsExtraTensors() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let directory = try Self.checkpoint(in: scratch) { tensors in
      tensors["zz.extra"] = Tensor([1])
      tensors["head.weight"] = Tensor([2])
    }
    let error = try #require(Self.loadError(directory))
    #expect(error.tensor == "head.weight")
    #expect(
      error.problem == "not a parameter or buffer of the model; unexpected tensor(s): head.weight, zz.extra")
  }

  @Test func loadReportsMissingDirectoriesFilesAndBadConfigs() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let missing = scratch.file("nothing")
    #expect(Self.loadError(missing)?.problem == "no such checkpoint directory")

    let directory = scratch.file("ckpt")
    try Checkpoint.save(try Self.model(), to: directory)
    let weights = directory.appendingPathComponent(Checkpoint.weightsFile)
    try Data([1, 2]).write(to: weights)
    do {
      _ = try Checkpoint.load(from: directory)
      Issue.record("expected an error")
    } catch let error as SafeTensorsError {
      #expect(error.file == weights.path)
    }
    try FileManager.default.removeItem(at: weights)
    do {
      _ = try Checkpoint.load(from: directory)
      Issue.record("expected an error")
    } catch let error as SafeTensorsError {
      #expect(error.problem.contains("cannot read the file"))
    }

    try Data(#"{"dim": 8}"#.utf8).write(to: directory.appendingPathComponent(Checkpoint.configFile))
    do {
      _ = try Checkpoint.load(from: directory)
      Issue.record("expected an error")
    } catch let error as ConfigError {
      #expect(error.file?.hasSuffix("ckpt/config.json") == true)
    }
  }

  /// Buffers (Hyena's positional features, times and deltas) are saved and loaded with the
  /// parameters; a checkpoint written before they were buffers (without them) still loads,
  /// keeping the config's values.
  @Test func buffersRoundTripAndMayBeAbsent() throws {
    let json = """
      {"model": "causal_lm", "vocab_size": 30, "dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "hyena", "order": 3, "kernel": {"type": "hyena", "filter_width": 4, "emb_dim": 3}}}}
      """
    let model = try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "test")) as? CausalLanguageModel)
    #expect(
      model.namedBuffers().map(\.name) == [
        "blocks.0.mixer.kernel.positionalFeatures", "blocks.0.mixer.kernel.times",
        "blocks.0.mixer.kernel.deltas",
      ])
    let filter = try #require(model.blocks[0].mixer.longConvKernel as? HyenaFilter)
    filter.positionalFeatures.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] += 0.25 } }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "buffers-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    try Checkpoint.save(model, to: directory)
    let loaded = try #require(try Checkpoint.load(from: directory) as? CausalLanguageModel)
    let tokens = Array(0..<12)
    let (a, b) = try Tensor.withoutRecording {
      (
        try model.logits(tokens, batch: 1, length: 12).scalars,
        try loaded.logits(tokens, batch: 1, length: 12).scalars
      )
    }
    #expect(a == b)
    // Without the buffers: the formula's values.
    let weights = directory.appendingPathComponent(Checkpoint.weightsFile)
    let stored = try SafeTensors.read(contentsOf: weights)
    var kept: [String: Tensor] = [:]
    for name in stored.names where !name.contains("kernel.positionalFeatures") {
      kept[name] = stored.tensor(name)
    }
    try SafeTensors.write(kept, to: weights)
    let old = try #require(try Checkpoint.load(from: directory) as? CausalLanguageModel)
    let oldFilter = try #require(old.blocks[0].mixer.longConvKernel as? HyenaFilter)
    #expect(oldFilter.positionalFeatures.scalars.map { $0 + 0.25 } == filter.positionalFeatures.scalars)
  }

  /// `pad_vocab_size_multiple` pads the rows; `init: gpt2` is safari's scheme.
  @Test func paddedVocabularyAndGPT2Initialisation() throws {
    let json = """
      {"model": "causal_lm", "vocab_size": 250, "pad_vocab_size_multiple": 64, "dim": 32, "num_layers": 4,
       "init": "gpt2", "layers": {"norm": "layer_norm", "mixer": {"type": "hyena", "kernel": {"type": "hyena", "filter_width": 16}},
       "channel_mixer": {"type": "mlp", "activation": "gelu_tanh"}}}
      """
    let model = try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "test")) as? CausalLanguageModel)
    #expect(model.vocabulary == 256)
    func std(_ t: Tensor) -> Double {
      let v = t.scalars.map(Double.init)
      return (v.map { $0 * $0 }.reduce(0, +) / Double(v.count)).squareRoot()
    }
    let block = model.blocks[1]
    let mixer = try #require(block.mixer as? HyenaOperator<HyenaFilter>)
    let mlp = try #require(block.channelMixer as? MLP)
    #expect(abs(std(model.embedding.weight) - 0.02) < 0.002)
    #expect(abs(std(mixer.inProj.weight) - 0.02) < 0.002)
    #expect(abs(std(mixer.kernel.implicitFilter[1].weight) - 0.02) < 0.004)
    let residual = 0.02 / 8.0.squareRoot()
    #expect(abs(std(mixer.outProj.weight) - residual) < 0.15 * residual)
    #expect(abs(std(mlp.l2.weight) - residual) < 0.1 * residual)
    #expect(abs(std(mlp.l1.weight) - 0.02) < 0.002)
    #expect(mixer.inProj.bias!.scalars.allSatisfy { $0 == 0 } && mlp.l2.bias!.scalars.allSatisfy { $0 == 0 })
    #expect(mixer.kernel.implicitFilter[0].bias!.scalars.allSatisfy { $0 == 0 })
  }
}
