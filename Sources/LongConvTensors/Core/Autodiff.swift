import Synchronization

/// One recorded op in the computation graph: the nodes of its inputs and its pullback.
///
/// A leaf node belongs to a tensor created by ``Tensor/requiringGradient()`` (a parameter);
/// its gradient survives ``Tensor/backward()`` and accumulates over backward passes until
/// ``Tensor/zeroGradient()``. Interior nodes drop their pullback, inputs and gradient as soon
/// as the backward pass has used them, so the graph is released after `backward()`.
final class GraphNode: @unchecked Sendable {
  /// Name of the op, for error messages.
  let op: String
  /// Nodes of the inputs that need gradients (`nil` for constant inputs).
  var inputs: [GraphNode?]
  /// Maps the gradient of the output to the gradients of the inputs, in `inputs` order.
  var pullback: ((Tensor) -> [Tensor?])?
  /// The accumulated gradient of the loss with respect to this node's value.
  var gradient: Tensor?
  /// Shape of the value, to check gradients as they arrive.
  let shape: [Int]
  let isLeaf: Bool
  /// A frozen parameter takes no gradient (see ``Tensor/isFrozen``).
  var isFrozen = false
  /// Gradients of slices of this (interior) node's value, added in by
  /// ``assembleSliceGradients()`` once every consumer's pullback has run.
  var sliceGradients: [SliceGradient] = []

  init(op: String, shape: [Int], inputs: [GraphNode?], pullback: ((Tensor) -> [Tensor?])?) {
    self.op = op
    self.shape = shape
    self.inputs = inputs
    self.pullback = pullback
    self.isLeaf = pullback == nil
  }

  func accumulate(_ g: consuming Tensor) {
    precondition(
      g.shape == shape,
      "backward: \(op) received a gradient of shape \(g.shape) for a value of shape \(shape)")
    if isLeaf {
      if isFrozen { return }
      // A parameter owns its gradient storage, so optimizers may scale it in place and later
      // passes add into it without allocating.
      if let owned = gradient {
        let (dst, src) = (owned.storage.base, g.storage.base)
        for i in 0..<owned.count { dst[i] += src[i] }
      } else {
        // Take the incoming storage when nothing else holds it (most pullbacks return fresh
        // storage); copy it otherwise.
        let gradientShape = g.shape
        var storage = g.storage
        _ = consume g
        gradient =
          isKnownUniquelyReferenced(&storage)
          ? Tensor(shape: gradientShape, storage: storage)
          : Tensor(shape: gradientShape, storage: storage).copy()
      }
    } else if gradient != nil {
      // Interior gradients may share storage with each other (add's pullback returns one
      // tensor for both inputs): add in place only into storage nothing else holds.
      var storage = gradient!.storage
      gradient = nil
      if isKnownUniquelyReferenced(&storage) {
        let (dst, src) = (SendablePointer(storage.base), SendablePointer(g.storage.base))
        parallelRanges(storage.count) { range in
          for i in range { dst.base[i] += src.base[i] }
        }
        gradient = Tensor(shape: shape, storage: storage)
      } else {
        gradient = Tensor(shape: shape, storage: storage) + g
      }
    } else {
      gradient = g.detached()
    }
  }
}

/// The gradient of a slice `range` of one axis of a node's value: the value read as
/// `[outer, extent, inner]` around that axis, the gradient `[outer, range.count, inner]`.
struct SliceGradient {
  let outer: Int, extent: Int, inner: Int
  let range: Range<Int>
  let values: Tensor

  func overlaps(_ other: SliceGradient) -> Bool { range.overlaps(other.range) }
}

extension GraphNode {
  /// Takes the gradient of a slice of this node's value: kept apart and added in by
  /// ``assembleSliceGradients()`` (a parameter's is added in at once), so that slices
  /// covering the value (Hyena's streams) make one gradient tensor, each value written once,
  /// where a full-size, zero-padded gradient per slice was written and then added up.
  func accumulate(_ slice: SliceGradient) {
    if isLeaf {
      var nothing: Tensor? = nil
      accumulate(GraphNode.assembled([slice], shape: shape, onto: &nothing))
    } else {
      sliceGradients.append(slice)
    }
  }

  /// Adds the kept slice gradients into ``gradient``.
  func assembleSliceGradients() {
    guard !sliceGradients.isEmpty else { return }
    let slices = sliceGradients
    sliceGradients = []
    var onto = gradient
    gradient = nil
    gradient = GraphNode.assembled(slices, shape: shape, onto: &onto)
  }

