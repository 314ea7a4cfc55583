import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Testing

@Suite("HyenaOperator")
struct HyenaOperatorTests {
  /// MODELS.md section 3 in Double with dense products: in_proj, causal short convolution with
  /// bias, split, `x0 * (h * (x1 v) + D x1 v)`, out_proj. The long kernel's coefficients are
  /// read from the kernel (tested on their own).
  static func reference<K: LongConvKernel>(_ op: HyenaOperator<K>, _ x: Tensor) throws -> [Double] {
    let (batch, length, d) = (x.shape[0], x.shape[1], x.shape[2])
    let rows = batch * length
    let input = x.doubles
    func linear(_ layer: Linear, _ a: [Double]) -> [Double] {
      let (n, m) = (layer.inputCount, layer.outputCount)
      var out = Dense.matmul(
        a, Dense.transpose(layer.weight.doubles, rows: m, columns: n), m: rows, k: n, n: m)
      if let bias = layer.bias?.doubles {
        for r in 0..<rows { for o in 0..<m { out[r * m + o] += bias[o] } }
      }
      return out
    }
    let u = linear(op.inProj, input)
    let (w, beta) = (op.shortFilter.doubles, op.shortFilterBias.doubles)
    // The short filter: a causal convolution with as many lags as it has columns, plus a bias.
    var filtered = Dense.longConvolution(
      u, batch: batch, length: length, channels: 3 * d, kernel: w, direction: .causal)
    for r in 0..<rows { for c in 0..<3 * d { filtered[r * 3 * d + c] += beta[c] } }
    func stream(_ k: Int) -> [Double] {
      (0..<rows).flatMap { r in (0..<d).map { filtered[r * 3 * d + k * d + $0] } }
    }
    let (x0, x1, v) = (stream(0), stream(1), stream(2))
    let z = zip(x1, v).map { $0 * $1 }
    let y = Dense.longConvolution(
      z, batch: batch, length: length, channels: d,
      kernel: try op.kernel.coefficients(length: length).doubles,
      direction: op.kernel.direction, skip: op.kernel.skip?.doubles)
    return linear(op.outProj, zip(x0, y).map { $0 * $1 })
  }

  static func hyenaOperator(width: Int = 3, maxLength: Int = 6, seed: UInt64 = 21) -> HyenaOperator<
    HyenaFilter
  > {
    var generator = SeededGenerator(seed: seed)
    let kernel = HyenaFilter(
      channels: width, maxLength: maxLength, embeddingDimension: 3, width: 3, innerLayers: 1,
      generator: &generator)
    return HyenaOperator(width: width, kernel: kernel, generator: &generator)
  }

  static func explicitOperator(
    width: Int = 3, direction: ConvolutionDirection, maxLength: Int = 6, seed: UInt64 = 22
  ) -> HyenaOperator<ExplicitKernel> {
    var generator = SeededGenerator(seed: seed)
    let kernel = ExplicitKernel(
      channels: width, direction: direction, maxLength: maxLength, lambda: 0, initStd: 0.4,
      generator: &generator)
    return HyenaOperator(width: width, kernel: kernel, generator: &generator)
  }

  @Test("output matches the dense computation in Double (hyena filter, causal)")
  func outputHyena() throws {
    let op = Self.hyenaOperator()
    for length in [6, 4] {
      let x = uniformTensor([2, length, 3], seed: 31)
      let y = try op(x)
      #expect(y.shape == [2, length, 3])
      expectClose(y, try Self.reference(op, x), "hyena operator L=\(length)")
    }
  }

  @Test("output matches the dense computation in Double (explicit kernel, both directions)")
  func outputExplicit() throws {
    for direction in ConvolutionDirection.allCases {
      let op = Self.explicitOperator(direction: direction)
      let x = uniformTensor([2, 5, 3], seed: 32)
      expectClose(try op(x), try Self.reference(op, x), "explicit operator \(direction)")
    }
  }

  @Test("short filter is causal: outputs before a change of the input do not move")
  func causality() throws {
    let op = Self.hyenaOperator()
    let x = uniformTensor([1, 6, 3], seed: 33)
    let changed = x.copy()
    changed.withUnsafeMutableBufferPointer { p in for i in 12..<18 { p[i] += 1 } }  // positions 4, 5
    let (a, b) = (try op(x).scalars, try op(changed).scalars)
    // The FFT rounds differently for another input: equal to a few ulps, not bit for bit.
    #expect(zip(a[0..<12], b[0..<12]).allSatisfy { abs($0 - $1) < 1e-5 })
    #expect(zip(a[12...], b[12...]).contains { abs($0 - $1) > 1e-3 })
  }

