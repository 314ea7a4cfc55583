import Foundation
import LongConv

/// A diagonal state-space recurrence ready to run, one token at a time, with Float32 inputs
/// and outputs:
///
/// ```
/// s_i = poles * s_(i-1) + x_i          (per channel, per state; complex)
/// y_i = Re(sum_n residues_n s_i,n) + skip * x_i
/// ```
///
/// The state, poles and residues are kept in Double. A Float32 state is not enough for ETSC:
/// its poles lie on a circle of radius `gamma` (1 for kernels without a decay), so each
/// step's rounding persists and the errors add up like a random walk; measured with fused
/// multiply-adds and poles carried to 48 bits, a Float32 state missed the FFT output by 1.5e-5
/// to 3e-5 (relative) at `n = 1000` for TNN, Hyena and random kernels, against 1e-13 here.
/// When every channel has the same poles (ETSC with a shared decay) they are stored once.
///
/// States are split into real and imaginary arrays, channel after channel (`offsets`).
public struct RecurrentConvolution: Sendable {
  public let channels: Int
  /// `offsets[c] ..< offsets[c + 1]` are channel `c`'s states.
  public let offsets: [Int]
  let poles: (re: [Double], im: [Double])
  /// All channels use the first channel's row of poles.
  let sharedPoles: Bool
  let residues: (re: [Double], im: [Double])
  let skip: [Float]?

  /// Complex states over all channels.
  public var stateCount: Int { offsets[channels] }

  /// The recurrence of `system`.
  public init(_ system: DiagonalStateSpace) {
    channels = system.channels
    var offsets = [0]
    for c in 0..<channels { offsets.append(offsets[c] + system.states(c)) }
    self.offsets = offsets
    let shared =
      channels > 1 && system.polesReal.allSatisfy { $0 == system.polesReal[0] }
      && system.polesImaginary.allSatisfy { $0 == system.polesImaginary[0] }
    sharedPoles = shared
    let rows = shared ? [0] : Array(0..<channels)
    poles = (rows.flatMap { system.polesReal[$0] }, rows.flatMap { system.polesImaginary[$0] })
    residues = (system.residuesReal.flatMap { $0 }, system.residuesImaginary.flatMap { $0 })
    skip = system.skip.map { $0.map { Float($0) } }
  }

  /// The state of one sequence: every complex state, real and imaginary parts apart.
  public struct State: Sendable {
    public var re: [Double]
    public var im: [Double]
  }

  /// The zero state (before any input).
  public func makeState() -> State {
    State(re: [Double](repeating: 0, count: stateCount), im: [Double](repeating: 0, count: stateCount))
  }

