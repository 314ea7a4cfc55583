import Foundation
import LongConv
import LongConvTensors

/// A diagonal state-space recurrence ready to run, one token at a time, with Float32 inputs
/// and outputs:
///
/// ```
/// s_i = poles * s_(i-1) + x_i          (per channel, per state; complex)
/// y_i = Re(sum_n residues_n s_i,n) + skip * x_i
/// ```
///
/// The state and poles are kept in Double. A Float32 state is not enough for ETSC:
/// its poles lie on a circle of radius `gamma` (1 for kernels without a decay), so each
/// step's rounding persists and the errors add up like a random walk; measured with fused
/// multiply-adds and poles carried to 48 bits, a Float32 state missed the FFT output by 1.5e-5
/// to 3e-5 (relative) at `n = 1000` for TNN, Hyena and random kernels, against 1e-13 here.
/// When every channel has the same poles (ETSC with a shared decay) they are stored once.
///
/// The residues are stored in Float32 (and the products summed in Double): they are rounded
/// once, not fed back into the state, so their rounding stays at Float32 level in the output,
/// which is Float32 anyway; the step is memory-bound, and this cut it by about 10% (ETSC,
/// n = 512, d = 256 x 6 layers: 1.7 -> 1.57 ms/token; logits vs FFT 5.6e-6 -> 6.4e-6).
///
/// States are split into real and imaginary arrays, channel after channel (`offsets`).
///
/// ETSC's own poles (a shared grid `gamma exp(-2 pi i s / m)`) run in another basis: the
/// input history folded modulo `m`, Float32, where a step reads `m` slots and writes one
/// instead of reading and writing `S` complex Double states (`FoldedGrid`, docs/MODELS.md
/// section 5.1). The state's ``State/slots`` hold it; ``State/re`` and ``State/im`` are then
/// empty.
public struct RecurrentConvolution: Sendable {
  /// Channels `D`: inputs and outputs per step.
  public let channels: Int
  /// `offsets[c] ..< offsets[c + 1]` are channel `c`'s states.
  public let offsets: [Int]
  let poles: (re: [Double], im: [Double])
  /// All channels use the first channel's row of poles.
  let sharedPoles: Bool
  let residues: (re: [Float], im: [Float])
  let skip: [Float]?
  /// Set when every channel's poles are ETSC's `gamma exp(-2 pi i s / m)`, `s = 1 ... S`: the
  /// recurrence then runs in the folded basis (`folded`).
  let rootsOfUnity: (m: Int, gamma: Double)?
  /// The recurrence in the folded basis, for ETSC's grid.
  let folded: FoldedGrid?

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
    residues = (
      system.residuesReal.flatMap { $0 }.map(Float.init),
      system.residuesImaginary.flatMap { $0 }.map(Float.init)
    )
    skip = system.skip.map { $0.map { Float($0) } }
    rootsOfUnity = shared || channels == 1 ? Self.rootsOfUnity(poles) : nil
    folded = rootsOfUnity.map { grid in
      FoldedGrid(m: grid.m, gamma: grid.gamma, residues: (system.residuesReal, system.residuesImaginary))
    }
  }

  /// The bytes of state one step over every channel reads and writes: every complex state, or
  /// every folded slot read and one per channel written.
  var stateBytesPerStep: (read: Int, written: Int) {
    if let folded { return (4 * folded.m * channels, 4 * channels) }
    return (16 * stateCount, 16 * stateCount)
  }

  /// `(m, gamma)` when the `S` poles are `gamma exp(-2 pi i s / m)` for `s = 1 ... S` with
  /// `m = 2S` or `2S + 1` (the folded ETSC grid), to 1e-12 relative.
  static func rootsOfUnity(_ poles: (re: [Double], im: [Double])) -> (m: Int, gamma: Double)? {
    let count = poles.re.count
    guard count >= 1 else { return nil }
    let gamma = (poles.re[0] * poles.re[0] + poles.im[0] * poles.im[0]).squareRoot()
    guard gamma > 0, gamma <= 1 else { return nil }
    for m in [2 * count + 1, 2 * count] where m >= 2 {
      let onGrid = (1...count).allSatisfy { s in
        let angle = 2 * Double.pi * Double(s) / Double(m)
        return Swift.abs(poles.re[s - 1] - gamma * Foundation.cos(angle)) <= 1e-12 * gamma
          && Swift.abs(poles.im[s - 1] + gamma * Foundation.sin(angle)) <= 1e-12 * gamma
      }
      if onGrid { return (m, gamma) }
    }
    return nil
  }

  /// The state of one sequence: every complex state, real and imaginary parts apart, or the
  /// folded history of ETSC's grid.
  public struct State: Sendable {
    /// Real parts of all ``RecurrentConvolution/stateCount`` states, channel after channel
    /// (``RecurrentConvolution/offsets``); empty for ETSC's grid.
    public var re: [Double]
    /// Imaginary parts, in the same layout as ``re``.
    public var im: [Double]
    /// ETSC's grid: `m` slots per channel, channel after channel (`FoldedGrid`, docs/MODELS.md
    /// section 5.1); else empty.
    public var slots: [Float]
    /// Inputs consumed.
    public var time: Int
  }

  /// The zero state (before any input).
  public func makeState() -> State {
    if let folded {
      return State(re: [], im: [], slots: [Float](repeating: 0, count: channels * folded.m), time: 0)
    }
    return State(
      re: [Double](repeating: 0, count: stateCount), im: [Double](repeating: 0, count: stateCount), slots: [],
      time: 0)
  }

  /// Advances `state` by one input `x [channels]` and writes `y [channels]`.
  public func step(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, state: inout State) {
    step(channels: 0..<channels, x, into: y, state: &state)
    state.time += 1
  }

  /// Advances the states of `selected` channels alone by their inputs `x[c]` and writes their
  /// outputs `y[c]` (`x` and `y` indexed by channel, `[channels]`): for mixers whose channel
  /// groups take turns within one token (Hyena's steps), which then count the token in
  /// ``State/time`` themselves, once.
  public func step(
    channels selected: Range<Int>, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
    state: inout State
  ) {
    precondition(selected.lowerBound >= 0 && selected.upperBound <= channels, "step: channels \(selected)")
    if let folded {
      let time = state.time
      state.slots.withUnsafeMutableBufferPointer { slots in
        folded.step(channels: selected, time: time, x: x, y: y, skip: skip, slots: slots.baseAddress!)
      }
      return
    }
    let count = selected.count
    // Split over threads only when the work pays for the hand-off.
    let states = offsets[selected.upperBound] - offsets[selected.lowerBound]
    let tasks = states >= 1 << 15 ? min(ComputeThreads.count, count) : 1
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
                let first = selected.lowerBound
                if tasks == 1 {
                  run(selected)
                } else {
                  ComputeThreads.perform(tasks: tasks) { t in
                    run(first + count * t / tasks..<first + count * (t + 1) / tasks)
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
  ///
  /// Written with `*` and `+`, not `addingProduct`: without FMA in the target (the default
  /// x86-64 baseline) `addingProduct` becomes a call to libm's `fma` per element, which took
  /// more time than the loop itself.
  @inline(__always)
  static func kernel(
    count: Int, x: Double, poles: (UnsafePointer<Double>, UnsafePointer<Double>),
    residues: (UnsafePointer<Float>, UnsafePointer<Float>),
    state: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)
  ) -> Double {
    typealias V = SIMD4<Double>
    @inline(__always) func load(_ p: UnsafePointer<Double>, _ i: Int) -> V {
      UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
    }
    @inline(__always) func wide(_ p: UnsafePointer<Float>, _ i: Int) -> V {
      V(UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Float>.self))
    }
    let xv = V(repeating: x)
    var accumulator = V()
    var i = 0
    while i + 4 <= count {
      let (sr, si) = (load(state.0, i), load(state.1, i))
      let (pr, pi) = (load(poles.0, i), load(poles.1, i))
      let nr = pr * sr - pi * si + xv
      let ni = pi * sr + pr * si
      UnsafeMutableRawPointer(state.0 + i).storeBytes(of: nr, as: V.self)
      UnsafeMutableRawPointer(state.1 + i).storeBytes(of: ni, as: V.self)
      accumulator += wide(residues.0, i) * nr - wide(residues.1, i) * ni
      i += 4
    }
    var y = accumulator.sum()
    while i < count {
      let (sr, si) = (state.0[i], state.1[i])
      let (pr, pi) = (poles.0[i], poles.1[i])
      let nr = pr * sr - pi * si + x
      let ni = pi * sr + pr * si
      state.0[i] = nr
      state.1[i] = ni
      y += Double(residues.0[i]) * nr - Double(residues.1[i]) * ni
      i += 1
    }
    return y
  }

  /// The state after the inputs `x [length, channels]` (row-major) from the zero state,
  /// `s_n = sum_k poles_n^k x_(length-1-k)`, computed in Double without the outputs: for
  /// ETSC's grid the folded slots (`FoldedGrid`, docs/MODELS.md section 5.1), otherwise by the
  /// recurrence `s = poles * s + x_t` over the inputs, four states at a time. Inputs older
  /// than `K` positions, where the channel's largest `|pole|^K < 1e-12` (below Float32
  /// resolution), are skipped, so decaying poles cost `O(min(length, K))` per state whatever
  /// the prompt length.
  public func state(after x: UnsafeBufferPointer<Float>, length: Int) -> State {
    precondition(x.count == length * channels, "RecurrentConvolution.state: \(x.count) inputs")
    if let folded {
      return State(
        re: [], im: [], slots: folded.slots(after: x, length: length, channels: channels), time: length)
    }
    var state = makeState()
    state.time = length
    let input = UncheckedSendable(x.baseAddress!)
    state.re.withUnsafeMutableBufferPointer { re in
      state.im.withUnsafeMutableBufferPointer { im in
        poles.re.withUnsafeBufferPointer { pr in
          poles.im.withUnsafeBufferPointer { pi in
            let p = UncheckedSendable((re.baseAddress!, im.baseAddress!, pr.baseAddress!, pi.baseAddress!))
            ComputeThreads.perform(tasks: channels) { c in
              let (begin, end) = (offsets[c], offsets[c + 1])
              let base = sharedPoles ? 0 : begin
              let count = end - begin
              guard count > 0 else { return }
              var largest = 0.0
              for j in base..<base + count {
                largest = max(
                  largest, (p.value.2[j] * p.value.2[j] + p.value.3[j] * p.value.3[j]).squareRoot())
              }
              var first = 0
              if largest < 1 {
                let needed = largest > 0 ? Foundation.log(1e-12) / Foundation.log(largest) : 1
                if needed < Double(length) { first = length - Int(needed.rounded(.up)) - 1 }
                first = max(first, 0)
              }
              Self.run(
                count: count, inputs: input.value + c, stride: channels, range: first..<length,
                poles: (p.value.2 + base, p.value.3 + base), state: (p.value.0 + begin, p.value.1 + begin))
            }
          }
        }
      }
    }
    return state
  }

  /// `s = poles * s + x_t` for `t` in `range`, inputs `inputs[t * stride]`, over `count` states.
  static func run(
    count: Int, inputs: UnsafePointer<Float>, stride: Int, range: Range<Int>,
    poles: (UnsafePointer<Double>, UnsafePointer<Double>),
    state: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)
  ) {
    typealias V = SIMD4<Double>
    @inline(__always) func load(_ p: UnsafePointer<Double>, _ i: Int) -> V {
      UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
    }
    @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Double>, _ i: Int) {
      UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: V.self)
    }
    var i = 0
    // Eight states at a time: two independent chains hide the multiply latency.
    while i + 8 <= count {
      let (pr0, pi0, pr1, pi1) = (
        load(poles.0, i), load(poles.1, i), load(poles.0, i + 4), load(poles.1, i + 4)
      )
      var (sr0, si0) = (load(UnsafePointer(state.0), i), load(UnsafePointer(state.1), i))
      var (sr1, si1) = (load(UnsafePointer(state.0), i + 4), load(UnsafePointer(state.1), i + 4))
      for t in range {
        let xv = V(repeating: Double(inputs[t * stride]))
        (sr0, si0) = (pr0 * sr0 - pi0 * si0 + xv, pi0 * sr0 + pr0 * si0)
        (sr1, si1) = (pr1 * sr1 - pi1 * si1 + xv, pi1 * sr1 + pr1 * si1)
      }
      store(sr0, state.0, i)
      store(si0, state.1, i)
      store(sr1, state.0, i + 4)
      store(si1, state.1, i + 4)
      i += 8
    }
    while i + 4 <= count {
      let (pr, pi) = (load(poles.0, i), load(poles.1, i))
      var (sr, si) = (load(UnsafePointer(state.0), i), load(UnsafePointer(state.1), i))
      for t in range {
        let xv = V(repeating: Double(inputs[t * stride]))
        (sr, si) = (pr * sr - pi * si + xv, pi * sr + pr * si)
      }
      UnsafeMutableRawPointer(state.0 + i).storeBytes(of: sr, as: V.self)
      UnsafeMutableRawPointer(state.1 + i).storeBytes(of: si, as: V.self)
      i += 4
    }
    while i < count {
      let (pr, pi) = (poles.0[i], poles.1[i])
      var (sr, si) = (state.0[i], state.1[i])
      for t in range {
        let x = Double(inputs[t * stride])
        (sr, si) = (pr * sr - pi * si + x, pi * sr + pr * si)
      }
      state.0[i] = sr
      state.1[i] = si
      i += 1
    }
  }
}
