import LongConvTensors
import LongConvTestSupport
import LongConvTraining
import Testing

/// ``GradientExchange`` in one process, with a reducer standing in for two identical
/// processes: what it leaves in the gradients, the order its buckets start in, and that they
/// start during the backward pass when overlapping (the MPI runs are in scripts/mpi-smoke.sh).
@Suite struct GradientExchangeTests {
  /// Two processes with the same gradients: a sum doubles the buffer. Records the size of
  /// each bucket started.
  final class Doubling: GradientReducer {
    let rank = 0, size = 2
    var starts: [Int] = []
    var pending: [UnsafeMutableBufferPointer<Float>] = []
    func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
      for i in buffer.indices { buffer[i] *= 2 }
    }
    func sum(_ values: [Double]) throws -> [Double] { values.map { 2 * $0 } }
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws {}
    func gather(_ value: UInt64) throws -> [UInt64] { [value, value] }
    func barrier() throws {}
    func startSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
      starts.append(buffer.count)
      pending.append(buffer)
    }
    func completeSums() throws {
      for buffer in pending { try sum(buffer) }
      pending = []
    }
  }

  /// Three layers `sum(tanh(tanh(x A) B) C * R)`, a frozen bias and an unused parameter.
  struct Model {
    let a = uniformTensor([4, 6], seed: 21).requiringGradient()
    let b = uniformTensor([6, 5], seed: 22).requiringGradient()
    let c = uniformTensor([5, 3], seed: 23).requiringGradient()
    let frozen = uniformTensor([3], seed: 24).requiringGradient()
    let unused = uniformTensor([7], seed: 25).requiringGradient()
    let x = uniformTensor([8, 4], seed: 26)
    let r = uniformTensor([8, 3], seed: 27)
    init() { frozen.isFrozen = true }
    var parameters: [Tensor] { [a, b, c, frozen, unused] }
    func loss() -> Tensor { ((x.matmul(a).tanh().matmul(b).tanh().matmul(c) + frozen) * r).sum() }
  }

  func run(overlap: Bool, bucketScalars: Int) throws -> (Model, Doubling) {
    let model = Model()
    let reducer = Doubling()
    let exchange = GradientExchange(
      parameters: model.parameters, reducer: reducer, bucketScalars: bucketScalars, overlap: overlap)
    let timing = try exchange.backward(model.loss(), scale: 0.25)
    let bytes: Int = timing.bytes
    #expect(bytes == 4 * 76, "A, B, C and the unused parameter (zeros): 76 Float32 scalars")
    return (model, reducer)
  }

  @Test func gradientsAreScaledSumsAndUnusedOnesStayEmpty() throws {
    let reference = Model()
    reference.loss().backward()
    for bucketScalars in [1, 7, 30, 1 << 20] {
      for overlap in [true, false] {
        let (model, reducer) = try run(overlap: overlap, bucketScalars: bucketScalars)
        for (p, q) in zip(model.parameters, reference.parameters) where !p.isFrozen {
          // 0.25 * g doubled: exactly 0.5 g (scaling by powers of two is exact).
          let expected: [Float]? = q.gradient.map { g in g.scalars.map { 0.5 * $0 } }
          #expect(p.gradient?.scalars == expected, "bucket \(bucketScalars)")
        }
        #expect(model.frozen.gradient == nil && model.unused.gradient == nil)
        // The buckets cover every parameter that is not frozen, cut every `bucketScalars` scalars.
        let bucketed: Int = reducer.starts.reduce(0, +)
        #expect(bucketed == 76)
        #expect(reducer.starts.allSatisfy { $0 <= bucketScalars })
      }
    }
  }

  @Test func bucketsStartDuringTheBackwardPassOnlyWhenOverlapping() throws {
    final class Watch: GradientReducer {
      let rank = 0, size = 2
      var started = 0
      var progressSinceStart = 0
      var startedBeforeEnd = 0
      func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
      func sum(_ values: [Double]) throws -> [Double] { values }
      func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws {}
      func gather(_ value: UInt64) throws -> [UInt64] { [value, value] }
      func barrier() throws {}
      func startSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { started += 1 }
      func progressSums() throws { progressSinceStart += started > 0 ? 1 : 0 }
      func completeSums() throws { startedBeforeEnd = progressSinceStart }
    }
    for overlap in [true, false] {
      let model = Model()
      let reducer = Watch()
      let exchange = GradientExchange(
        parameters: model.parameters, reducer: reducer, bucketScalars: 15, overlap: overlap)
      _ = try exchange.backward(model.loss(), scale: 1)
      // unused 7 + C 8 | C 7 + B 8 | B 15 | B 7 + A 8 | A 15 | A 1
      #expect(reducer.started == 6)
      // Overlapping, C's bucket starts while A and B are still being differentiated and the
      // reducer is then given chances to progress; not overlapping, nothing starts before the end.
      #expect((reducer.startedBeforeEnd > 0) == overlap, "overlap \(overlap): \(reducer.startedBeforeEnd)")
    }
  }
}
