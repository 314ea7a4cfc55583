import Foundation
import LongConv
import LongConvTensors
import LongConvTestSupport
import Testing

@Suite("HyenaFilter")
struct HyenaFilterTests {
  /// MODELS.md section 3 evaluated in Double from the filter's parameter values: `[D, L]`.
  static func reference(
    _ k: HyenaFilter, length: Int, embeddingDimension: Int,
    decay: (fast: Double, slow: Double, target: Double)?
  ) -> [Double] {
    let (lmax, d, bands) = (k.maxLength, k.channels, (embeddingDimension - 1) / 2)
    let f =
      bands == 1
      ? [1e-4] : (0..<bands).map { 1e-4 + Double($0) * (Double(bands - 1) - 1e-4) / Double(bands - 1) }
    let freq = k.freq.doubles
    var out = [Double](repeating: 0, count: d * length)
    for l in 0..<length {
      let t = lmax > 1 ? Double(l) / Double(lmax - 1) : 0
      let w = 2 * Double.pi * Double(l) / Double(lmax)
      var a = [t] + f.map { cos($0 * w) } + f.map { -sin($0 * w) }
      for (index, layer) in k.implicitFilter.enumerated() {
        let (weight, bias) = (layer.weight.doubles, layer.bias?.doubles)
        let (rows, columns) = (layer.outputCount, layer.inputCount)
        var next = [Double](repeating: 0, count: rows)
        for r in 0..<rows {
          var acc = bias?[r] ?? 0
          for c in 0..<columns { acc += weight[r * columns + c] * a[c] }
          next[r] = index == k.implicitFilter.count - 1 ? acc : sin(freq[r] * acc)
        }
        a = next
      }
      for c in 0..<d {
        var window = 1.0
        if let decay {
          let (start, end) = (log(decay.target) / decay.slow, log(decay.target) / decay.fast)
          let delta = d == 1 ? start : start + Double(c) * (end - start) / Double(d - 1)
          window = exp(-t * abs(delta))
        }
        out[c * length + l] = a[c] * window
      }
    }
    return out
  }