  /// Sets the output projection's bias to zero for a gradient check: as a constant of order 1
  /// in every output, it would bury the mixer's contribution (1e-4 of it at order 3) under the
  /// Float32 rounding of the outputs, and with it the numeric gradients of every other parameter.
  /// The bias's own gradient does not depend on its value.
  static func zeroOutputBias<K>(_ op: HyenaOperator<K>) -> HyenaOperator<K> {
    op.outProj.bias!.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    return op
  }

  @Test("gradients with respect to the input and every parameter, by finite differences")
  func gradients() throws {
    let op = Self.zeroOutputBias(Self.hyenaOperator(width: 2, maxLength: 4))
    let x = uniformTensor([1, 4, 2], seed: 34)
    checkGradients("hyena operator input", inputs: [x]) { try! op($0[0]) }
    let names = try checkGradients("hyena operator", parameters: op.namedParameters()) { try op(x) }.names
    #expect(
      names == [
        "inProj.weight", "inProj.bias", "shortFilter", "shortFilterBias", "kernel.implicitFilter.0.weight",
        "kernel.implicitFilter.0.bias", "kernel.implicitFilter.1.weight", "kernel.implicitFilter.1.bias",
        "kernel.implicitFilter.2.weight", "kernel.freq", "kernel.skip", "outProj.weight", "outProj.bias",
      ])
    let bidirectional = Self.zeroOutputBias(
      Self.explicitOperator(width: 2, direction: .bidirectional, maxLength: 4))
    checkGradients("explicit operator input", inputs: [x]) { try! bidirectional($0[0]) }
    try checkGradients("explicit operator", parameters: bidirectional.namedParameters()) {
      try bidirectional(x)
    }
  }

  @Test(
    "order 3 with safari's options: gradients of the input and every parameter (trained z included)",
    arguments: [false, true])
  func orderThreeGradients(outerMixing: Bool) throws {
    var generator = SeededGenerator(seed: 21)
    let kernel = HyenaFilter(
      channels: 4, maxLength: 5, embeddingDimension: 3, width: 3, innerLayers: 1, shift: 0.3,
      normalized: !outerMixing, trainPositionalFeatures: true, generator: &generator)
    let op = Self.zeroOutputBias(
      HyenaOperator(
        width: 2, kernel: kernel, order: 3, outerMixing: outerMixing, postOrderScales: true,
        activation: .geluTanh, generator: &generator))
    let x = uniformTensor([1, 5, 2], seed: 35)
    // The normalized filter curves enough that h = 1e-2 leaves up to 2e-2 of truncation error
    // in its parameters' numeric gradients; h = 3e-3 brings that under 1.2e-4. At that step the
    // Float rounding of the forward pass leaves about 1e-3 of noise in the smallest gradient,
    // `freq`'s (4.5% of the loss terms' size with outer mixing): measured 1.2e-3 once the short
    // filter ran directly instead of by FFT (a different rounding), so the parameters are
    // checked at 2e-3; a wrong pullback term is off by far more.
    let step = 3e-3
    checkGradients("hyena order 3 input", inputs: [x], step: step) { try! op($0[0]) }
    let names = try checkGradients(
      "hyena order 3", parameters: op.namedParameters(), tolerance: 2e-3, step: step
    ) {
      try op(x)
    }.names
    #expect(names.contains("orderScales") && names.contains("kernel.positionalFeatures"))
    #expect(op.namedBuffers().map(\.name) == ["kernel.times", "kernel.deltas"])
  }

  @Test("order 3 against its recurrence written out step by step in Double")
  func orderThreeMatchesADenseReference() throws {
    var generator = SeededGenerator(seed: 22)
    let (d, n, order) = (2, 6, 3)
    let kernel = HyenaFilter(
      channels: (order - 1) * d, maxLength: n, embeddingDimension: 3, width: 4, generator: &generator)
    let op = HyenaOperator(
      width: d, kernel: kernel, order: order, postOrderScales: true, activation: .tanh, generator: &generator)
    let x = uniformTensor([1, n, d], seed: 36)
    let y = try op(x)
    // Dense reference: streams by the short filter, steps as safari orders them.
    let k = try kernel.coefficients(length: n).doubles  // [(N-1) d, n], channel c = v (N-1) + o
    let skip = kernel.skip!.doubles
    let scales = op.orderScales!.doubles
    let (w, b) = (op.inProj.weight.doubles, op.inProj.bias!.doubles)
    let (f, fb) = (op.shortFilter.doubles, op.shortFilterBias.doubles)
    let xs = x.doubles
    let streams = (order + 1) * d
    var projected = [Double](repeating: 0, count: n * streams)
    for i in 0..<n {
      for r in 0..<streams {
        projected[i * streams + r] = b[r] + (0..<d).reduce(0) { $0 + w[r * d + $1] * xs[i * d + $1] }
      }
    }
    // The short filter: a causal convolution with as many lags as it has columns, plus a bias.
    var u = Dense.longConvolution(
      projected, batch: 1, length: n, channels: streams, kernel: f, direction: .causal)
    for i in 0..<n { for r in 0..<streams { u[i * streams + r] += fb[r] } }
    func stream(_ s: Int) -> [Double] { (0..<n).flatMap { i in (0..<d).map { u[i * streams + s * d + $0] } } }
    var v = stream(order)
    for o in 0..<order - 1 {
      let z = zip(v, stream(order - 1 - o)).map { $0 * $1 }
      let rows = (0..<d).map { $0 * (order - 1) + o }  // this step's kernel rows
      let convolved = Dense.longConvolution(
        z, batch: 1, length: n, channels: d,
        kernel: rows.flatMap { (row: Int) -> ArraySlice<Double> in k[row * n..<(row + 1) * n] },
        direction: .causal,
        skip: rows.map { skip[$0] })
      v = convolved.map { $0 * scales[o] }
    }
    let g = zip(v, stream(0)).map { Foundation.tanh($0 * $1) }
    let (ow, ob) = (op.outProj.weight.doubles, op.outProj.bias!.doubles)
    var expected = [Double](repeating: 0, count: n * d)
    for i in 0..<n {
      for r in 0..<d {
        expected[i * d + r] = ob[r] + (0..<d).reduce(0.0) { $0 + ow[r * d + $1] * g[i * d + $1] }
      }
    }
    expectClose(y, expected, "hyena order 3")
  }

  @Test("a sequence longer than the kernel's max_length is refused")
  func lengthRefusal() {
    let op = Self.hyenaOperator(maxLength: 6)
    #expect(throws: KernelError.lengthBeyondMaximum(kernel: "hyena", requested: 7, maximum: 6)) {
      try op(Tensor.zeros([1, 7, 3]))
    }
  }

  @Test("built from a JSON config through the registry, generic over the named kernel")
  func registry() throws {
    #expect(Registry.mixerTypes.contains("hyena"))
    var generator = SeededGenerator(seed: 0)
    let config = try configReader(
      #"{"type": "hyena", "kernel": {"type": "hyena", "emb_dim": 5, "filter_width": 8}}"#)
    let mixer = try Registry.makeMixer(
      config, context: MixerContext(width: 4, direction: .causal, maxLength: 8), generator: &generator)
    let op = try #require(mixer as? HyenaOperator<HyenaFilter>)
    #expect(op.width == 4 && op.kernel.channels == 4 && op.kernel.maxLength == 8)
    #expect(op.shortFilter.shape == [12, 3])
    #expect(try op(uniformTensor([2, 8, 4], seed: 35)).shape == [2, 8, 4])
    try config.rejectUnknownKeys()

    let encoder = try Registry.makeMixer(
      try configReader(#"{"type": "hyena", "short_filter_width": 2, "kernel": {"type": "explicit"}}"#),
      context: MixerContext(width: 4, direction: .bidirectional, maxLength: 8), generator: &generator)
    let explicit = try #require(encoder as? HyenaOperator<ExplicitKernel>)
    #expect(explicit.kernel.direction == .bidirectional && explicit.shortFilter.shape == [12, 2])

    #expect(
      throws: ConfigError(
        file: "test.json", path: "kernel",
        problem: "kernel \"hyena\" does not support bidirectional convolution")
    ) {
      try Registry.makeMixer(
        try configReader(#"{"type": "hyena", "kernel": {"type": "hyena"}}"#),
        context: MixerContext(width: 4, direction: .bidirectional, maxLength: 8), generator: &generator)
    }
    #expect(throws: ConfigError(file: "test.json", path: "kernel", problem: "missing required key")) {
      try Registry.makeMixer(
        try configReader(#"{"type": "hyena"}"#),
        context: MixerContext(width: 4, direction: .causal, maxLength: 8),
        generator: &generator)
    }
  }

  @Test("a causal language model with Hyena layers, rebuilt identically from its resolved config")
  func model() throws {
    let json = try JSONValue.parse(
      Data(
        #"""
        {"model": "causal_lm", "vocab_size": 7, "dim": 4, "num_layers": 2, "max_length": 8,
         "layers": {"mixer": {"type": "hyena", "kernel": {"type": "hyena", "emb_dim": 3, "filter_width": 4}},
                    "channel_mixer": {"type": "glu"}}}
        """#.utf8), source: "test")
    let model = try #require(try ModelBuilder.build(json) as? CausalLanguageModel)
    let tokens = (0..<16).map { $0 % 7 }
    let logits = try model.logits(tokens, batch: 2, length: 8)
    #expect(logits.shape == [2, 8, 7])
    let again = try #require(try ModelBuilder.build(model.config) as? CausalLanguageModel)
    #expect(again.config == model.config)
    #expect(zip(model.parameters, again.parameters).allSatisfy { $0.scalars == $1.scalars })
    #expect(throws: KernelError.self) { try model.logits((0..<9).map { $0 % 7 }, batch: 1, length: 9) }
  }
}
