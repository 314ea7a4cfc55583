import Dispatch
import Foundation
import LongConvTensors

/// Parameters that share a learning-rate scale and a weight decay, as a PyTorch param group.
///
/// `parameterNames` (same order as `parameters`) name the optimizer's state entries; left
/// empty, the parameters are named `"<group name>.<index>"`.
public struct ParameterGroup {
  /// The group's name, the prefix of its parameters' default names.
  public var name: String
  /// The parameters, updated in place.
  public var parameters: [Tensor]
  /// The names of the parameters' state entries.
  public var parameterNames: [String]
  /// Multiplies the optimizer's ``Optimizer/learningRate`` for this group.
  public var learningRateScale: Float
  /// Weight decay coefficient (decoupled for ``AdamW``, added to the gradient for ``SGD``).
  public var weightDecay: Float

  /// A group; `parameterNames` empty names the parameters `"<name>.<index>"`.
  public init(
    name: String, parameters: [Tensor], parameterNames: [String] = [], learningRateScale: Float = 1,
    weightDecay: Float = 0
  ) {
    precondition(
      parameterNames.isEmpty || parameterNames.count == parameters.count,
      "ParameterGroup: \(parameterNames.count) names for \(parameters.count) parameters")
    self.name = name
    self.parameters = parameters
    self.parameterNames =
      parameterNames.isEmpty ? parameters.indices.map { "\(name).\($0)" } : parameterNames
    self.learningRateScale = learningRateScale
    self.weightDecay = weightDecay
  }
}

/// A state entry that does not fit the optimizer it is loaded into.
public struct OptimizerStateError: Error, CustomStringConvertible {
  /// The state key, `"<parameter name>.<slot>"`.
  public let key: String
  /// What does not fit.
  public let problem: String
  /// `optimizer state '<key>': <problem>`.
  public var description: String { "optimizer state '\(key)': \(problem)" }
}

/// An optimizer over parameter groups.
///
/// Optimizers are classes: they hold per-parameter state next to parameters that are
/// themselves shared storage, and a trainer keeps one instance for the whole run. Each call
/// of ``step()`` updates every parameter that has a gradient from that gradient (parameters
/// without one are skipped and their state is untouched, as in PyTorch); it neither clears
/// nor keeps the gradients (call ``zeroGradients()``). The trainer sets ``learningRate``
/// from a schedule before each step; a group's rate is `learningRate * learningRateScale`.
///
/// The state is plain `[Float]` arrays keyed `"<parameter name>.<slot>"` (slots such as
/// `exp_avg`, `exp_avg_sq`, `step`, `momentum_buffer`, PyTorch's names), so a checkpoint can
/// save ``state`` and restore it with ``loadState(_:)``.
public protocol Optimizer: AnyObject {
  /// The parameter groups, in order.
  var groups: [ParameterGroup] { get }
  /// The base learning rate, multiplied by each group's scale.
  var learningRate: Float { get set }
  /// Updates the parameters from their current gradients.
  func step()
  /// The per-parameter state, by `"<parameter name>.<slot>"`.
  var state: [String: [Float]] { get }
  /// Replaces the state; every key must name a known parameter and slot with the right count.
  func loadState(_ state: [String: [Float]]) throws(OptimizerStateError)
}

extension Optimizer {
  /// Every parameter of every group.
  public var parameters: [Tensor] { groups.flatMap(\.parameters) }
  /// Forgets the gradients of every parameter.
  public func zeroGradients() { for p in parameters { p.zeroGradient() } }
}

/// Per-parameter slots of equal length to the parameter, plus a step count; the bookkeeping
/// ``AdamW`` and ``SGD`` share.
struct SlotStore {
  let names: [String]
  let counts: [Int]
  let slotNames: [String]
  /// `slots[slot][parameter]`; an empty array until the parameter's first update.
  var slots: [[[Float]]]
  var steps: [Int]

  init(groups: [ParameterGroup], slotNames: [String]) {
    let names = groups.flatMap(\.parameterNames)
    precondition(Set(names).count == names.count, "Optimizer: duplicate parameter names")
    self.names = names
    counts = groups.flatMap { $0.parameters.map(\.count) }
    self.slotNames = slotNames
    slots = slotNames.map { _ in names.map { _ in [] } }
    steps = names.map { _ in 0 }
  }

  /// Moves a slot's array out (leaving it empty) so it can be written without copying.
  mutating func take(_ slot: Int, _ parameter: Int) -> [Float] {
    defer { slots[slot][parameter] = [] }
    return slots[slot][parameter]
  }

  var exported: [String: [Float]] {
    var out: [String: [Float]] = [:]
    for (i, name) in names.enumerated() where steps[i] > 0 {
      out[name + ".step"] = [Float(steps[i])]
      for (s, slot) in slotNames.enumerated() where !slots[s][i].isEmpty {
        out[name + "." + slot] = slots[s][i]
      }
    }
    return out
  }

