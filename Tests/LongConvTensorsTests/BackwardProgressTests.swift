import LongConvTensors
import LongConvTestSupport
import Testing

/// `backward(watching:progress:)`: each watched parameter is reported once, at a moment its
/// gradient is already final, and early enough to overlap the rest of the backward pass.
@Suite struct BackwardProgressTests {
  /// `sum(((tanh(s W1) + s W1) W2) * R)` with `s = x * w3` first (W1 read twice), computed
  /// in a recomputed segment or not, and a parameter the loss does not read.
  struct Graph {
    let w1 = uniformTensor([3, 4], seed: 11).requiringGradient()
    let w2 = uniformTensor([4, 2], seed: 12).requiringGradient()
    let w3 = uniformTensor([3], seed: 13).requiringGradient()
    let unused = uniformTensor([5], seed: 14).requiringGradient()
    let x = uniformTensor([6, 3], seed: 15)
    let r = uniformTensor([6, 2], seed: 16)
    var parameters: [Tensor] { [w1, w2, w3, unused] }

    func loss(recompute: Bool) -> Tensor {
      // In the segment, w3 is not an input of the recorded node: only its pullback reaches it.
      let s = recompute ? Tensor.recomputed([x]) { [w3] in $0[0] * w3 } : x * w3
      return ((s.matmul(w1).tanh() + s.matmul(w1)).matmul(w2) * r).sum()
    }
  }

  func check(recompute: Bool) {
    let reference = Graph()
    reference.loss(recompute: recompute).backward()
    let expected = reference.parameters.map { $0.gradient?.scalars }

    let graph = Graph()
    var reported: [Int] = []
    var calls = 0
    var reportedAtCall: [Int: Int] = [:]
    graph.loss(recompute: recompute).backward(watching: graph.parameters) { completed in
      calls += 1
      for p in completed {
        reported.append(p)
        reportedAtCall[p] = calls
        // Complete means final: the gradient is already what the whole pass gives.
        #expect(
          graph.parameters[p].gradient?.scalars == expected[p], "parameter \(p) reported before it was final")
      }
    }
    #expect(reported.sorted() == [0, 1, 2, 3], "every parameter exactly once: \(reported)")
    for p in 0..<4 {
      #expect(graph.parameters[p].gradient?.scalars == expected[p])
    }
    #expect(reportedAtCall[3] == calls, "a parameter the loss does not read comes with the last call")
    if recompute {
      // The segment, the first op, may read any parameter: nothing is final before it ran.
      #expect(reportedAtCall[0]! >= calls - 1 && reportedAtCall[1]! >= calls - 1)
    } else {
      // W2 (read last in the forward pass) is final first, then W1, then w3 (read first).
      #expect(reportedAtCall[1]! < reportedAtCall[0]!)
      #expect(reportedAtCall[0]! < reportedAtCall[2]!)
    }
  }

  @Test func parametersAreReportedOnceWhenFinal() { check(recompute: false) }
  @Test func recomputedSegmentsHoldBackEveryParameter() { check(recompute: true) }
}
