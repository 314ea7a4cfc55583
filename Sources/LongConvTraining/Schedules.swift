import Foundation
import LongConvLayers

/// A learning rate as a function of the optimizer step, counted from 1 (the first update).
public protocol LearningRateSchedule: Sendable {
  /// The learning rate for update number `step` (from 1).
  func rate(at step: Int) -> Float
}

/// Linear warmup and cosine decay, computed in Double.
///
/// Two shapes, both reaching `peak` at `step == warmupSteps` when `warmupSteps > 0`:
///
/// - ``Shape/product`` (default), the benchmark's formula (`Benchmarks/torch_baseline.py charlm`):
///   `rate = min(1, step / warmupSteps) * (minimum + (peak - minimum) * 0.5 (1 + cos(pi s / totalSteps)))`
///   with `s = min(step, totalSteps)`. With `minimum == 0` it is exactly
///   `lr * min(1, step/100) * 0.5 * (1 + cos(pi * step / steps))` for steps up to `totalSteps`;
///   the cosine runs over the whole run, warmup included, and ends at `minimum` (0 there).
/// - ``Shape/sequential``: `peak * step / warmupSteps` up to `warmupSteps`, then a cosine
///   from `peak` to `minimum` over the remaining `totalSteps - warmupSteps` steps; `minimum`
///   after `totalSteps`.
///
/// Steps below 1 give the value at step 0 (0 with warmup).
public struct WarmupCosine: LearningRateSchedule {
  /// Warmup times cosine over the whole run, or warmup then cosine.
  public enum Shape: Sendable { case product, sequential }
  /// The peak rate, reached at `warmupSteps`.
  /// The peak rate, the warmup and run lengths in steps, the final rate, and the shape.
  public var peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float, shape: Shape

  /// A schedule; `totalSteps >= 1`, and for `.sequential` `warmupSteps <= totalSteps`.
  public init(peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0, shape: Shape = .product) {
    precondition(warmupSteps >= 0 && totalSteps >= 1, "WarmupCosine: need warmupSteps >= 0, totalSteps >= 1")
    precondition(shape == .product || warmupSteps <= totalSteps, "WarmupCosine: warmup longer than the run")
    self.peak = peak
    self.warmupSteps = warmupSteps
    self.totalSteps = totalSteps
    self.minimum = minimum
    self.shape = shape
  }

  /// The ``Shape/product`` or ``Shape/sequential`` formula above at `step`, in Double (a negative step counts
  /// as 0).
  public func rate(at step: Int) -> Float {
    let step = Swift.max(step, 0)
    let (peak, low) = (Double(peak), Double(minimum))
    let warm = warmupSteps == 0 ? 1 : Swift.min(1, Double(step) / Double(warmupSteps))
    switch shape {
    case .product:
      let s = Double(Swift.min(step, totalSteps))
      let angle = Double.pi * s / Double(totalSteps)
      // Without a minimum, the benchmark's order of operations.
      if low == 0 { return Float(peak * warm * 0.5 * (1 + cos(angle))) }
      return Float(warm * (low + (peak - low) * 0.5 * (1 + cos(angle))))
    case .sequential:
      if step < warmupSteps { return Float(peak * warm) }
      if step >= totalSteps { return Float(low) }
      let progress = Double(step - warmupSteps) / Double(totalSteps - warmupSteps)
      return Float(low + (peak - low) * 0.5 * (1 + cos(Double.pi * progress)))
    }
  }
}

/// Linear warmup, then decay as the inverse square root of the step (the Transformer's
/// schedule, scaled to its peak): `peak * step / warmupSteps` up to `warmupSteps`, then
/// `peak * sqrt(warmupSteps / step)`. With `warmupSteps == 0`, `peak / sqrt(step)`.
public struct InverseSquareRoot: LearningRateSchedule {
  /// The peak rate, reached at `warmupSteps`, and the warmup length in steps (0: none).
  public var peak: Float, warmupSteps: Int

  /// A schedule with `warmupSteps >= 0`.
  public init(peak: Float, warmupSteps: Int) {
    precondition(warmupSteps >= 0, "InverseSquareRoot: warmupSteps must be >= 0")
    self.peak = peak
    self.warmupSteps = warmupSteps
  }

  /// `peak * step / warmupSteps` before `warmupSteps`, then `peak * sqrt(warmupSteps / step)`; without warmup
  /// `peak / sqrt(step)` (`peak` at step 0). A negative step counts as 0.
  public func rate(at step: Int) -> Float {
    let step = Swift.max(step, 0)
    if warmupSteps == 0 { return step == 0 ? peak : Float(Double(peak) / Double(step).squareRoot()) }
    if step < warmupSteps { return Float(Double(peak) * Double(step) / Double(warmupSteps)) }
    return Float(Double(peak) * (Double(warmupSteps) / Double(step)).squareRoot())
  }
}

/// Linear warmup, then linear decay to 0 (`transformers.get_linear_schedule_with_warmup`,
/// safari's `linear_warmup`): `peak * step / warmupSteps` up to `warmupSteps`, then
/// `peak * (totalSteps - step) / (totalSteps - warmupSteps)`, and 0 from `totalSteps` on.
/// Without warmup the decay starts at `peak` on step 0. A negative step counts as 0.
public struct LinearWarmupDecay: LearningRateSchedule {
  /// The peak rate, reached at `warmupSteps`; the warmup length; the step where the rate reaches 0.
  public var peak: Float, warmupSteps: Int, totalSteps: Int

  /// A schedule with `0 <= warmupSteps <= totalSteps` and `totalSteps >= 1`.
  public init(peak: Float, warmupSteps: Int, totalSteps: Int) {
    precondition(
      warmupSteps >= 0 && totalSteps >= 1 && warmupSteps <= totalSteps,
      "LinearWarmupDecay: need 0 <= warmupSteps <= totalSteps, totalSteps >= 1")
    self.peak = peak
    self.warmupSteps = warmupSteps
    self.totalSteps = totalSteps
  }

  /// The formula above at `step`, in Double.
  public func rate(at step: Int) -> Float {
    let step = Swift.max(step, 0)
    if step < warmupSteps { return Float(Double(peak) * Double(step) / Double(warmupSteps)) }
    if step >= totalSteps { return 0 }
    return Float(Double(peak) * Double(totalSteps - step) / Double(totalSteps - warmupSteps))
  }
}

/// Linear warmup, then constant: `peak * min(1, step / warmupSteps)` (`peak` throughout
/// without warmup). A negative step counts as 0.
public struct WarmupConstant: LearningRateSchedule {
  /// The rate after warmup and the warmup length in steps (0: none).
  public var peak: Float, warmupSteps: Int

  /// A schedule with `warmupSteps >= 0`.
  public init(peak: Float, warmupSteps: Int) {
    precondition(warmupSteps >= 0, "WarmupConstant: warmupSteps must be >= 0")
    self.peak = peak
    self.warmupSteps = warmupSteps
  }

  /// `peak * min(1, step / warmupSteps)`, in Double.
  public func rate(at step: Int) -> Float {
    if warmupSteps == 0 { return peak }
    return Float(Double(peak) * Swift.min(1, Double(Swift.max(step, 0)) / Double(warmupSteps)))
  }
}
