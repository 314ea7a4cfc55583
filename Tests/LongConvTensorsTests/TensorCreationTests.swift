import LongConvTensors
import LongConvTestSupport
import Testing

/// Building tensors from outside data, constants and ranges.
@Suite struct TensorCreationTests {
  @Test func wrongScalarCountThrows() {
    #expect(throws: TensorError.scalarCountMismatch(shape: [2, 3], expected: 6, actual: 5)) {
      try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5])
    }
    #expect(throws: TensorError.scalarCountMismatch(shape: [], expected: 1, actual: 0)) {
      try Tensor(shape: [], scalars: [])
    }
    #expect(throws: TensorError.scalarCountMismatch(shape: [2], expected: 2, actual: 3)) {
      try Tensor(shape: [2], doubles: [1, 2, 3])
    }
    #expect(throws: TensorError.negativeExtent(shape: [2, -1])) {
      try Tensor(shape: [2, -1], scalars: [])
    }
  }

  @Test func theErrorNamesShapeAndCounts() {
    let error = TensorError.scalarCountMismatch(shape: [2, 3], expected: 6, actual: 5)
    #expect(error.description == "shape [2, 3] needs 6 scalars, got 5")
  }

  @Test func scalarsAreStoredRowMajor() throws {
    let t = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
    #expect(t.shape == [2, 3] && t.count == 6 && t.rank == 2)
    #expect(t[0, 0] == 1 && t[0, 2] == 3 && t[1, 0] == 4 && t[1, 2] == 6)
    #expect(!t.requiresGradient && t.gradient == nil)
    let d = try Tensor(shape: [2], doubles: [0.1, -2.5])
    #expect(d.scalars == [Float(0.1), -2.5])
    let empty = try Tensor(shape: [0, 4], scalars: [])
    #expect(empty.count == 0 && empty.shape == [0, 4])
    #expect(Tensor(5).shape == [] && Tensor(5).scalar == 5)
  }

  @Test func constantsAndRanges() {
    #expect(Tensor.zeros([2, 2]).scalars == [0, 0, 0, 0])
    #expect(Tensor.ones([3]).scalars == [1, 1, 1])
    #expect(Tensor(repeating: 2.5, shape: [1, 2]).scalars == [2.5, 2.5])
    #expect(Tensor.arange(0, 5).scalars == [0, 1, 2, 3, 4])
    #expect(Tensor.arange(1, 2, step: 0.25).scalars == [1, 1.25, 1.5, 1.75])
    #expect(Tensor.arange(3, 0, step: -1).scalars == [3, 2, 1])
    #expect(Tensor.arange(0, 0).count == 0)
    expectClose(Tensor.linspace(-1, 1, count: 5), [-1, -0.5, 0, 0.5, 1], tolerance: 0, "linspace")
    expectClose(
      Tensor.linspace(0, 1, count: 4), [0, 1.0 / 3, 2.0 / 3, 1], tolerance: 1e-7, "linspace thirds")
    #expect(Tensor.linspace(3, 7, count: 1).scalars == [3])
  }

  @Test func copyAndDetachedShareOrNot() {
    let p = Tensor([1, 2, 3]).requiringGradient()
    let copy = p.copy()
    let view = p.detached()
    #expect(copy.storage !== p.storage && view.storage === p.storage)
    #expect(!copy.requiresGradient && !view.requiresGradient)
    #expect(copy.scalars == p.scalars)
  }
}