  mutating func load(_ state: [String: [Float]]) throws(OptimizerStateError) {
    let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
    var newSlots = slotNames.map { _ in names.map { _ in [Float]() } }
    var newSteps = names.map { _ in 0 }
    for (key, values) in state {
      guard let dot = key.lastIndex(of: "."), let i = index[String(key[..<dot])] else {
        throw OptimizerStateError(key: key, problem: "no parameter of that name")
      }
      let slot = String(key[key.index(after: dot)...])
      if slot == "step" {
        guard values.count == 1, let step = Int(exactly: values[0]), step >= 0 else {
          throw OptimizerStateError(key: key, problem: "expected one non-negative integer, got \(values)")
        }
        newSteps[i] = step
      } else if let s = slotNames.firstIndex(of: slot) {
        guard values.count == counts[i] else {
          throw OptimizerStateError(
            key: key, problem: "expected \(counts[i]) values, got \(values.count)")
        }
        newSlots[s][i] = values
      } else {
        throw OptimizerStateError(key: key, problem: "unknown slot (expected step or \(slotNames))")
      }
    }
    slots = newSlots
    steps = newSteps
  }
}

/// Adam with decoupled weight decay, as `torch.optim.AdamW` (no amsgrad):
///
/// ```
/// p  -= lr * wd * p
/// m   = beta1 m + (1 - beta1) g
/// v   = beta2 v + (1 - beta2) g^2
/// p  -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// with `lr = learningRate * learningRateScale` and `wd` the group's weight decay; `t` counts
/// the updates of that parameter. Slots: `exp_avg` (`m`), `exp_avg_sq` (`v`), `step` (`t`).
public final class AdamW: Optimizer {
  /// The parameter groups, in order.
  public let groups: [ParameterGroup]
  /// The base rate, times each group's ``ParameterGroup/learningRateScale``.
  public var learningRate: Float
  /// Adam's moment decays and the denominator's `eps`.
  public var beta1: Float, beta2: Float, epsilon: Float
  var store: SlotStore

  /// An AdamW over `groups` (PyTorch's defaults).
  public init(
    groups: [ParameterGroup], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
    epsilon: Float = 1e-8
  ) {
    self.groups = groups
    self.learningRate = learningRate
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    store = SlotStore(groups: groups, slotNames: ["exp_avg", "exp_avg_sq"])
  }

  /// `exp_avg`, `exp_avg_sq` and `step` of every parameter updated at least once, keyed
  /// `"<parameter name>.<slot>"`.
  public var state: [String: [Float]] { store.exported }
  /// Replaces all moments and step counts by `state` (absent entries start from zero); throws
  /// ``OptimizerStateError`` for an unknown parameter or slot, a step that is not a non-negative integer, or
  /// a wrong value count, leaving the state as it was.
  public func loadState(_ state: [String: [Float]]) throws(OptimizerStateError) { try store.load(state) }

  /// For each parameter with a gradient `g`: `p *= 1 - lr wd`, `m = beta1 m + (1 - beta1) g`,
  /// `v = beta2 v + (1 - beta2) g^2`, `p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`;
  /// the gradients are left as they are.
  public func step() {
    var i = 0
    for group in groups {
      let lr = learningRate * group.learningRateScale
      let decay = 1 - lr * group.weightDecay
      for p in group.parameters {
        defer { i += 1 }
        guard let g = p.gradient else { continue }
        precondition(g.count == p.count, "AdamW: gradient of \(g.count) for \(p.count) values")
        // Zero moments on the first update (or after a state that lacked them).
        for s in 0..<2 where store.steps[i] == 0 || store.slots[s][i].count != p.count {
          store.slots[s][i] = [Float](repeating: 0, count: p.count)
        }
        store.steps[i] += 1
        let t = Double(store.steps[i])
        let stepSize = Float(Double(lr) / (1 - Foundation.pow(Double(beta1), t)))
        let correction2 = Float((1 - Foundation.pow(Double(beta2), t)).squareRoot())
        let (b1, b2, eps) = (beta1, beta2, epsilon)
        // Moved out of the class's storage while written (one access to `store` at a time).
        var first = store.take(0, i)
        var second = store.take(1, i)
        g.withUnsafeBufferPointer { g in
          first.withUnsafeMutableBufferPointer { m in
            second.withUnsafeMutableBufferPointer { v in
              p.withUnsafeMutableBufferPointer { value in
                let buffers = UnsafeBuffers(g: g, m: m, v: v, value: value)
                // One pass per element; large parameters are split over threads.
                parallelChunks(value.count) { range in
                  let (g, m, v, value) = (buffers.g, buffers.m, buffers.v, buffers.value)
                  for j in range {
                    if decay != 1 { value[j] *= decay }
                    m[j] = b1 * m[j] + (1 - b1) * g[j]
                    v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j]
                    value[j] -= stepSize * m[j] / (v[j].squareRoot() / correction2 + eps)
                  }
                }
              }
            }
          }
        }
        store.slots[0][i] = first
        store.slots[1][i] = second
      }
    }
  }
}

