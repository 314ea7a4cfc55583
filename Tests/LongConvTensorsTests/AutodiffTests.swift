import Foundation
import LongConvTensors
import LongConvTestSupport
import Testing

/// The graph and `backward()`: accumulation, shared parameters, constants, the no-recording
/// scope, releasing the graph; dropout and the seeded generator.
@Suite struct AutodiffTests {
  @Test func gradientsAccumulateOverBackwardPassesUntilZeroed() {
    let p = uniformTensor([4], seed: 121).requiringGradient()
    let c = uniformTensor([4], seed: 122)
    let loss = { (p * p * c).sum() }  // d/dp = 2 p c
    let once = zip(p.doubles, c.doubles).map { 2 * $0 * $1 }
    loss().backward()
    expectClose(p.gradient!, once, "after one backward")
    loss().backward()
    expectClose(p.gradient!, once.map { 2 * $0 }, "after two backwards")
    p.zeroGradient()
    #expect(p.gradient == nil)
    loss().backward()
    expectClose(p.gradient!, once, "after zeroGradient and one backward")
  }

  @Test func aParameterUsedSeveralTimesAddsItsGradients() {
    let p = uniformTensor([5], seed: 123).requiringGradient()
    let c = uniformTensor([5], seed: 124)
    (p * c + p.exp() + p).sum().backward()
    expectClose(p.gradient!, zip(p.doubles, c.doubles).map { $1 + exp($0) + 1 }, "p c + exp(p) + p")

    let q = uniformTensor([5], seed: 125).requiringGradient()
    (q.sin() * q.cos()).sum().backward()  // d/dq sin q cos q = cos 2q
    expectClose(q.gradient!, q.doubles.map { cos(2 * $0) }, "sin q cos q")

    let r = uniformTensor([3], seed: 126).requiringGradient()
    (r + r).sum().backward()
    #expect(r.gradient?.scalars == [2, 2, 2])
  }

  @Test func anInteriorValueUsedSeveralTimesAddsItsGradients() {
    // y = a^2 reaches the loss three times, twice through one add (whose pullback hands the
    // same storage to both inputs) and once directly: v = (y + y) * y = 2 y^2, so
    // dL/da = 4 y r * 2 a = 8 a^3 r. Large enough for the threaded in-place addition.
    let a = uniformTensor([70_000], seed: 127).requiringGradient()
    let r = uniformTensor([70_000], seed: 128)
    let y = a * a
    ((y + y) * y * r).sum().backward()
    expectClose(a.gradient!, zip(a.doubles, r.doubles).map { 8 * $0 * $0 * $0 * $1 }, "8 a^3 r")
    checkGradients("(y + y) * y with y = a^2", inputs: [uniformTensor([4], seed: 129)]) {
      let y = $0[0] * $0[0]
      return (y + y) * y + y.exp()
    }
  }

