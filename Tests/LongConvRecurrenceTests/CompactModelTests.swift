import Foundation
import LongConv
import LongConvLayers
import LongConvRecurrence
import LongConvTensors
import LongConvTestSupport
import Testing

/// Compactly converted language models, stepped token by token, against the FFT model: the
/// converter's certified bound checked on each layer at every position, the whole model's logits
/// explained by the converted kernels (the dense Double model with them), and an exact
/// conversion far closer.
@Suite struct CompactModelTests {
  static let families: [(String, String)] = [
    (
      "tnn",
      #"{"type": "gtu", "expand_ratio": 2, "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1, "gamma": 0.97}}"#
    ),
    ("hyena", #"{"type": "hyena", "kernel": {"type": "hyena", "filter_width": 8, "emb_dim": 5}}"#),
  ]

  static func model(_ mixer: String) throws -> CausalLanguageModel {
    let json = """
      {"vocab_size": 32, "dim": 8, "num_layers": 2, "max_length": 48, "seed": 7,
       "layers": {"mixer": \(mixer), "channel_mixer": {"type": "glu"}}}
      """
    return try #require(
      ModelBuilder.build(JSONValue.parse(Data(json.utf8), source: "compact-model")) as? CausalLanguageModel)
  }

  /// `Re(sum_n r_n z_n^k)` plus the skip at lag 0, written out here (not the library's).
  static func impulseResponse(_ s: DiagonalStateSpace, channel c: Int, length: Int) -> [Double] {
    (0..<length).map { k in
      var acc = k == 0 ? (s.skip?[c] ?? 0) : 0
      for n in s.polesReal[c].indices {
        let (modulus, angle) = (
          hypot(s.polesReal[c][n], s.polesImaginary[c][n]), atan2(s.polesImaginary[c][n], s.polesReal[c][n])
        )
        let power = pow(modulus, Double(k))
        acc +=
          s.residuesReal[c][n] * power * cos(Double(k) * angle) - s.residuesImaginary[c][n] * power
          * sin(Double(k) * angle)
      }
      return acc
    }
  }

  /// The converted system as a dense kernel `[channels, length]` (skip folded into lag 0).
  static func denseKernel(_ s: DiagonalStateSpace, length: Int) -> DenseKernel {
    DenseKernel(
      coefficients: (0..<s.channels).flatMap { impulseResponse(s, channel: $0, length: length) }, skip: nil)
  }

  /// The model's own kernel with its skip at lag 0 (what the converter was given).
  static func totalKernel(_ mixer: any SequenceMixer, length: Int) throws -> DenseKernel {
    var k = try DenseModel.kernel(of: mixer, length: length)
    if let skip = k.skip {
      for c in skip.indices { k.coefficients[c * length] += skip[c] }
    }
    return DenseKernel(coefficients: k.coefficients, skip: nil)
  }

  static func logitsByStepping(_ recurrent: RecurrentLanguageModel, _ tokens: [Int]) -> [[Float]] {
    var state = recurrent.makeState()
    return tokens.map { recurrent.step($0, state: &state) }
  }

  static func maxRelative(_ a: [Float], _ b: ArraySlice<Double>) -> Double {
    // NaN counts as infinitely far (max would skip it).
    zip(a, b).map {
      let e = abs(Double($0) - $1) / max(1, abs($1))
      return e.isNaN ? .infinity : e
    }.max()!
  }

