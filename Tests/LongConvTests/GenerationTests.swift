import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConv

/// Generation by recomputation with a padded context (`nextTokenLogits(after:)`): a handful
/// of lengths (so of FFT sizes and plans) for a long generation, the same logits as the
/// unpadded forward pass and the same greedy tokens.
@Suite struct GenerationTests {
  static let configs = [
    """
    {"vocab_size": 40, "dim": 16, "num_layers": 2, "max_length": 300,
     "layers": {"mixer": {"type": "gtu", "expand_ratio": 2,
                          "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 2, "gamma": 0.98}},
                "channel_mixer": {"type": "glu", "hidden_dim": 16}}}
    """,
    """
    {"vocab_size": 40, "dim": 16, "num_layers": 2, "max_length": 300,
     "layers": {"mixer": {"type": "hyena", "order": 2, "short_filter_width": 3,
                          "kernel": {"type": "hyena", "emb_dim": 5, "filter_width": 16}},
                "channel_mixer": {"type": "mlp", "hidden_dim": 32}}}
    """,
    """
    {"vocab_size": 40, "dim": 16, "num_layers": 2, "max_length": 300,
     "layers": {"mixer": {"type": "ssm", "kernel": {"type": "s4d", "state_size": 8}},
                "channel_mixer": {"type": "glu", "hidden_dim": 16}}}
    """,
  ]

  func model(_ index: Int) throws -> CausalLanguageModel {
    try ModelBuilder.build(JSONValue.parse(Data(Self.configs[index].utf8), source: "generation"))
      as! CausalLanguageModel
  }

  @Test func paddingLengthsAreFewAndBounded() throws {
    let model = try model(0)
    var lengths = Set<Int>()
    for count in 1...300 {
      let length = model.generationLength(for: count)
      #expect(length >= count && length <= max(count, 300), "count \(count): \(length)")
      #expect(
        count <= 16 || Double(length) <= 1.25 * Double(count), "count \(count): \(length) pads over 25%")
      lengths.insert(length)
    }
    #expect(lengths.count <= 20, "\(lengths.count) lengths for contexts of 1 ... 300")
  }

  /// The padded pass's logits equal the last row of the unpadded forward pass (up to the
  /// rounding of another FFT size), for every family.
  @Test(arguments: 0..<3)
  func paddedLogitsMatchTheForwardPass(_ index: Int) throws {
    let model = try model(index)
    var generator = SeededGenerator(seed: UInt64(index))
    for count in [1, 7, 17, 45, 129, 300] {
      let context = (0..<count).map { _ in Int(generator.next() % 40) }
      let padded = try model.nextTokenLogits(after: context)
      let full = try Tensor.withoutRecording { try model.logits(context, batch: 1, length: count) }.scalars
      let reference = Array(full[(count - 1) * 40..<count * 40]).map(Double.init)
      expectClose(padded.map(Double.init), reference, tolerance: 1e-5, "family \(index), context \(count)")
    }
  }

  /// 120 greedy tokens: the same as with the unpadded pass. (The plans themselves are cached
  /// per FFT size process-wide, where other suites plan concurrently, so their reuse is shown
  /// by the padded lengths above and by the speed in Benchmarks/RESULTS.md, not counted here.)
  @Test(arguments: 0..<3)
  func greedyTokensAreTheSame(_ index: Int) throws {
    let model = try model(index)
    func greedy(_ logits: [Float]) -> Int { logits.indices.max { logits[$0] < logits[$1] }! }
    var unpadded = [3, 1, 4]
    var padded = unpadded
    for _ in 0..<120 {
      let full = try Tensor.withoutRecording { try model.logits(unpadded, batch: 1, length: unpadded.count) }
      unpadded.append(greedy(Array(full.scalars[(unpadded.count - 1) * 40..<unpadded.count * 40])))
      padded.append(greedy(try model.nextTokenLogits(after: padded)))
    }
    #expect(padded == unpadded, "family \(index)")
  }
}
