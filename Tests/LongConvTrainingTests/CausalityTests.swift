import Foundation
import LongConvTensors
import Testing

@testable import LongConv

/// Causality of every mixer a causal language model uses, numerically (safari's advice for
/// the synthetics: a layer whose training accuracy reaches 100% over every position is
/// probably not causal): the gradient of output position `i` with respect to input position
/// `j > i` must vanish.
///
/// The long convolutions run through FFTs of `2L` points, whose rounding mixes every input
/// into every output at the level of Float's epsilon; their causal pullback clears that
/// rounding after the last position the output gradient reaches, and every other op works
/// position by position, so a future gradient must be exactly zero.
@Suite struct CausalityTests {
  static let mixers: [(name: String, json: String)] = [
    (
      "gtu + tnn",
      #"{"type": "gtu", "expand_ratio": 2, "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1}}"#
    ),
    ("gtu + s4d", #"{"type": "gtu", "expand_ratio": 2, "kernel": {"type": "s4d", "state_size": 4}}"#),
    (
      "hyena order 2",
      #"{"type": "hyena", "order": 2, "kernel": {"type": "hyena", "emb_dim": 3, "filter_width": 8}}"#
    ),
    (
      "hyena order 3",
      #"{"type": "hyena", "order": 3, "outer_mixing": true, "post_order_ffn": true, "activation": "gelu_tanh", "kernel": {"type": "hyena", "emb_dim": 5, "filter_width": 8}}"#
    ),
    ("ssm + s4d", #"{"type": "ssm", "kernel": {"type": "s4d", "state_size": 4}}"#),
    (
      "ssm + s4d, linear output",
      #"{"type": "ssm", "output": "linear", "kernel": {"type": "s4d", "state_size": 4}}"#
    ),
    (
      "ssm + ema",
      #"{"type": "ssm", "output": "linear", "activation": "gelu", "kernel": {"type": "ema", "ndim": 4}}"#
    ),
    ("hyena + explicit", #"{"type": "hyena", "order": 2, "kernel": {"type": "explicit"}}"#),
    ("gtu + explicit", #"{"type": "gtu", "expand_ratio": 2, "kernel": {"type": "explicit"}}"#),
  ]

  @Test(arguments: mixers.map(\.name))
  func noOutputDependsOnALaterInput(_ name: String) throws {
    let json = try #require(Self.mixers.first { $0.name == name }).json
    let (width, length) = (4, 24)  // past 16 lags: the long kernels take the FFT path
    var generator = SeededGenerator(seed: 3)
    let mixer = try Registry.makeMixer(
      ConfigReader(JSONValue.parse(Data(json.utf8), source: name)),
      context: MixerContext(width: width, direction: .causal, maxLength: length), generator: &generator)
    let x = Tensor.normal([2, length, width], generator: &generator).requiringGradient()
    let weights = Tensor.normal([2, 1, width], generator: &generator)
    var exactZeros = 0
    var worst: Float = 0
    var future = 0
    for i in 0..<length {
      x.zeroGradient()
      let y = try mixer(x)
      (y.slice(axis: 1, i..<i + 1) * weights).sum().backward()
      let g = try #require(x.gradient).scalars
      var largest: Float = 0
      for b in 0..<2 {
        for j in 0...i {
          for c in 0..<width { largest = max(largest, abs(g[(b * length + j) * width + c])) }
        }
      }
      #expect(largest > 0, "\(name): output \(i) depends on no input")
      for b in 0..<2 {
        for j in (i + 1)..<length {
          for c in 0..<width {
            let value = abs(g[(b * length + j) * width + c])
            future += 1
            if value == 0 { exactZeros += 1 }
            worst = max(worst, value / largest)
            #expect(
              value == 0, "\(name): d y[\(i)] / d x[\(j)] = \(value) (largest past gradient \(largest))")
          }
        }
      }
    }
    print(
      "\(name): \(exactZeros) of \(future) future gradients exactly zero, the largest \(worst) of its output's"
    )
  }
}
