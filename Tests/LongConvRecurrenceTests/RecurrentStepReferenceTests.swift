import Foundation
import LongConv
import LongConvTensors
import LongConvTestSupport
import Testing

@testable import LongConvRecurrence

/// `RecurrentConvolution.step`'s outputs against the convolution with the system's impulse
/// response, `h[0] = D + Re(sum r)`, `h[k] = Re(sum r p^k)`, summed densely in Double from the
/// poles and residues themselves (not from the converters): every number of states per channel
/// from 1 to 9 (the four-wide SIMD loop, its scalar tail, both), and the threaded step over a
/// channel range that does not start at channel 0.
@Suite struct RecurrentStepReferenceTests {
  /// A diagonal system with `states[c]` modes on channel `c`: poles of modulus 0.5 ... 0.95 at
  /// seeded angles, residues and skips on a 1/64 grid (exact in Float32, as the step stores them).
  static func system(states: [Int], seed: UInt64) -> DiagonalStateSpace {
    var generator = SeededGenerator(seed: seed)
    func uniform() -> Double { generator.nextUniformDouble() }
    var s = DiagonalStateSpace(
      polesReal: [], polesImaginary: [], residuesReal: [], residuesImaginary: [], skip: [])
    for count in states {
      var (pr, pi, rr, ri) = ([Double](), [Double](), [Double](), [Double]())
      for _ in 0..<count {
        let (radius, angle) = (0.5 + 0.45 * uniform(), Double.pi * uniform())
        pr.append(radius * Foundation.cos(angle))
        pi.append(radius * Foundation.sin(angle))
        rr.append((64 * (2 * uniform() - 1)).rounded() / 64)
        ri.append((64 * (2 * uniform() - 1)).rounded() / 64)
      }
      s.polesReal.append(pr)
      s.polesImaginary.append(pi)
      s.residuesReal.append(rr)
      s.residuesImaginary.append(ri)
      s.skip!.append((64 * (2 * uniform() - 1)).rounded() / 64)
    }
    return s
  }

  /// `h[c * n + k]` for `k < n`, lag 0 without the skip, by powers of each pole in Double.
  static func impulseResponse(_ s: DiagonalStateSpace, lags n: Int) -> [Double] {
    var h = [Double](repeating: 0, count: s.channels * n)
    for c in 0..<s.channels {
      for j in s.polesReal[c].indices {
        let (pr, pi) = (s.polesReal[c][j], s.polesImaginary[c][j])
        var (zr, zi) = (1.0, 0.0)  // p^k
        for k in 0..<n {
          h[c * n + k] += s.residuesReal[c][j] * zr - s.residuesImaginary[c][j] * zi
          (zr, zi) = (pr * zr - pi * zi, pr * zi + pi * zr)
        }
      }
    }
    return h
  }

  @Test func stepMatchesTheImpulseResponseForOneToNineStates() {
    let system = Self.system(states: Array(1...9), seed: 21)
    let (d, length) = (system.channels, 40)
    let x = randomInputs(length: length, channels: d, seed: 22)
    let y = runRecurrence(RecurrentConvolution(system), x, length: length)
    let reference = Dense.longConvolution(
      x.map(Double.init), batch: 1, length: length, channels: d,
      kernel: Self.impulseResponse(system, lags: length), direction: .causal, skip: system.skip)
    for c in 0..<d {
      let (got, want) = ((0..<length).map { y[$0 * d + c] }, (0..<length).map { reference[$0 * d + c] })
      let error = relativeError(got.map(Double.init), want)
      #expect(error < 1e-5, "channel \(c) with \(c + 1) states: relative error \(error)")
    }
  }

  /// At least 2^15 states in the selected channels: the step splits them over threads (when the
  /// machine has more than one); channels outside the range keep their outputs and states.
  @Test func threadedStepOverAChannelRangeMatchesTheImpulseResponse() {
    let (d, perChannel, length) = (6, 8192, 5)
    let system = Self.system(states: [Int](repeating: perChannel, count: d), seed: 23)
    let recurrence = RecurrentConvolution(system)
    let selected = 2..<6
    let x = randomInputs(length: length, channels: d, seed: 24)
    var state = recurrence.makeState()
    let untouched: Float = 12345
    var y = [Float](repeating: 0, count: length * d)
    x.withUnsafeBufferPointer { input in
      y.withUnsafeMutableBufferPointer { output in
        for i in 0..<length {
          for c in 0..<d { output[i * d + c] = untouched }
          recurrence.step(
            channels: selected, input.baseAddress! + i * d, into: output.baseAddress! + i * d, state: &state)
        }
      }
    }
    let reference = Dense.longConvolution(
      x.map(Double.init), batch: 1, length: length, channels: d,
      kernel: Self.impulseResponse(system, lags: length), direction: .causal, skip: system.skip)
    for c in 0..<d {
      let got = (0..<length).map { y[$0 * d + c] }
      if selected.contains(c) {
        let error = relativeError(got.map(Double.init), (0..<length).map { reference[$0 * d + c] })
        #expect(error < 1e-5, "channel \(c): relative error \(error)")
      } else {
        #expect(got.allSatisfy { $0 == untouched }, "channel \(c) outside \(selected) was written")
        let states = recurrence.offsets[c]..<recurrence.offsets[c + 1]
        #expect(states.allSatisfy { state.re[$0] == 0 && state.im[$0] == 0 }, "channel \(c)'s state moved")
      }
    }
  }
}

