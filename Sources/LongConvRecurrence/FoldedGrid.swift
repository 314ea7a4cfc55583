import Foundation
import LongConv
import LongConvTensors

/// ETSC's recurrence run in the basis of the folded input history instead of its modes.
///
/// With the poles of ETSC's grid, `gamma w^-s` for `s = 1 ... S` (`w = exp(2 pi i / m)`), and
/// residues `r_s`, the impulse response is `h_k = gamma^k g_(k mod m)` with
/// `g_k = Re sum_s r_s w^(-s k)`: periodic apart from the decay. So the output is
///
/// ```
/// y_t = sum_p g_((t - p) mod m) a_p(t),     a_p(t) = sum_(i <= t, i = p mod m) gamma^(t - i) x_i
/// ```
///
/// over `m` slots per channel, and a step decays every slot by `gamma` and adds `x_t` to slot
/// `t mod m`. The modes are the DFT of the slots, so this is the same recurrence in another
/// basis: `m` real numbers per channel instead of `S` complex states and their poles, and a step
/// reads them once and writes one.
///
/// The decay is deferred: the slots hold `gamma^-e a_p` with `e = t mod R`, an input enters as
/// `gamma^-e x_t`, the output is `gamma^e` times the sum, and at every multiple of `R` the
/// slots are scaled by `gamma^R` once (`R` keeps `gamma^-e` below `2^30`; no scaling at all
/// when `gamma = 1`).
///
/// Precision, Float32 slots: an input is rounded once when it enters its slot, every slot once
/// per rescaling, the kernel once, and the output is a Float32 sum of `m` products, scaled: the
/// error is within `(m + 6 + 2 t / R) u sum_k |h_k| |x_(t-k)|` plus the output's own rounding
/// (`u = 2^-24`; FoldedGridReferenceTests checks it against Double), the order of the modal form's
/// Float32 residues (`u sum_s |r_s| |s_s|`, with `|s_s|` up to `sum_k gamma^k |x|`). Unlike a
/// Float32 *modal* state, nothing here is multiplied by a pole every step, so rounding does not
/// accumulate as a random walk (see ``RecurrentConvolution``).
struct FoldedGrid: Sendable {
  /// The grid and its rescaling: what a step needs besides the window.
  struct Schedule {
    /// The grid's size: `S = floor(m / 2)` modes, `m` slots.
    let m: Int
    let gamma: Double
    /// Steps between rescalings, `R`.
    let interval: Int

    /// Per step at `time` (inputs consumed before it): the slot the input enters, the factor
    /// all slots take first (1 when none), the input's and the output's scales.
    func scales(time t: Int) -> (slot: Int, rescale: Float, input: Float, output: Double) {
      let e = t % interval
      let rescale = gamma < 1 && e == 0 && t > 0 ? Float(Foundation.pow(gamma, Double(interval))) : 1
      return (t % m, rescale, Float(Foundation.pow(gamma, -Double(e))), Foundation.pow(gamma, Double(e)))
    }
  }

  let schedule: Schedule
  var m: Int { schedule.m }
  /// Per channel `m` values, the kernel reversed: `window[c m + k] = g_(m - 1 - k)`. With the
  /// input in slot `q`, slot `p <= q` has weight `g_(q - p) = window[m - 1 - q + p]` and slot
  /// `p > q` has `g_(q - p + m) = window[p - q - 1]`: two contiguous runs, every value read once.
  let window: [Float]

