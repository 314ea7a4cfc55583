import Foundation
import LongConv
import LongConvRecurrence
import Testing

/// The README's conversion snippet, run as written (the config path made absolute).
@Suite struct ReadmeConversionTests {
  @Test func conversionQuickStart() throws {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../Configs/tnn_lm.json").path
    let model = try ModelBuilder.build(contentsOf: URL(fileURLWithPath: path))
    let recurrent = try RecurrentLanguageModel(
      model: model as! CausalLanguageModel, converter: ExactConverter(), length: 512)
    var state = recurrent.makeState()
    var logits = try recurrent.prefill(Array("To be".utf8).map(Int.init), state: &state)  // FFT, once
    for _ in 0..<20 {
      let next = logits.indices.max { logits[$0] < logits[$1] }!  // greedy
      logits = recurrent.step(next, state: &state)  // O(states)
    }
    #expect(recurrent.reports.map(\.maxStates) == [256, 256, 256, 256])
    #expect(state.position == 25 && logits.count == 256)
  }
}