  @Test(arguments: families)
  func compactModelStaysWithinItsCertifiedBound(_ name: String, _ mixer: String) throws {
    let n = 48
    let model = try Self.model(mixer)
    let vocabulary = model.vocabulary
    let tolerance = 2e-2
    let compact = try RecurrentLanguageModel(
      model: model, converter: CompactConverter(tolerance: tolerance, maxStates: 8), length: n)
    let exact = try RecurrentLanguageModel(model: model, converter: ExactConverter(), length: n)
    var rng = SeededGenerator(seed: 3)
    let tokens = (0..<n).map { _ in Int(rng.nextUniform() * Float(vocabulary)) % vocabulary }

    // 1. The certificate: per channel, ||t - t'||_1 <= errorBound, t' <= tolerance ||t||_1, the
    //    kernels compared here in Double (t' from the poles and residues).
    var converted: [DenseKernel] = []
    for (l, block) in model.blocks.enumerated() {
      let report = compact.reports[l]
      let system = try #require(compact.kernels[RecurrentLanguageModel.kernelName(layer: l)])
      let (t, tc) = (try Self.totalKernel(block.mixer, length: n), Self.denseKernel(system, length: n))
      converted.append(tc)
      var worst = 0.0
      for c in 0..<system.channels {
        let row = c * n..<(c + 1) * n
        let error = zip(t.coefficients[row], tc.coefficients[row]).reduce(0) { $0 + abs($1.0 - $1.1) }
        let norm = t.coefficients[row].reduce(0) { $0 + abs($1) }
        #expect(
          error <= tolerance * norm * (1 + 1e-9), "\(name) layer \(l) channel \(c): \(error) vs \(norm)")
        worst = max(worst, error)
      }
      #expect(report.mode == .compact && report.exactChannels == 0, "\(name) layer \(l): \(report)")
      #expect(abs(worst - report.errorBound) <= 1e-6 * max(worst, 1e-12), "\(name) layer \(l) bound")
      #expect(report.maxStates < n / 4, "\(name) layer \(l): \(report.maxStates) states is not compact")
    }