  /// `onto` (or zeros) plus every slice gradient in place. Without `onto`, when the slices are
  /// along one axis and do not overlap, each is copied into place and only the rest zeroed.
  static func assembled(_ slices: [SliceGradient], shape: [Int], onto: inout Tensor?) -> Tensor {
    let count = Tensor.elementCount(shape)
    let first = slices[0]
    let (outer, extent, inner) = (first.outer, first.extent, first.inner)
    let oneAxis = slices.allSatisfy { $0.outer == outer && $0.extent == extent && $0.inner == inner }
    let disjoint =
      oneAxis && slices.indices.allSatisfy { i in slices[..<i].allSatisfy { !$0.overlaps(slices[i]) } }
    let storage: TensorStorage
    var copyInto = false
    if var base = onto?.storage {
      onto = nil
      storage = isKnownUniquelyReferenced(&base) ? base : Tensor(shape: shape, storage: base).copy().storage
    } else if disjoint {
      storage = TensorStorage(uninitializedCount: count)
      copyInto = true
    } else {
      storage = TensorStorage(count: count, repeating: 0)
    }
    let out = SendablePointer(storage.base)
    if copyInto {
      // The positions of each outer row that no slice covers.
      var gaps: [Range<Int>] = []
      var covered = 0
      for range in slices.map(\.range).sorted(by: { $0.lowerBound < $1.lowerBound }) {
        if range.lowerBound > covered { gaps.append(covered..<range.lowerBound) }
        covered = max(covered, range.upperBound)
      }
      if covered < extent { gaps.append(covered..<extent) }
      if !gaps.isEmpty {
        parallelRanges(outer, grain: max(1, (1 << 14) / max(1, extent * inner))) { rows in
          for o in rows {
            for gap in gaps {
              (out.base + (o * extent + gap.lowerBound) * inner).update(
                repeating: 0, count: gap.count * inner)
            }
          }
        }
      }
    }
    for slice in slices {
      let (o0, e0, i0) = (slice.outer, slice.extent, slice.inner)
      let width = slice.range.count * i0
      let source = SendablePointer(slice.values.storage.base)
      parallelRanges(o0, grain: max(1, (1 << 14) / max(1, width))) { rows in
        for o in rows {
          let (to, from) = (out.base + (o * e0 + slice.range.lowerBound) * i0, source.base + o * width)
          if copyInto {
            to.update(from: from, count: width)
          } else {
            for j in 0..<width { to[j] += from[j] }
          }
        }
      }
    }
    return Tensor(shape: shape, storage: storage)
  }
}

/// Whether ops record a graph. Off inside ``Tensor/withoutRecording(_:)`` and during backward.
///
/// The flag is task-local: threads started by `DispatchQueue.concurrentPerform` do not see a
/// caller's `withoutRecording`, so ops run inside such workers must not create tensors that
/// could record (the toolkit's own parallel loops work on raw buffers).
public enum GradientRecording {
  @TaskLocal static var isEnabled = true
  /// Number of graph nodes ever created in this process (for tests and diagnostics).
  public static var nodesCreated: Int { counter.load(ordering: .relaxed) }
  static let counter = Atomic<Int>(0)
}

extension Tensor {
  /// Runs `body` without recording a graph: no op inside allocates a graph node, so
  /// inference holds no saved tensors and nothing can be differentiated.
  public static func withoutRecording<R>(_ body: () throws -> R) rethrows -> R {
    try GradientRecording.$isEnabled.withValue(false) { try body() }
  }

  /// Whether ops currently record a graph on this task.
  public static var isRecording: Bool { GradientRecording.isEnabled }

  /// This tensor as a leaf of the graph whose gradient ``backward()`` accumulates: a parameter.
  /// Shares the scalars.
  public func requiringGradient() -> Tensor {
    Tensor(
      shape: shape, storage: storage,
      node: GraphNode(op: "parameter", shape: shape, inputs: [], pullback: nil))
  }

  /// Whether this tensor is part of a recorded graph (a parameter or computed from one).
  public var requiresGradient: Bool { node != nil }

  /// The gradient accumulated into this parameter by ``backward()``, or `nil` before any.
  /// Its storage belongs to the parameter alone (optimizers may change it in place).
  public var gradient: Tensor? { node?.gradient }

  /// Whether this parameter is frozen: ``backward()`` gives it no gradient, so optimizers
  /// leave it alone. Setting it on a tensor that is not a parameter does nothing.
  public var isFrozen: Bool {
    get { node?.isFrozen ?? false }
    nonmutating set {
      guard let node, node.isLeaf else { return }
      node.isFrozen = newValue
      if newValue { node.gradient = nil }
    }
  }

  /// Adds `g` to this parameter's gradient as ``backward()`` would (nothing for a frozen
  /// parameter or a tensor that is not a parameter).
  public func accumulateGradient(_ g: Tensor) {
    guard let node, node.isLeaf else { return }
    node.accumulate(g)
  }

  /// Forgets the gradient accumulated into this parameter.
  public func zeroGradient() { node?.gradient = nil }