/// The buffers of one AdamW update, handed to worker threads that write disjoint ranges.
private struct UnsafeBuffers: @unchecked Sendable {
  let g: UnsafeBufferPointer<Float>
  let m: UnsafeMutableBufferPointer<Float>, v: UnsafeMutableBufferPointer<Float>
  let value: UnsafeMutableBufferPointer<Float>
}

/// Runs `body` over `0..<count` in contiguous ranges of at least 64 K elements, on up to
/// ``ComputeThreads/count`` threads.
private func parallelChunks(_ count: Int, _ body: @Sendable (Range<Int>) -> Void) {
  let tasks = min(ComputeThreads.count, count >> 16)
  if tasks <= 1 { return body(0..<count) }
  DispatchQueue.concurrentPerform(iterations: tasks) { t in body(count * t / tasks..<count * (t + 1) / tasks)
  }
}

/// Stochastic gradient descent with momentum, as `torch.optim.SGD` with dampening 0:
///
/// ```
/// g  += wd * p                       (weight decay added to the gradient)
/// b   = g  on the first update,  momentum * b + g  after
/// g   = g + momentum * b  (nesterov)  or  b
/// p  -= lr * g
/// ```
///
/// With `momentum == 0` there is no buffer and the update is `p -= lr * g`. The gradient
/// tensor itself is left unchanged. Slots: `momentum_buffer`, `step`.
public final class SGD: Optimizer {
  /// The parameter groups, in order.
  public let groups: [ParameterGroup]
  /// The base rate, times each group's ``ParameterGroup/learningRateScale``.
  public var learningRate: Float
  /// The momentum `mu` (0: none).
  public var momentum: Float
  /// Nesterov momentum (needs `momentum > 0`).
  public var nesterov: Bool
  var store: SlotStore

  /// An SGD over `groups`.
  public init(groups: [ParameterGroup], learningRate: Float, momentum: Float = 0, nesterov: Bool = false) {
    precondition(!nesterov || momentum > 0, "SGD: nesterov needs a positive momentum")
    self.groups = groups
    self.learningRate = learningRate
    self.momentum = momentum
    self.nesterov = nesterov
    store = SlotStore(groups: groups, slotNames: ["momentum_buffer"])
  }

  /// `momentum_buffer` (with momentum) and `step` of every parameter updated at least once, keyed
  /// `"<parameter name>.<slot>"`.
  public var state: [String: [Float]] { store.exported }
  /// Replaces all buffers and step counts by `state` (absent entries start from zero); throws
  /// ``OptimizerStateError`` for an unknown parameter or slot, a step that is not a non-negative integer, or
  /// a wrong value count, leaving the state as it was.
  public func loadState(_ state: [String: [Float]]) throws(OptimizerStateError) { try store.load(state) }

  /// For each parameter with a gradient `g`: `d = g + wd p`; with momentum, `b = d` (first update) or
  /// `mu b + d`, then `d = d + mu b` (Nesterov) or `b`; finally `p -= lr d`. The gradients are left as they
  /// are.
  public func step() {
    var i = 0
    for group in groups {
      let lr = learningRate * group.learningRateScale
      let wd = group.weightDecay
      for p in group.parameters {
        defer { i += 1 }
        guard let g = p.gradient else { continue }
        precondition(g.count == p.count, "SGD: gradient of \(g.count) for \(p.count) values")
        let first = store.steps[i] == 0 || store.slots[0][i].isEmpty
        if momentum != 0 && first { store.slots[0][i] = [Float](repeating: 0, count: p.count) }
        store.steps[i] += 1
        let (mu, useMomentum, nesterov) = (momentum, momentum != 0, nesterov)
        var slot = store.take(0, i)
        g.withUnsafeBufferPointer { g in
          slot.withUnsafeMutableBufferPointer { buffer in
            p.withUnsafeMutableBufferPointer { value in
              for j in 0..<value.count {
                var d = g[j]
                if wd != 0 { d += wd * value[j] }
                if useMomentum {
                  buffer[j] = first ? d : mu * buffer[j] + d
                  d = nesterov ? d + mu * buffer[j] : buffer[j]
                }
                value[j] -= lr * d
              }
            }
          }
        }
        store.slots[0][i] = slot
      }
    }
  }
}
