import Foundation
import Testing

@testable import LongConvTraining

@Suite struct ScheduleTests {
  /// `Benchmarks/torch_baseline.py charlm`: `lr * min(1, step/100) * 0.5 * (1 + cos(pi * step / steps))`.
  static func benchmark(_ lr: Double, _ step: Int, _ steps: Int) -> Double {
    lr * min(1.0, Double(step) / 100) * 0.5 * (1 + cos(Double.pi * Double(step) / Double(steps)))
  }

  @Test func productShapeIsTheBenchmarkFormula() {
    let schedule = WarmupCosine(peak: 2e-3, warmupSteps: 100, totalSteps: 1500)
    for step in [0, 1, 2, 50, 99, 100, 101, 750, 1000, 1499, 1500] {
      let expected = Self.benchmark(2e-3, step, 1500)
      #expect(abs(Double(schedule.rate(at: step)) - expected) <= 1e-7 * 2e-3, "step \(step)")
    }
    // The same to Float rounding (the schedule's peak is a Float, the script's a Double).
    let exact = WarmupCosine(peak: 0.5, warmupSteps: 100, totalSteps: 1500)
    for step in [1, 37, 100, 999] { #expect(exact.rate(at: step) == Float(Self.benchmark(0.5, step, 1500))) }
    #expect(schedule.rate(at: 1500) == 0)
    #expect(schedule.rate(at: 2000) == 0)
  }

  @Test func productShapeWithMinimum() {
    let schedule = WarmupCosine(peak: 1, warmupSteps: 10, totalSteps: 100, minimum: 0.1)
    // At step 50 the cosine is at its midpoint: 0.1 + 0.9 * 0.5.
    #expect(abs(schedule.rate(at: 50) - 0.55) < 1e-6)
    #expect(abs(schedule.rate(at: 100) - 0.1) < 1e-6)
    // Step 5: half the warmup, times the cosine at 5/100.
    let expected = 0.5 * (0.1 + 0.9 * 0.5 * (1 + cos(Double.pi * 0.05)))
    #expect(abs(Double(schedule.rate(at: 5)) - expected) < 1e-6)
  }

  @Test func sequentialShape() {
    let schedule = WarmupCosine(peak: 1, warmupSteps: 10, totalSteps: 110, minimum: 0.2, shape: .sequential)
    #expect(schedule.rate(at: 0) == 0)
    #expect(abs(schedule.rate(at: 1) - 0.1) < 1e-7)
    #expect(abs(schedule.rate(at: 5) - 0.5) < 1e-7)
    #expect(schedule.rate(at: 10) == 1)
    #expect(abs(schedule.rate(at: 60) - 0.6) < 1e-6)  // midpoint: 0.2 + 0.8 * 0.5
    #expect(abs(schedule.rate(at: 35) - Float(0.2 + 0.8 * 0.5 * (1 + cos(Double.pi / 4)))) < 1e-6)
    #expect(abs(schedule.rate(at: 110) - 0.2) < 1e-7)
    #expect(abs(schedule.rate(at: 500) - 0.2) < 1e-7)
    let noWarmup = WarmupCosine(peak: 1, warmupSteps: 0, totalSteps: 10, shape: .sequential)
    #expect(noWarmup.rate(at: 0) == 1)
  }

  @Test func inverseSquareRoot() {
    let schedule = InverseSquareRoot(peak: 1e-3, warmupSteps: 100)
    #expect(schedule.rate(at: 0) == 0)
    #expect(abs(schedule.rate(at: 50) - 5e-4) < 1e-9)
    #expect(abs(schedule.rate(at: 100) - 1e-3) < 1e-9)
    #expect(abs(schedule.rate(at: 400) - 5e-4) < 1e-9)
    #expect(abs(schedule.rate(at: 10_000) - 1e-4) < 1e-9)
    let noWarmup = InverseSquareRoot(peak: 2, warmupSteps: 0)
    #expect(abs(noWarmup.rate(at: 4) - 1) < 1e-7)
    #expect(noWarmup.rate(at: 1) == 2)
  }
}
