import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConv

/// Every registered kernel in every registered mixer: builds from a config, runs forward and
/// backward, and its loss falls over a few optimisation steps on a fixed batch.
@Suite struct ModelMatrixTests {
  init() { _ = TestComponents.registered }

  static var pairs: [(kernel: String, mixer: String)] {
    _ = TestComponents.registered
    return Registry.kernelTypes.flatMap { k in Registry.mixerTypes.map { (k, $0) } }
  }

  @Test(arguments: ModelMatrixTests.pairs.map { "\($0.kernel) in \($0.mixer)" })
  func lossFallsOnAFixedBatch(pair: String) throws {
    let parts = pair.components(separatedBy: " in ")
    let text = """
      {"dim": 8, "num_layers": 2, "max_length": 24, "seed": 3, "vocab_size": 16,
       "layers": {"mixer": {"type": "\(parts[1])", "kernel": {"type": "\(parts[0])"}}}}
      """
    let config = try JSONValue.parse(Data(text.utf8), source: pair)
    let model = try #require(try ModelBuilder.build(config) as? CausalLanguageModel)
    var rng = SeededGenerator(seed: 9)
    let (batch, length) = (2, 24)
    let tokens: [Int] = (0..<batch * (length + 1)).map { _ in Int(rng.next() % 16) }
    var inputs: [Int] = []
    var targets: [Int] = []
    for b in 0..<batch {
      let start = b * (length + 1)
      inputs += tokens[start..<start + length]
      targets += tokens[start + 1...start + length]
    }
    var optimizer = TestAdam(parameters: model.parameters, learningRate: 1e-2)
    var losses: [Float] = []
    for _ in 0..<8 {
      let loss = try model.loss(inputs: inputs, targets: targets, batch: batch, length: length)
      losses.append(loss.scalar)
      loss.backward()
      #expect(
        model.parameters.allSatisfy { $0.gradient.map { g in g.scalars.allSatisfy { $0.isFinite } } ?? true })
      optimizer.update()
    }
    #expect(losses.allSatisfy { $0.isFinite }, "\(pair): \(losses)")
    #expect(losses.last! < losses.first! - 0.05, "\(pair): \(losses)")
  }

  @Test func theMatrixCoversEveryBuiltIn() {
    for kernel in ["tnn", "hyena", "s4d", "ema", "explicit"] {
      #expect(Registry.kernelTypes.contains(kernel))
    }
    for mixer in ["gtu", "hyena", "ssm"] { #expect(Registry.mixerTypes.contains(mixer)) }
    #expect(Set(Registry.channelMixerTypes.filter { !$0.hasPrefix("test_") }) == ["glu", "mlp"])
  }

  @Test(arguments: ["layer_norm", "rms_norm", "simple_rms_norm"])
  func postNormBlocksWithEachNormTrain(norm: String) throws {
    let text = """
      {"dim": 8, "num_layers": 2, "max_length": 16, "vocab_size": 12,
       "layers": {"prenorm": false, "norm": "\(norm)", "channel_mixer": {"type": "mlp"},
                  "mixer": {"type": "gtu", "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}}}
      """
    let model = try #require(
      try ModelBuilder.build(JSONValue.parse(Data(text.utf8), source: norm)) as? CausalLanguageModel)
    #expect(model.blocks.allSatisfy { !$0.prenorm && $0.norm1.kind.rawValue == norm })
    let tokens = (0..<2 * 17).map { ($0 * 7) % 12 }
    var inputs: [Int] = []
    var targets: [Int] = []
    for b in 0..<2 {
      inputs += tokens[b * 17..<b * 17 + 16]
      targets += tokens[b * 17 + 1...b * 17 + 16]
    }
    var optimizer = TestAdam(parameters: model.parameters, learningRate: 1e-2)
    var losses: [Float] = []
    for _ in 0..<8 {
      let loss = try model.loss(inputs: inputs, targets: targets, batch: 2, length: 16)
      losses.append(loss.scalar)
      loss.backward()
      optimizer.update()
    }
    #expect(losses.last! < losses.first! - 0.05, "\(norm): \(losses)")
  }

  @Test func bidirectionalClassifierTrains() throws {
    let config = try JSONValue.parse(
      Data(
        """
        {"model": "classifier", "dim": 8, "num_layers": 1, "num_classes": 3, "vocab_size": 10, "max_length": 12,
         "layers": {"mixer": {"type": "test_project", "kernel": {"type": "test_geometric"}}}}
        """.utf8), source: "test")
    let model = try #require(try ModelBuilder.build(config) as? SequenceClassifier)
    let tokens = (0..<4 * 12).map { $0 % 10 }
    let labels = [0, 1, 2, 1]
    var optimizer = TestAdam(parameters: model.parameters, learningRate: 2e-2)
    var losses: [Float] = []
    for _ in 0..<10 {
      let loss = try model.logits(tokens, batch: 4, length: 12).crossEntropy(targets: labels)
      losses.append(loss.scalar)
      loss.backward()
      optimizer.update()
    }
    #expect(losses.last! < losses.first!, "\(losses)")
  }
}