  static func filter(
    channels: Int = 3, maxLength: Int = 6, embeddingDimension: Int = 5, width: Int = 4, innerLayers: Int = 2,
    decay: (fast: Double, slow: Double, target: Double)? = (0.3, 1.5, 1e-2), seed: UInt64 = 1
  ) -> HyenaFilter {
    var generator = SeededGenerator(seed: seed)
    let k = HyenaFilter(
      channels: channels, maxLength: maxLength, embeddingDimension: embeddingDimension, width: width,
      innerLayers: innerLayers, decay: decay, generator: &generator)
    // Distinct frequencies per unit, so a wrong broadcast of `freq` shows.
    k.freq.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = 0.6 + 0.3 * Float(i) } }
    return k
  }

  @Test("coefficients match the formula in Double, full and shorter lengths")
  func coefficientsMatchFormula() throws {
    let k = Self.filter()
    for length in [6, 4, 1] {
      let c = try k.coefficients(length: length)
      #expect(c.shape == [3, length])
      expectClose(
        c, Self.reference(k, length: length, embeddingDimension: 5, decay: (0.3, 1.5, 1e-2)),
        "hyena L=\(length)")
    }
    // One band, other decay constants, no inner layer.
    let single = Self.filter(
      channels: 2, maxLength: 5, embeddingDimension: 3, innerLayers: 0, decay: (0.5, 2, 0.1))
    expectClose(
      try single.coefficients(length: 5),
      Self.reference(single, length: 5, embeddingDimension: 3, decay: (0.5, 2, 0.1)),
      "hyena one band")
    let plain = Self.filter(decay: nil)
    expectClose(
      try plain.coefficients(length: 6), Self.reference(plain, length: 6, embeddingDimension: 5, decay: nil),
      "hyena unmodulated")
  }

  @Test("parameters: names, shapes and initial values")
  func parameters() {
    var generator = SeededGenerator(seed: 3)
    let k = HyenaFilter(channels: 3, maxLength: 8, embeddingDimension: 5, width: 4, generator: &generator)
    let names = k.namedParameters().map(\.name)
    #expect(
      names == [
        "implicitFilter.0.weight", "implicitFilter.0.bias", "implicitFilter.1.weight",
        "implicitFilter.1.bias",
        "implicitFilter.2.weight", "implicitFilter.2.bias", "implicitFilter.3.weight", "freq", "skip",
      ])
    #expect(k.implicitFilter.map(\.weight.shape) == [[4, 5], [4, 4], [4, 4], [3, 4]])
    #expect(k.implicitFilter.last?.bias == nil)
    #expect(k.freq.scalars == [1, 1, 1, 1])
    #expect(k.skip?.shape == [3])
    #expect(k.positionalFeatures.shape == [8, 5])
    #expect(k.direction == .causal)
    let noSkip = HyenaFilter(channels: 2, maxLength: 4, skip: false, generator: &generator)
    #expect(noSkip.skip == nil && !noSkip.namedParameters().contains { $0.name == "skip" })
  }

  @Test("gradients of every parameter through the convolution, by finite differences")
  func gradients() throws {
    let k = Self.filter(channels: 2, maxLength: 5, embeddingDimension: 3, width: 3, innerLayers: 1)
    let x = uniformTensor([1, 5, 2], seed: 11)
    let names = try checkGradients("hyena convolve", parameters: k.namedParameters()) { try k.convolve(x) }
      .names
    #expect(names.count == 7)
    // The coefficients of a shorter length too (a slice of the features).
    // The skip is no coefficient: its gradient is zero by design.
    try checkGradients("hyena coefficients L=3", parameters: k.namedParameters(), expectingZero: ["skip"]) {
      try k.coefficients(length: 3)
    }
  }

  @Test("a length beyond max_length is refused with a KernelError that names the limit")
  func lengthRefusal() {
    let k = Self.filter(maxLength: 6)
    let error = KernelError.lengthBeyondMaximum(kernel: "hyena", requested: 7, maximum: 6)
    #expect(throws: error) { try k.coefficients(length: 7) }
    #expect(
      error.description
        == "hyena kernel: cannot produce length 7; it is defined up to max_length 6 (raise max_length in its config)"
    )
    #expect(throws: KernelError.invalidLength(kernel: "hyena", requested: 0)) {
      try k.coefficients(length: 0)
    }
    #expect(throws: KernelError.self) { try k.convolve(Tensor.zeros([1, 7, 3])) }
  }

  @Test("built from a JSON config through the registry, defaults recorded")
  func registry() throws {
    #expect(Registry.kernelTypes.contains("hyena"))
    let config = try configReader(
      #"{"type": "hyena", "emb_dim": 5, "filter_width": 8, "num_inner_layers": 1}"#)
    var generator = SeededGenerator(seed: 0)
    let built = try Registry.makeKernel(
      config, context: KernelContext(channels: 4, direction: .causal, maxLength: 16), generator: &generator)
    let k = try #require(built as? HyenaFilter)
    #expect(k.channels == 4 && k.maxLength == 16)
    #expect(k.implicitFilter.map(\.weight.shape) == [[8, 5], [8, 8], [4, 8]])
    try config.rejectUnknownKeys()
    guard case .object(let resolved) = config.resolved else {
      Issue.record("resolved config is not an object")
      return
    }
    #expect(
      Set(resolved.keys) == [
        "type", "emb_dim", "filter_width", "num_inner_layers", "sin_frequency", "modulate", "fast_decay_pct",
        "slow_decay_pct", "decay_target", "shift", "normalized", "train_positional_features", "skip",
        "max_length",
      ])
    #expect(resolved["max_length"] == .number(16))
    #expect(try k.coefficients(length: 16).shape == [4, 16])

    let override = try Registry.makeKernel(
      try configReader(#"{"type": "hyena", "max_length": 32}"#),
      context: KernelContext(channels: 2, direction: .causal, maxLength: 16), generator: &generator)
    #expect((override as? HyenaFilter)?.maxLength == 32)
  }

  @Test("config errors: bidirectional, even emb_dim, max_length below the model's")
  func configErrors() throws {
    var generator = SeededGenerator(seed: 0)
    let context = KernelContext(channels: 2, direction: .causal, maxLength: 8)
    #expect(
      throws: ConfigError(
        file: "test.json", path: "", problem: "kernel \"hyena\" does not support bidirectional convolution")
    ) {
      try Registry.makeKernel(
        try configReader(#"{"type": "hyena"}"#),
        context: KernelContext(channels: 2, direction: .bidirectional, maxLength: 8), generator: &generator)
    }
    #expect(
      throws: ConfigError(file: "test.json", path: "emb_dim", problem: "must be odd (1 + 2 bands), got 4")
    ) {
      try Registry.makeKernel(
        try configReader(#"{"type": "hyena", "emb_dim": 4}"#), context: context, generator: &generator)
    }
    #expect(throws: ConfigError(file: "test.json", path: "max_length", problem: "must be at least 8, got 4"))
    {
      try Registry.makeKernel(
        try configReader(#"{"type": "hyena", "max_length": 4}"#), context: context, generator: &generator)
    }
  }
}
