import Foundation
import LongConv
import LongConvTensors
import Testing

@testable import LongConvRecurrence

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

/// ETSC's poles sit on a grid of roots of unity and run in the folded basis (``FoldedGrid``):
/// the prompt's slots, summed in one pass, must equal stepping the prompt, for odd and even
/// `m`, with and without a decay, for prompts that wrap around `m` several times, and with a
/// decay fast enough that the slots are rescaled several times within the prompt (`0.5`:
/// every 30 steps).
@Suite struct ETSCPrefillTests {
  /// An ETSC conversion of a seeded kernel of `n` lags on `channels` channels, decay `gamma`.
  static func recurrence(n: Int, gamma: Double, channels: Int = 3) throws -> RecurrentConvolution {
    var generator = SeededGenerator(seed: UInt64(n))
    let r = Tensor.normal([channels * n], generator: &generator).scalars.map { Double($0) }
    let t = r.enumerated().map { Foundation.pow(gamma, Double($0.offset % n)) * $0.element }
    let samples = try CausalKernelSamples(
      name: "k", channels: channels, length: n, values: t,
      decay: gamma < 1 ? [Double](repeating: gamma, count: channels) : nil, undecayed: gamma < 1 ? r : nil)
    return RecurrentConvolution(try ExactConverter().convert(samples).stateSpace)
  }

  @Test(arguments: [(10, 1.0), (9, 1.0), (10, 0.9), (9, 0.97), (10, 0.5)])
  func foldedPrefillEqualsStepping(_ n: Int, _ gamma: Double) throws {
    let channels = 3
    let recurrence = try Self.recurrence(n: n, gamma: gamma, channels: channels)
    #expect(recurrence.rootsOfUnity?.m == n + 1, "ETSC grid not recognised")
    let grid = try #require(recurrence.folded)
    #expect(recurrence.makeState().re.isEmpty && recurrence.makeState().slots.count == channels * (n + 1))

    let length = 4 * (n + 1) + 3
    let x = randomInputs(length: length, channels: channels, seed: 5)
    var stepped = recurrence.makeState()
    var y = [Float](repeating: 0, count: channels)
    x.withUnsafeBufferPointer { input in
      for i in 0..<length { recurrence.step(input.baseAddress! + channels * i, into: &y, state: &stepped) }
    }
    let direct = x.withUnsafeBufferPointer { recurrence.state(after: $0, length: length) }
    #expect(direct.time == length && stepped.time == length)
    // Each slot, in the deferred scale gamma^-((length - 1) mod R), against the sum of its
    // inputs' magnitudes: one rounding per input and per rescaling, each at most 2^-24 of it.
    let m = n + 1
    let scale = Foundation.pow(gamma, -Double((length - 1) % grid.schedule.interval))
    for c in 0..<channels {
      for p in 0..<m {
        var magnitude = 0.0
        for i in stride(from: p, to: length, by: m) {
          magnitude += Foundation.pow(gamma, Double(length - 1 - i)) * Swift.abs(Double(x[i * channels + c]))
        }
        let bound =
          Double(2 * (length / m + length / grid.schedule.interval + 2)) * 0x1p-24 * scale * magnitude
        let (a, b) = (Double(direct.slots[c * m + p]), Double(stepped.slots[c * m + p]))
        #expect(Swift.abs(a - b) <= bound + 1e-30, "channel \(c) slot \(p): \(a) vs \(b), bound \(bound)")
      }
    }
  }

  /// Poles off the grid are not mistaken for it.
  @Test func otherPolesAreNotTheGrid() {
    let system = DiagonalStateSpace(
      polesReal: [[0.5, 0.2]], polesImaginary: [[0.1, 0]], residuesReal: [[1, 1]],
      residuesImaginary: [[0, 0]], skip: nil)
    #expect(RecurrentConvolution(system).rootsOfUnity == nil)
  }
}
