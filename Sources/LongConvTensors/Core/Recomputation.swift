extension Tensor {
  /// The op name of a recomputed segment's node (its pullback runs a graph of its own).
  static let recomputedOp = "recomputed"

  /// Activation recomputation (gradient checkpointing): `body(inputs)` runs without recording,
  /// so none of its intermediate values are kept, and the result is one recorded op whose
  /// pullback runs `body` again, recording, on leaf copies of the inputs and differentiates
  /// that copy: `d/dx <g, body(x)>` for the inputs, while every parameter `body` reads takes
  /// its gradient during that second run. Memory falls from every intermediate of `body` to
  /// its inputs and output; time grows by one forward pass of `body`.
  ///
  /// `body` must compute the same function both times (no randomness of its own) and must not
  /// throw the second time if it did not the first.
  public static func recomputed(_ inputs: [Tensor], _ body: @escaping ([Tensor]) throws -> Tensor) rethrows
    -> Tensor
  {
    guard GradientRecording.isEnabled else { return try body(inputs) }
    let output = try Tensor.withoutRecording { try body(inputs) }
    GradientRecording.counter.add(1, ordering: .relaxed)
    // Recorded even when no input needs a gradient: the parameters inside `body` may.
    let node = GraphNode(op: Tensor.recomputedOp, shape: output.shape, inputs: inputs.map(\.node)) { g in
      let leaves = inputs.map { $0.node == nil ? $0 : $0.detached().requiringGradient() }
      let replay = GradientRecording.$isEnabled.withValue(true) { try! body(leaves) }
      guard replay.node != nil else { return inputs.map { _ in nil } }
      GradientRecording.$isEnabled.withValue(true) { (replay * g).sum() }.backward()
      return zip(inputs, leaves).map { input, leaf in input.node == nil ? nil : leaf.gradient }
    }
    return Tensor(shape: output.shape, storage: output.storage, node: node)
  }
}