/// ETSC's recurrence in the folded basis against the convolution with its impulse response
/// `h_k = Re sum_s r_s p_s^k` (plus the skip at lag 0), by powers of the poles in Double for
/// every lag up to the position (the kernel's periodic continuation past `n` included), within
/// the folded form's bound `(m + 6 + 2 t / R) u sum_k |h_k| |x_(t-k)|`: odd and even `m`, with
/// and without a decay, and a decay that rescales the slots every 30 steps.
@Suite struct FoldedGridReferenceTests {
  /// ETSC's conversion of a seeded kernel of `n` lags, its grid scaled to radius `gamma` (the
  /// converter folds a declared decay the same way), with `skip`.
  static func decayedGrid(channels: Int, n: Int, gamma: Double, skip: [Double]?, seed: UInt64) throws
    -> DiagonalStateSpace
  {
    var system = try ExactConverter().convert(
      try CausalKernelSamples(
        name: "k", channels: channels, length: n,
        values: randomInputs(length: n, channels: channels, seed: seed).map(Double.init), decay: nil,
        undecayed: nil)
    ).stateSpace
    system.skip = skip
    for c in 0..<channels {
      system.polesReal[c] = system.polesReal[c].map { gamma * $0 }
      system.polesImaginary[c] = system.polesImaginary[c].map { gamma * $0 }
    }
    return system
  }

  /// Channel `c`'s output at `t` by the dense convolution with `h` (`[channels, length]` lags,
  /// no skip) in Double, and the sum of its terms' magnitudes (what rounding is relative to).
  static func reference(h: [Double], length: Int, x: [Float], channels: Int, t: Int, c: Int, skip: Double)
    -> (value: Double, magnitude: Double)
  {
    var (value, magnitude) = (skip * Double(x[t * channels + c]), 0.0)
    magnitude += Swift.abs(value)
    for k in 0...t {
      let term = h[c * length + k] * Double(x[(t - k) * channels + c])
      value += term
      magnitude += Swift.abs(term)
    }
    return (value, magnitude)
  }

  @Test(arguments: [(10, 1.0), (9, 1.0), (10, 0.97), (9, 0.5), (64, 0.99)])
  func foldedStepMatchesTheImpulseResponse(_ n: Int, _ gamma: Double) throws {
    let channels = 3
    let system = try Self.decayedGrid(
      channels: channels, n: n, gamma: gamma, skip: [0.25, -0.5, 0], seed: 31)
    let recurrence = RecurrentConvolution(system)
    let grid = try #require(recurrence.folded, "ETSC grid not recognised")
    let m = grid.m
    let length = 5 * m + 7
    let h = RecurrentStepReferenceTests.impulseResponse(system, lags: length)
    let x = randomInputs(length: length, channels: channels, seed: 32)
    let y = runRecurrence(recurrence, x, length: length)
    for t in 0..<length {
      for c in 0..<channels {
        let (expected, magnitude) = Self.reference(
          h: h, length: length, x: x, channels: channels, t: t, c: c, skip: system.skip![c])
        let bound =
          Double(m + 6 + 2 * t / grid.schedule.interval) * 0x1p-24 * magnitude + 0x1p-24 * Swift.abs(expected)
        let error = Swift.abs(Double(y[t * channels + c]) - expected)
        #expect(error <= bound, "n \(n) gamma \(gamma) t \(t) channel \(c): \(error) > \(bound)")
      }
    }
  }

  /// At least 2^15 slots in the selected channels: the folded step splits them over threads
  /// (when the machine has more than one); channels outside the range keep their outputs and
  /// slots, those inside follow the impulse response.
  @Test func threadedStepOverAChannelRange() throws {
    let (channels, n) = (600, 64)
    let system = try Self.decayedGrid(channels: channels, n: n, gamma: 0.95, skip: nil, seed: 41)
    let recurrence = RecurrentConvolution(system)
    let m = try #require(recurrence.folded).m
    let selected = 7..<channels
    #expect(selected.count * m >= 1 << 15)
    let length = m + 5
    let h = RecurrentStepReferenceTests.impulseResponse(system, lags: length)
    let x = randomInputs(length: length, channels: channels, seed: 42)
    var state = recurrence.makeState()
    var y = [Float](repeating: -7, count: channels)
    for t in 0..<length {
      x.withUnsafeBufferPointer { input in
        recurrence.step(channels: selected, input.baseAddress! + t * channels, into: &y, state: &state)
      }
      state.time += 1
      #expect(y[0..<selected.lowerBound].allSatisfy { $0 == -7 }, "outputs outside the range written")
      for c in selected {
        let (expected, magnitude) = Self.reference(
          h: h, length: length, x: x, channels: channels, t: t, c: c, skip: 0)
        let bound = Double(m + 6) * 0x1p-24 * magnitude + 0x1p-24 * Swift.abs(expected)
        #expect(Swift.abs(Double(y[c]) - expected) <= bound, "t \(t) channel \(c)")
      }
    }
    #expect(state.slots[0..<selected.lowerBound * m].allSatisfy { $0 == 0 }, "slots outside the range moved")
  }
}