  /// Advances `state` by one input `x [channels]` and writes `y [channels]`.
  public func step(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, state: inout State) {
    // Split over threads only when the work pays for the hand-off.
    let tasks = stateCount >= 1 << 15 ? min(ComputeThreads.count, channels) : 1
    state.re.withUnsafeMutableBufferPointer { sRe in
      state.im.withUnsafeMutableBufferPointer { sIm in
        poles.re.withUnsafeBufferPointer { pr in
          poles.im.withUnsafeBufferPointer { pi in
            residues.re.withUnsafeBufferPointer { rr in
              residues.im.withUnsafeBufferPointer { ri in
                let p = UncheckedSendable(
                  (
                    sRe.baseAddress!, sIm.baseAddress!, pr.baseAddress!, pi.baseAddress!, rr.baseAddress!,
                    ri.baseAddress!, x, y
                  ))
                let run = { (range: Range<Int>) in
                  for c in range {
                    let begin = offsets[c]
                    let poleBase = sharedPoles ? 0 : begin
                    let input = p.value.6[c]
                    var out = Self.kernel(
                      count: offsets[c + 1] - begin, x: Double(input),
                      poles: (p.value.2 + poleBase, p.value.3 + poleBase),
                      residues: (p.value.4 + begin, p.value.5 + begin),
                      state: (p.value.0 + begin, p.value.1 + begin))
                    if let skip { out += Double(skip[c] * input) }
                    p.value.7[c] = Float(out)
                  }
                }
                if tasks == 1 {
                  run(0..<channels)
                } else {
                  ComputeThreads.perform(tasks: tasks) { t in
                    run(channels * t / tasks..<channels * (t + 1) / tasks)
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  /// The inner loop over one channel's states, four at a time.
  @inline(__always)
  static func kernel(
    count: Int, x: Double, poles: (UnsafePointer<Double>, UnsafePointer<Double>),
    residues: (UnsafePointer<Double>, UnsafePointer<Double>),
    state: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)
  ) -> Double {
    typealias V = SIMD4<Double>
    @inline(__always) func load(_ p: UnsafePointer<Double>, _ i: Int) -> V {
      UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
    }
    let xv = V(repeating: x)
    var accumulator = V()
    var i = 0
    while i + 4 <= count {
      let (sr, si) = (load(state.0, i), load(state.1, i))
      let (pr, pi) = (load(poles.0, i), load(poles.1, i))
      let nr = xv.addingProduct(-pi, si).addingProduct(pr, sr)
      let ni = (pi * sr).addingProduct(pr, si)
      UnsafeMutableRawPointer(state.0 + i).storeBytes(of: nr, as: V.self)
      UnsafeMutableRawPointer(state.1 + i).storeBytes(of: ni, as: V.self)
      accumulator = accumulator.addingProduct(load(residues.0, i), nr).addingProduct(-load(residues.1, i), ni)
      i += 4
    }
    var y = accumulator.sum()
    while i < count {
      let (sr, si) = (state.0[i], state.1[i])
      let (pr, pi) = (poles.0[i], poles.1[i])
      let nr = x.addingProduct(-pi, si).addingProduct(pr, sr)
      let ni = (pi * sr).addingProduct(pr, si)
      state.0[i] = nr
      state.1[i] = ni
      y = y.addingProduct(residues.0[i], nr).addingProduct(-residues.1[i], ni)
      i += 1
    }
    return y
  }

  /// The state after the inputs `x [length, channels]` (row-major) from the zero state,
  /// `s_n = sum_k poles_n^k x_(length-1-k)`, without computing any output: per channel, the
  /// update `s = poles * s + x_i` over its states (vectorised), started late enough that the
  /// skipped inputs' weight `|pole|^k` is below 1e-13 (under Float32 resolution of the
  /// outputs), so decaying poles cost `O(min(length, K) S)` whatever the prompt length.
  public func state(after x: UnsafeBufferPointer<Float>, length: Int) -> State {
    precondition(x.count == length * channels, "RecurrentConvolution.state: \(x.count) inputs")
    var state = makeState()
    let input = UncheckedSendable(x.baseAddress!)
    state.re.withUnsafeMutableBufferPointer { re in
      state.im.withUnsafeMutableBufferPointer { im in
        poles.re.withUnsafeBufferPointer { pr in
          poles.im.withUnsafeBufferPointer { pi in
            let p = UncheckedSendable((re.baseAddress!, im.baseAddress!, pr.baseAddress!, pi.baseAddress!))
            ComputeThreads.perform(tasks: channels) { c in
              let begin = offsets[c]
              let count = offsets[c + 1] - begin
              let poleBase = sharedPoles ? 0 : begin
              var largest = 0.0
              for n in 0..<count {
                let (a, b) = (p.value.2[poleBase + n], p.value.3[poleBase + n])
                largest = max(largest, (a * a + b * b).squareRoot())
              }
              let horizon =
                largest < 1
                ? Int((Foundation.log(1e-13) / Foundation.log(max(largest, 1e-300))).rounded(.up)) : length
              for i in max(0, length - horizon)..<length {
                Self.advance(
                  count: count, x: Double(input.value[i * channels + c]),
                  poles: (p.value.2 + poleBase, p.value.3 + poleBase),
                  state: (p.value.0 + begin, p.value.1 + begin))
              }
            }
          }
        }
      }
    }
    return state
  }

  /// `s = poles * s + x` over one channel's states, four at a time.
  @inline(__always)
  static func advance(
    count: Int, x: Double, poles: (UnsafePointer<Double>, UnsafePointer<Double>),
    state: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)
  ) {
    typealias V = SIMD4<Double>
    let xv = V(repeating: x)
    var i = 0
    while i + 4 <= count {
      let sr = UnsafeRawPointer(state.0 + i).loadUnaligned(as: V.self)
      let si = UnsafeRawPointer(state.1 + i).loadUnaligned(as: V.self)
      let pr = UnsafeRawPointer(poles.0 + i).loadUnaligned(as: V.self)
      let pi = UnsafeRawPointer(poles.1 + i).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(state.0 + i).storeBytes(
        of: xv.addingProduct(-pi, si).addingProduct(pr, sr), as: V.self)
      UnsafeMutableRawPointer(state.1 + i).storeBytes(of: (pi * sr).addingProduct(pr, si), as: V.self)
      i += 4
    }
    while i < count {
      let (sr, si, pr, pi) = (state.0[i], state.1[i], poles.0[i], poles.1[i])
      state.0[i] = x.addingProduct(-pi, si).addingProduct(pr, sr)
      state.1[i] = (pi * sr).addingProduct(pr, si)
      i += 1
    }
  }
}
