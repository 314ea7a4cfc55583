import Foundation
import LongConv
import Testing

@testable import LongConvTensors

/// Activation recomputation gives the gradients of storing activations, and keeps fewer of
/// them alive.
@Suite struct RecomputationTests {
  static func model(recompute: Bool, mixer: String) throws -> CausalLanguageModel {
    let json = """
      {"model": "causal_lm", "vocab_size": 64, "dim": 16, "num_layers": 3, "max_length": 48, "seed": 4,
       "layers": {"norm": "layer_norm", "recompute_activations": \(recompute), "mixer": \(mixer),
                  "channel_mixer": {"type": "mlp", "activation": "gelu_tanh"}}}
      """
    return try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "recompute")) as? CausalLanguageModel)
  }

  @Test(arguments: [
    #"{"type": "hyena", "order": 3, "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5}}"#,
    #"{"type": "gtu", "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}"#,
    #"{"type": "ssm", "kernel": {"type": "s4d", "state_size": 8}}"#,
  ])
  func gradientsEqualThoseOfStoredActivations(mixer: String) throws {
    var generator = SeededGenerator(seed: 2)
    let tokens = (0..<96).map { _ in Int(generator.nextUniform() * 64) % 64 }
    func gradients(recompute: Bool) throws -> (loss: Float, gradients: [String: [Float]], nodes: Int) {
      let model = try Self.model(recompute: recompute, mixer: mixer)
      let loss = try model.loss(
        inputs: Array(tokens[0..<94]).enumerated().filter { $0.offset % 47 != 46 }.map(\.element),
        targets: Array(tokens[1..<95]).enumerated().filter { $0.offset % 47 != 46 }.map(\.element), batch: 2,
        length: 46)
      // The graph the backward pass walks: what the step keeps alive.
      let nodes = Tensor.topologicalOrder(from: try #require(loss.node)).count
      loss.backward()
      return (
        loss.scalar,
        Dictionary(
          uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor.gradient!.scalars) }),
        nodes
      )
    }
    let stored = try gradients(recompute: false)
    let recomputed = try gradients(recompute: true)
    #expect(stored.loss == recomputed.loss)
    #expect(stored.gradients.keys.sorted() == recomputed.gradients.keys.sorted())
    for (name, a) in stored.gradients {
      let b = recomputed.gradients[name]!
      let scale = a.map { abs($0) }.max()!
      let worst = zip(a, b).map { abs($0 - $1) }.max()!
      #expect(scale > 0 && worst <= 1e-6 * scale, "\(name): \(worst) of \(scale)")
    }
    // The forward pass records one node per block instead of every op of every block.
    #expect(recomputed.nodes < stored.nodes / 3, "\(recomputed.nodes) vs \(stored.nodes) nodes")
  }
}