  /// The folded form of `channels` channels of residues on the grid `(m, gamma)`
  /// (``RecurrentConvolution/rootsOfUnity(_:)``), `residues[c]` the `S` residues of channel `c`.
  init(m: Int, gamma: Double, residues: (re: [[Double]], im: [[Double]])) {
    let interval =
      gamma < 1
      ? max(1, min(1 << 30, Int((30 * Foundation.log(2.0) / -Foundation.log(gamma)).rounded(.down)))) : m
    schedule = Schedule(m: m, gamma: gamma, interval: interval)
    // g_k = Re sum_s r_s w^(-s k) as a real inverse DFT of the half spectrum X_s = conj(r_s) / 2
    // (the bin m/2 of an even m appears once in the inverse: conj(r_s) there), X_0 = 0.
    let (channels, half) = (residues.re.count, m / 2 + 1)
    var (re, im) = (
      [Double](repeating: 0, count: channels * half), [Double](repeating: 0, count: channels * half)
    )
    for c in 0..<channels {
      for (n, (a, b)) in zip(residues.re[c], residues.im[c]).enumerated() {
        let s = n + 1
        let weight = (m % 2 == 0 && s == m / 2) ? 1.0 : 0.5
        (re[c * half + s], im[c * half + s]) = (weight * a, -weight * b)
      }
    }
    let g = DoubleFFT.inverse(re: re, im: im, rows: channels, length: m)
    var window = [Float](repeating: 0, count: channels * m)
    for c in 0..<channels {
      for k in 0..<m { window[c * m + k] = Float(g[c * m + m - 1 - k]) }
    }
    self.window = window
  }

  /// One step of `selected` channels at `time` (the reference the fused kernels are checked
  /// against): `slots [channels, m]`, `x` and `y` indexed by channel. Split over threads when
  /// the slots are many, as the modal step is.
  func step(
    channels selected: Range<Int>, time: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    skip: [Float]?, slots: UnsafeMutablePointer<Float>
  ) {
    let tasks = selected.count * m >= 1 << 15 ? min(ComputeThreads.count, selected.count) : 1
    let pointers = UncheckedSendable((x, y, slots))
    ComputeThreads.perform(tasks: tasks) { t in
      let first = selected.lowerBound
      let share = first + selected.count * t / tasks..<first + selected.count * (t + 1) / tasks
      stepOnThisThread(
        channels: share, time: time, x: pointers.value.0, y: pointers.value.1, skip: skip,
        slots: pointers.value.2)
    }
  }

  /// ``step(channels:time:x:y:skip:slots:)`` on the calling thread.
  private func stepOnThisThread(
    channels selected: Range<Int>, time: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    skip: [Float]?, slots: UnsafeMutablePointer<Float>
  ) {
    let (slot, rescale, inputScale, outputScale) = schedule.scales(time: time)
    window.withUnsafeBufferPointer { window in
      for c in selected {
        let a = slots + c * m
        if rescale != 1 { for p in 0..<m { a[p] *= rescale } }
        a[slot] += inputScale * x[c]
        let w = window.baseAddress! + c * m
        var sum: Float = 0
        for p in 0...slot { sum += w[m - 1 - slot + p] * a[p] }
        for p in slot + 1..<m { sum += w[p - slot - 1] * a[p] }
        var out = outputScale * Double(sum)
        if let skip { out += Double(skip[c] * x[c]) }
        y[c] = Float(out)
      }
    }
  }

  /// The slots after the inputs `x [length, channels]` from zero, in the form a step at time
  /// `length` expects: `gamma^-((length - 1) mod R) a_p(length - 1)`, summed in Double.
  func slots(after x: UnsafeBufferPointer<Float>, length: Int, channels: Int) -> [Float] {
    let (m, gamma) = (schedule.m, schedule.gamma)
    var folded = [Double](repeating: 0, count: channels * m)
    guard length > 0 else { return [Float](repeating: 0, count: channels * m) }
    // Inputs whose weight gamma^k is below 1e-13 no longer count.
    let horizon =
      gamma < 1 ? min(length, Int((Foundation.log(1e-13) / Foundation.log(gamma)).rounded(.up)) + 1) : length
    var weight = Foundation.pow(gamma, -Double((length - 1) % schedule.interval))
    for k in 0..<horizon {
      let i = length - 1 - k
      let (row, p) = (i * channels, i % m)
      for c in 0..<channels { folded[c * m + p] += weight * Double(x[row + c]) }
      weight *= gamma
    }
    return folded.map { Float($0) }
  }
}