    // 2. The bound on each layer at every position: the recurrent mixer stepped over the FFT
    //    model's own input to that layer. Its convolution is off by at most errorBound times the
    //    largest earlier input of the channel (Young), which the layer's linear parts then scale.
    var h = Tensor.withoutRecording { model.embedding(tokens, shape: [1, n]) }
    for (l, block) in model.blocks.enumerated() {
      let x = Tensor.withoutRecording { block.norm1(h) }
      let fft = try Tensor.withoutRecording { try block.mixer(x) }.doubles
      var state = compact.mixers[l].makeState()
      let d = block.mixer.width
      let bound = try Self.mixerBounds(
        block.mixer, x.doubles, length: n, errorBound: compact.reports[l].errorBound)
      var worst = 0.0
      for i in 0..<n {
        let row = Tensor.withoutRecording { x.slice(axis: 1, i..<i + 1).reshaped([1, d]) }
        let y = compact.mixers[l].step(row, state: &state).doubles
        for o in 0..<d {
          let deviation = abs(y[o] - fft[i * d + o])
          // Float32 rounding of both paths on top of the certified term.
          #expect(
            deviation <= bound[i * d + o] + 1e-5 * max(1, abs(fft[i * d + o])),
            "\(name) layer \(l) position \(i) output \(o): \(deviation) > bound \(bound[i * d + o])")
          worst = max(worst, deviation)
        }
      }
      #expect(worst > 0)
      h = try Tensor.withoutRecording { try block(h) }
    }

    // 3. End to end: the stepped logits are the dense Double model's with the converted kernels,
    //    the FFT logits the dense model's with the model's own kernels; exact conversion matches the
    //    FFT logits to rounding.
    let fftLogits = try Tensor.withoutRecording { try model.logits(tokens, batch: 1, length: n) }.scalars
    let withConverted = try DenseModel.logits(model, tokens: tokens) { converted[$0] }
    let withOwn = try DenseModel.logits(model, tokens: tokens) {
      try Self.totalKernel(model.blocks[$0].mixer, length: n)
    }
    let (compactLogits, exactLogits) = (
      Self.logitsByStepping(compact, tokens), Self.logitsByStepping(exact, tokens)
    )
    var gap = (compact: 0.0, exact: 0.0, explained: 0.0)
    for i in 0..<n {
      let rows = i * vocabulary..<(i + 1) * vocabulary
      let fftRow = fftLogits[rows].map(Double.init)
      #expect(
        Self.maxRelative(compactLogits[i], withConverted[rows]) < 1e-4,
        "\(name) compact vs dense, position \(i)")
      #expect(
        Self.maxRelative(fftLogits[rows].map { $0 }, withOwn[rows]) < 1e-4,
        "\(name) FFT vs dense, position \(i)")
      gap.compact = max(gap.compact, Self.maxRelative(compactLogits[i], fftRow[...]))
      gap.exact = max(gap.exact, Self.maxRelative(exactLogits[i], fftRow[...]))
      gap.explained = max(gap.explained, zip(withConverted[rows], withOwn[rows]).map { abs($0 - $1) }.max()!)
    }
    // The compact model's distance from the FFT model is the converted kernels' (plus rounding).
    #expect(
      gap.compact <= gap.explained + 2e-4,
      "\(name): compact gap \(gap.compact), kernels explain \(gap.explained)")
    #expect(gap.exact < 1e-4, "\(name): exact gap \(gap.exact)")
    #expect(
      gap.exact * 10 < gap.compact,
      "\(name): exact \(gap.exact) is not far tighter than compact \(gap.compact)")
    // Measured: TNN 2.2e-2 compact (2.2e-2 explained) vs 9e-7 exact; Hyena 5.9e-3 vs 5e-7.
  }

  /// `|W_out (a * delta)|` at its largest over every `delta` with `|delta_(i,c)| <= e max_(j<=i)|v_(j,c)|`:
  /// `sum_c |W[o, c]| |a_(i,c)| e max_(j<=i) |v_(j,c)|`, with `v` the convolution's input and `a` the
  /// gate that multiplies its output (GTU: `SiLU(W_u x)`, `T SiLU(W_v x)`; Hyena order 2: `x_0`,
  /// `T (x_1 v)`), computed in Double from the layer's parameters.
  static func mixerBounds(_ mixer: any SequenceMixer, _ x: [Double], length n: Int, errorBound e: Double)
    throws
    -> [Double]
  {
    let (gate, input, out): ([Double], [Double], Linear)
    if let gtu = mixer as? GatedToeplitzUnit<TNNKernel> {
      gate = DenseModel.linear(gtu.uProj, x, rows: n).map { DenseModel.activation("silu", $0) }
      input = DenseModel.linear(gtu.vProj, x, rows: n).map { DenseModel.activation("silu", $0) }
      out = gtu.out
    } else {
      let hyena = try #require(mixer as? HyenaOperator<HyenaFilter>)
      #expect(hyena.order == 2 && hyena.activation == .identity)
      let d = hyena.width
      let u = DenseModel.linear(hyena.inProj, x, rows: n)
      let (w, beta, taps) = (
        hyena.shortFilter.doubles, hyena.shortFilterBias.doubles, hyena.shortFilter.shape[1]
      )
      func stream(_ s: Int) -> [Double] {
        (0..<n * d).map { k in
          let (i, c) = (k / d, s * d + k % d)
          return (0..<taps).reduce(beta[c]) {
            $0 + (i - $1 >= 0 ? w[c * taps + $1] * u[(i - $1) * 3 * d + c] : 0)
          }
        }
      }
      gate = stream(0)
      input = zip(stream(1), stream(2)).map { $0 * $1 }
      out = hyena.outProj
    }
    let (inner, d) = (out.inputCount, out.outputCount)
    let weights = out.weight.doubles
    var running = [Double](repeating: 0, count: inner)
    var bound = [Double](repeating: 0, count: n * d)
    for i in 0..<n {
      for c in 0..<inner { running[c] = max(running[c], abs(input[i * inner + c])) }
      for o in 0..<d {
        bound[i * d + o] = (0..<inner).reduce(0) {
          $0 + abs(weights[o * inner + $1]) * abs(gate[i * inner + $1]) * e * running[$1]
        }
      }
    }
    return bound
  }
}
