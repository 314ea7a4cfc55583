/// Whether a fused decoding step runs on the decoder's team of threads or on the calling thread
/// alone. Both compute the same bits (``FusedDecoder`` runs every member's share in turn), so
/// the choice is by speed only.
///
/// The team is faster on an idle machine (about 2x on two cores), but its members meet at two
/// barriers per layer: when another process holds one of the cores, the member the kernel
/// deschedules stalls every barrier, and a step took 3.6x as long as on an idle machine, 2x as
/// long as one thread alone on the busy one.
///
/// So the schedule measures: every round of ``roundSteps`` steps begins with ``probeSteps``
/// steps on the team and as many alone, and the rest of the round runs the way whose median was
/// lower. Within a team stretch, ``stallsToLeave`` steps in a row slower than ``stallFactor``
/// times the team's probe median (load that began after the probes) send the rest of the round
/// alone.
struct TeamSchedule {
  static let roundSteps = 256
  static let probeSteps = 3
  static let stallFactor = 3.0
  static let stallsToLeave = 3

  /// Steps finished so far.
  private(set) var steps = 0
  private var teamProbes: [Double] = []
  private var aloneProbes: [Double] = []
  private var teamMedian = Double.infinity
  private var stalls = 0
  /// How the steps after this round's probes run.
  private(set) var alone = false

  /// Whether the next step runs alone.
  func runsAlone() -> Bool {
    let position = steps % Self.roundSteps
    if position < Self.probeSteps { return false }
    if position < 2 * Self.probeSteps { return true }
    return alone
  }

  /// Records the step just run (`alone` as ``runsAlone()`` said) and its wall time.
  mutating func finished(seconds: Double, alone ranAlone: Bool) {
    let position = steps % Self.roundSteps
    steps += 1
    if position < 2 * Self.probeSteps {
      if ranAlone { aloneProbes.append(seconds) } else { teamProbes.append(seconds) }
      if position == 2 * Self.probeSteps - 1 {
        teamMedian = Self.median(teamProbes)
        alone = Self.median(aloneProbes) < teamMedian
        (teamProbes, aloneProbes, stalls) = ([], [], 0)
      }
      return
    }
    guard !ranAlone else { return }
    stalls = seconds > Self.stallFactor * teamMedian ? stalls + 1 : 0
    if stalls >= Self.stallsToLeave { alone = true }
  }

  static func median(_ values: [Double]) -> Double {
    values.isEmpty ? .infinity : values.sorted()[values.count / 2]
  }
}
