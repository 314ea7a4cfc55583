import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import longconv

/// `longconv generate`'s sampling on a fixed logit vector: the empirical distribution of many
/// seeded draws against `softmax(logits / T)` restricted to the `K` largest, computed here in
/// Double.
@Suite struct TokenSamplerTests {
  /// Ties at 1.0 (tokens 1 and 6): with `K = 3` the cut falls between them and token 1 (the lower
  /// index) is kept.
  static let logits: [Float] = [2.0, 1.0, 0.5, -0.3, 3.0, 0.0, 1.0, -1.5]

  /// The expected distribution: `exp(l / T)` over the `K` largest (lower index first on ties),
  /// normalised; zero elsewhere.
  static func expected(temperature: Double, topK: Int?) -> [Double] {
    let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
    let kept = Set(order.prefix(topK ?? logits.count))
    let weights = logits.indices.map { kept.contains($0) ? exp(Double(logits[$0]) / temperature) : 0 }
    let total = weights.reduce(0, +)
    return weights.map { $0 / total }
  }

  @Test(
    arguments: [
      (1.0, nil), (0.5, 3), (2.0, 5), (1.3, 1), (0.7, 4), (3.0, 8),
    ] as [(Double, Int?)])
  func drawsFollowTheTemperedTopKSoftmax(temperature: Double, topK: Int?) {
    let draws = 40_000
    var sampler = TokenSampler(temperature: temperature, topK: topK, seed: 17)
    var counts = [Int](repeating: 0, count: Self.logits.count)
    for _ in 0..<draws { counts[sampler.sample(Self.logits)] += 1 }
    let p = Self.expected(temperature: temperature, topK: topK)
    for token in p.indices {
      if p[token] == 0 {
        #expect(
          counts[token] == 0,
          "T \(temperature) K \(String(describing: topK)): token \(token) outside the top K drawn \(counts[token]) times"
        )
        continue
      }
      // A binomial count: 5 standard deviations (about 6e-7 two-sided per token), plus one draw.
      let frequency = Double(counts[token]) / Double(draws)
      let sigma = (p[token] * (1 - p[token]) / Double(draws)).squareRoot()
      #expect(
        abs(frequency - p[token]) <= 5 * sigma + 1 / Double(draws),
        "T \(temperature) K \(String(describing: topK)): token \(token) frequency \(frequency), expected \(p[token]) (sigma \(sigma))"
      )
    }
  }

  /// Temperature 0 is greedy: always the largest logit, the first of tied ones, whatever the seed.
  @Test func temperatureZeroIsGreedy() {
    for seed: UInt64 in [0, 1, 99] {
      var sampler = TokenSampler(temperature: 0, topK: 2, seed: seed)
      #expect((0..<100).allSatisfy { _ in sampler.sample(Self.logits) == 4 })
      #expect(sampler.sample([0.5, 3, -1, 3]) == 1)
    }
    // A small temperature approaches greedy: the runner-up (1 below) has weight e^-100.
    var cold = TokenSampler(temperature: 0.01, topK: nil, seed: 3)
    #expect((0..<1000).allSatisfy { _ in cold.sample(Self.logits) == 4 })
  }

  /// The same seed gives the same draws.
  @Test func drawsAreReproducible() {
    var a = TokenSampler(temperature: 1, topK: 5, seed: 42)
    var b = TokenSampler(temperature: 1, topK: 5, seed: 42)
    #expect((0..<200).map { _ in a.sample(Self.logits) } == (0..<200).map { _ in b.sample(Self.logits) })
  }
}