  /// The output of an op: records a node when recording is on and an input needs a gradient.
  ///
  /// `pullback` maps the output gradient to one gradient per entry of `inputs` (or `nil`
  /// where the input is constant); it runs with recording off.
  static func recorded(
    _ op: String, shape: [Int], storage: TensorStorage, inputs: [Tensor],
    pullback: @escaping (Tensor) -> [Tensor?]
  ) -> Tensor {
    guard GradientRecording.isEnabled, inputs.contains(where: { $0.node != nil }) else {
      return Tensor(shape: shape, storage: storage)
    }
    GradientRecording.counter.add(1, ordering: .relaxed)
    let node = GraphNode(op: op, shape: shape, inputs: inputs.map(\.node), pullback: pullback)
    return Tensor(shape: shape, storage: storage, node: node)
  }

  /// Reverse-mode differentiation of this scalar: accumulates `d self / d p` into the
  /// gradient of every parameter `p` it depends on, walking the graph once in reverse
  /// topological order, then releases the graph.
  ///
  /// Calling it twice on the same graph stops the program; build the graph again instead.
  public func backward() { backward(watching: []) { _ in } }

  /// ``backward()`` that reports, while it runs, which of `parameters` have their complete
  /// gradient: after each op's pullback, `progress` receives the indices (into `parameters`)
  /// of those no later op can add to, possibly none; the last call holds every index not yet
  /// reported, including parameters the loss does not depend on. Each index is reported once.
  ///
  /// A parameter is complete once the pullbacks of all ops that read it have run. The ops
  /// inside a ``recomputed(_:_:)`` segment are not in this graph, so a parameter is reported
  /// only after the last (in backward order) recomputed segment too. Data-parallel training
  /// uses this to start summing gradients while the backward pass goes on.
  public func backward(watching parameters: [Tensor], progress: ([Int]) -> Void) {
    precondition(count == 1, "backward: the loss must be a scalar, got shape \(shape)")
    guard let root = node else {
      preconditionFailure("backward: this tensor was not recorded (constant, or computed without recording)")
    }
    precondition(
      root.isLeaf || root.pullback != nil, "backward: the graph was already released by an earlier backward()"
    )
    let order = Tensor.topologicalOrder(from: root)
    let completeAfter = Tensor.completionPositions(of: parameters, in: order)
    Tensor.withoutRecording {
      root.accumulate(Tensor(repeating: 1, shape: shape))
      for (position, node) in order.enumerated().reversed() {
        guard let pullback = node.pullback else { continue }
        node.assembleSliceGradients()
        if let g = node.gradient {
          let grads = pullback(g)
          precondition(
            grads.count == node.inputs.count,
            "backward: \(node.op) returned \(grads.count) gradients for \(node.inputs.count) inputs")
          var remaining = grads
          for index in remaining.indices {
            guard let input = node.inputs[index], let grad = remaining[index] else { continue }
            remaining[index] = nil  // so a parameter can take the storage without copying
            input.accumulate(grad)
          }
        }
        node.pullback = nil
        node.inputs = []
        node.gradient = nil
        node.sliceGradients = []
        if !parameters.isEmpty { progress(completeAfter[position] ?? []) }
      }
      if !parameters.isEmpty { progress(completeAfter[-1] ?? []) }
    }
  }

  /// For each position of `order`, the indices of `parameters` whose gradients are complete
  /// once that node's pullback has run (backward runs from the last position to the first):
  /// the earliest node reading the parameter, or the earliest recomputed segment if that comes
  /// sooner (its pullback may reach any parameter). Key -1: parameters not in the graph, or
  /// read only before position 0's pullback ran (the root itself).
  static func completionPositions(of parameters: [Tensor], in order: [GraphNode]) -> [Int: [Int]] {
    guard !parameters.isEmpty else { return [:] }
    var firstReader: [ObjectIdentifier: Int] = [:]
    var firstOpaque = Int.max
    for (position, node) in order.enumerated() {
      if node.op == Tensor.recomputedOp { firstOpaque = min(firstOpaque, position) }
      for case let input? in node.inputs where input.isLeaf {
        let key = ObjectIdentifier(input)
        if firstReader[key] == nil { firstReader[key] = position }
      }
    }
    var positions: [Int: [Int]] = [:]
    for (index, parameter) in parameters.enumerated() {
      var position = parameter.node.flatMap { firstReader[ObjectIdentifier($0)] } ?? -1
      if position >= 0 && firstOpaque != Int.max { position = min(position, firstOpaque) }
      positions[position, default: []].append(index)
    }
    return positions
  }

  /// Nodes reachable from `root`, each after all of its inputs (iterative depth-first search).
  static func topologicalOrder(from root: GraphNode) -> [GraphNode] {
    var order: [GraphNode] = []
    var visited = Set<ObjectIdentifier>()
    var stack: [(GraphNode, Int)] = [(root, 0)]
    visited.insert(ObjectIdentifier(root))
    while let (node, next) = stack.popLast() {
      if next < node.inputs.count {
        stack.append((node, next + 1))
        if let child = node.inputs[next], visited.insert(ObjectIdentifier(child)).inserted {
          stack.append((child, 0))
        }
      } else {
        order.append(node)
      }
    }
    return order
  }
}
