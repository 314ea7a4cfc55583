import Foundation
import LongConv
import LongConvRecurrence
import Testing

/// The state computed for a prompt in one pass equals the state reached by stepping it.
@Suite struct RecurrentConvolutionTests {
  @Test(arguments: [0.9, 1.0])
  func stateAfterPromptEqualsStepping(_ radius: Double) throws {
    // Two channels with different poles (not shared), one with a skip; decaying poles let the
    // one-pass state skip the early inputs, unit-circle ones cannot.
    let system = DiagonalStateSpace(
      polesReal: [[radius * 0.6, radius], [radius * Foundation.cos(2.0)]],
      polesImaginary: [[radius * 0.8, 0], [radius * Foundation.sin(2.0)]],
      residuesReal: [[0.3, -0.2], [1.5]], residuesImaginary: [[0.1, 0], [-0.4]], skip: [0.5, 0])
    let recurrence = RecurrentConvolution(system)
    let length = 3000
    let x = randomInputs(length: length, channels: 2, seed: 8)
    var stepped = recurrence.makeState()
    var y = [Float](repeating: 0, count: 2)
    x.withUnsafeBufferPointer { input in
      for i in 0..<length { recurrence.step(input.baseAddress! + 2 * i, into: &y, state: &stepped) }
    }
    let direct = x.withUnsafeBufferPointer { recurrence.state(after: $0, length: length) }
    for n in 0..<recurrence.stateCount {
      let scale = max(1, Swift.abs(stepped.re[n]) + Swift.abs(stepped.im[n]))
      #expect(Swift.abs(direct.re[n] - stepped.re[n]) / scale < 1e-11, "state \(n) real")
      #expect(Swift.abs(direct.im[n] - stepped.im[n]) / scale < 1e-11, "state \(n) imaginary")
    }
  }
}