  @Test func eachParameterOwnsItsGradientStorage() {
    // Add's pullback hands the same tensor to both inputs; scaling one gradient in place (as
    // an optimizer's clipping does) must leave the other alone.
    let p = uniformTensor([5], seed: 131).requiringGradient()
    let q = uniformTensor([5], seed: 132).requiringGradient()
    let r = uniformTensor([5], seed: 133).requiringGradient()
    ((p + q) * 2 + r.reshaped([5, 1]).reshaped([5])).sum().backward()
    p.gradient!.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = -7 } }
    expectClose(q.gradient!, [Double](repeating: 2, count: 5), "q after p's gradient was changed")
    expectClose(r.gradient!, [Double](repeating: 1, count: 5), "r after p's gradient was changed")
    #expect(p.gradient!.storage !== q.gradient!.storage && q.gradient!.storage !== r.gradient!.storage)
  }

  @Test func constantsAndDetachedTensorsGetNoGradient() {
    let p = uniformTensor([3], seed: 127).requiringGradient()
    let c = uniformTensor([3], seed: 128)
    #expect(p.requiresGradient && !c.requiresGradient)
    #expect(!(c * c).requiresGradient, "an op on constants records nothing")
    #expect(!p.detached().requiresGradient)
    let interior = p * c
    #expect(interior.requiresGradient)
    (interior + p.detached() * p).sum().backward()
    #expect(c.gradient == nil)
    #expect(interior.gradient == nil, "interior gradients are dropped after use")
    // detached(p) * p differentiates as a constant times p.
    expectClose(p.gradient!, zip(p.doubles, c.doubles).map { $1 + $0 }, "c + detached(p)")
  }

  @Test func aScalarParameterIsItsOwnLoss() {
    let p = Tensor(3).requiringGradient()
    p.backward()
    #expect(p.gradient?.scalar == 1)
  }

  @Test func noRecordingScope() {
    let p = uniformTensor([3, 3], seed: 129).requiringGradient()
    #expect(Tensor.isRecording)
    let y = Tensor.withoutRecording {
      #expect(!Tensor.isRecording)
      let inner = Tensor.withoutRecording { p.exp() }
      #expect(!Tensor.isRecording, "still off after a nested scope")
      return (p.matmul(p) + inner).softmax().layerNorm().sum()
    }
    #expect(Tensor.isRecording, "recording resumes after the scope")
    #expect(!y.requiresGradient)
    #expect(p.gradient == nil)
    #expect(p.exp().requiresGradient)
  }

  @Test func theGraphIsReleasedAfterBackward() {
    let p = uniformTensor([128, 128], seed: 130).requiringGradient()
    weak var saved: TensorStorage?
    let loss: Tensor
    do {
      let h = p.exp()  // exp's pullback keeps its output, as does the product's
      saved = h.storage
      loss = (h * 2).sum()
    }
    #expect(saved != nil, "before backward the graph holds the saved tensor")
    loss.backward()
    #expect(saved == nil, "backward releases the saved tensors, though the loss is still alive")
    #expect(loss.scalar.isFinite && p.gradient != nil)
  }

  @Test func aSecondBackwardOnTheSameGraphStops() async {
    await #expect(processExitsWith: .failure) {
      let p = Tensor([1, 2]).requiringGradient()
      let loss = p.exp().sum()
      loss.backward()
      loss.backward()
    }
  }

  @Test func backwardFromANonScalarStops() async {
    await #expect(processExitsWith: .failure) {
      Tensor([1, 2]).requiringGradient().exp().backward()
    }
  }

  /// Tests that read the process-wide node counter. Other suites run in parallel and bump it
  /// too, so a check is only conclusive when the delta is exactly 0: the counter never goes
  /// down, so a scope that recorded its ops would show a delta of at least their number on
  /// every attempt. A few attempts make a quiet window likely.
  @Suite(.serialized) struct NodeCounter {
    func smallestDelta(attempts: Int = 50, _ body: () -> Void) -> Int {
      var smallest = Int.max
      for _ in 0..<attempts where smallest > 0 {
        let before = GradientRecording.nodesCreated
        body()
        smallest = min(smallest, GradientRecording.nodesCreated - before)
      }
      return smallest
    }

    func manyOps(_ p: Tensor) -> Tensor {
      var y = p
      for _ in 0..<40 { y = (y * p + p).tanh() }  // 120 ops
      return y.sum()
    }

    @Test func noNodesInsideTheNoRecordingScope() {
      let p = uniformTensor([4, 4], seed: 131).requiringGradient()
      let delta = smallestDelta {
        let y = Tensor.withoutRecording { manyOps(p) }
        #expect(!y.requiresGradient)
      }
      #expect(delta == 0, "withoutRecording created \(delta) graph nodes")
      #expect(p.gradient == nil)
      // The same ops with recording on create a node each.
      let before = GradientRecording.nodesCreated
      let y = manyOps(p)
      #expect(GradientRecording.nodesCreated - before >= 121)
      #expect(y.requiresGradient)
    }

    @Test func noNodesForOpsOnConstants() {
      let c = uniformTensor([4, 4], seed: 132)
      let delta = smallestDelta { _ = manyOps(c) }
      #expect(delta == 0, "ops on constants created \(delta) graph nodes")
    }
  }

  // MARK: Dropout

  @Test func dropoutIsDeterministicPerSeed() {
    let x = uniformTensor([1000], seed: 133, low: 0.5, high: 1.5)
    var g1 = SeededGenerator(seed: 7)
    var g2 = SeededGenerator(seed: 7)
    var g3 = SeededGenerator(seed: 8)
    let a = x.dropout(probability: 0.3, generator: &g1)
    let b = x.dropout(probability: 0.3, generator: &g2)
    let c = x.dropout(probability: 0.3, generator: &g3)
    #expect(a.scalars == b.scalars, "same seed, same mask")
    #expect(a.scalars != c.scalars, "another seed, another mask")
    let next = x.dropout(probability: 0.3, generator: &g1)
    #expect(next.scalars != a.scalars, "the generator advances")
    var g4 = SeededGenerator(seed: 7)
    #expect(x.dropout(probability: 0, generator: &g4).scalars == x.scalars, "probability 0 is the identity")
  }

  @Test(arguments: [0.1, 0.25, 0.5, 0.9] as [Float])
  func dropoutScalesTheKeptValues(probability: Float) {
    let n = 20_000
    let x = uniformTensor([n], seed: 134, low: 0.5, high: 1.5)
    var rng = SeededGenerator(seed: 135)
    let y = x.dropout(probability: probability, generator: &rng)
    let p = Double(probability)
    var zeros = 0
    var wrongScale = 0
    for (xi, yi) in zip(x.doubles, y.doubles) {
      if yi == 0 {
        zeros += 1
      } else if Swift.abs(yi - xi / (1 - p)) > 1e-6 * xi / (1 - p) {
        wrongScale += 1
      }
    }
    #expect(wrongScale == 0, "kept values are x / (1 - p)")
    // Binomial: the standard deviation of the zero fraction is sqrt(p (1 - p) / n) <= 0.0036.
    #expect(Swift.abs(Double(zeros) / Double(n) - p) < 0.02, "zero fraction \(Double(zeros) / Double(n))")
    // The mean is preserved in expectation; its standard deviation here is below 0.03.
    let ratio = y.doubles.reduce(0, +) / x.doubles.reduce(0, +)
    #expect(Swift.abs(ratio - 1) < 0.1, "mean ratio \(ratio)")
  }

  @Test func dropoutGradientIsTheMask() {
    let x = uniformTensor([50], seed: 136, low: 0.5, high: 1.5).requiringGradient()
    let w = uniformTensor([50], seed: 137)
    var rng = SeededGenerator(seed: 138)
    let y = x.dropout(probability: 0.4, generator: &rng)
    (y * w).sum().backward()
    // dy/dx is the mask: 0 or 1 / (1 - p), recovered as y / x.
    let expected = zip(zip(y.doubles, x.doubles), w.doubles).map { $0.0 / $0.1 * $1 }
    expectClose(x.gradient!, expected, "dropout gradient")
  }

  // MARK: SeededGenerator

  /// xoshiro256** seeded through SplitMix64, written from the published algorithms.
  struct ReferenceGenerator {
    var s: [UInt64]
    init(seed: UInt64) {
      var x = seed
      s = (0..<4).map { _ in
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
      }
    }
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
    mutating func next() -> UInt64 {
      let result = Self.rotl(s[1] &* 5, 7) &* 9
      let t = s[1] << 17
      s[2] ^= s[0]
      s[3] ^= s[1]
      s[1] ^= s[2]
      s[0] ^= s[3]
      s[2] ^= t
      s[3] = Self.rotl(s[3], 45)
      return result
    }
  }

  @Test(arguments: [0, 1, 42, 0xDEAD_BEEF, UInt64.max] as [UInt64])
  func generatorIsXoshiro256StarStar(seed: UInt64) {
    var reference = ReferenceGenerator(seed: seed)
    if seed == 0 {
      // SplitMix64's first outputs from 0, as published.
      #expect(reference.s[0] == 0xE220_A839_7B1D_CDAF)
      #expect(reference.s[1] == 0x6E78_9E6A_A1B9_65F4)
    }
    var g = SeededGenerator(seed: seed)
    var again = SeededGenerator(seed: seed)
    for i in 0..<16 {
      let value = g.next()
      #expect(value == reference.next(), "output \(i)")
      #expect(value == again.next(), "same seed, same stream")
    }
    var other = SeededGenerator(seed: seed &+ 1)
    var g2 = SeededGenerator(seed: seed)
    #expect((0..<4).map { _ in other.next() } != (0..<4).map { _ in g2.next() })
  }

  struct Moments {
    var mean = 0.0, variance = 0.0, minimum = Double.infinity, maximum = -Double.infinity
    init(_ values: [Double]) {
      let n = Double(values.count)
      mean = values.reduce(0, +) / n
      variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n
      minimum = values.min()!
      maximum = values.max()!
    }
  }

  @Test func uniformAndNormalMoments() {
    let n = 100_000
    var g = SeededGenerator(seed: 139)
    // Standard errors: uniform mean 0.0009, variance 0.0003; normal mean 0.0032, variance 0.0045.
    let u = Moments((0..<n).map { _ in Double(g.nextUniform()) })
    #expect(u.minimum >= 0 && u.maximum < 1)
    #expect(Swift.abs(u.mean - 0.5) < 0.005 && Swift.abs(u.variance - 1.0 / 12) < 0.002, "\(u)")
    let ud = Moments((0..<n).map { _ in g.nextUniformDouble() })
    #expect(ud.minimum >= 0 && ud.maximum < 1)
    #expect(Swift.abs(ud.mean - 0.5) < 0.005 && Swift.abs(ud.variance - 1.0 / 12) < 0.002, "\(ud)")
    let normals = (0..<n).map { _ in Double(g.nextNormal()) }
    let z = Moments(normals)
    #expect(Swift.abs(z.mean) < 0.02 && Swift.abs(z.variance - 1) < 0.03, "\(z)")
    let withinOneSigma = Double(normals.filter { Swift.abs($0) < 1 }.count) / Double(n)
    #expect(Swift.abs(withinOneSigma - 0.682_689) < 0.01, "P(|z| < 1) = \(withinOneSigma)")
  }

  @Test func randomTensorsHaveTheRequestedMoments() {
    var g = SeededGenerator(seed: 140)
    let normal = Tensor.normal([50_000], mean: 2, std: 3, generator: &g)
    let nm = Moments(normal.doubles)
    #expect(Swift.abs(nm.mean - 2) < 0.1 && Swift.abs(nm.variance - 9) < 0.3, "\(nm)")
    let uniform = Tensor.uniform([50_000], low: -2, high: 4, generator: &g)
    let um = Moments(uniform.doubles)
    #expect(um.minimum >= -2 && um.maximum < 4)
    #expect(Swift.abs(um.mean - 1) < 0.05 && Swift.abs(um.variance - 3) < 0.1, "\(um)")
    var g1 = SeededGenerator(seed: 141)
    var g2 = SeededGenerator(seed: 141)
    #expect(Tensor.normal([10], generator: &g1).scalars == Tensor.normal([10], generator: &g2).scalars)
  }
}
