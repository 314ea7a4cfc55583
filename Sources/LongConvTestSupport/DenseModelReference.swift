import Foundation
import LongConv
import LongConvLayers
import LongConvTensors

// Whole models written out in Double from the formulas in the sources' documentation
// (docs/MODELS.md, Block, the mixers, the norms, the activations), for tests.
//
// Only parameter values are read from the modules; nothing here calls a module's forward pass.
// Long-convolution kernels are not computed here: the caller supplies each layer's coefficients
// in Double (from a kernel's own reference, or a converted state space's impulse response), and
// they are applied as dense Toeplitz products. One sequence at a time: activations are `[L * D]`
// row-major.

/// A layer's long-convolution kernel in Double: `coefficients` `[channels, columns]` row-major
/// (lags `0 ..< L` causal, `-(L-1) ... L-1` bidirectional) and the optional per-channel skip.
public struct DenseKernel: Sendable {
  /// `[channels * columns]`, row-major.
  public var coefficients: [Double]
  /// `[channels]`, added as `skip * x`.
  public var skip: [Double]?

  /// A kernel from its coefficients and skip.
  public init(coefficients: [Double], skip: [Double]?) {
    self.coefficients = coefficients
    self.skip = skip
  }
}

/// Dense Double forward passes of blocks and whole models.
public enum DenseModel {
  /// `x W^T + b` for `rows` rows of `layer.inputCount` values.
  public static func linear(_ layer: Linear, _ x: [Double], rows: Int) -> [Double] {
    let (n, m) = (layer.inputCount, layer.outputCount)
    precondition(x.count == rows * n, "DenseModel.linear: \(x.count) values for \(rows) x \(n)")
    var y = Dense.matmul(x, Dense.transpose(layer.weight.doubles, rows: m, columns: n), m: rows, k: n, n: m)
    if let bias = layer.bias?.doubles {
      for r in 0..<rows { for o in 0..<m { y[r * m + o] += bias[o] } }
    }
    return y
  }

  /// The activation named `name` (its config name) at `x`, from its formula.
  public static func activation(_ name: String, _ x: Double) -> Double {
    switch name {
    case "id": x
    case "relu": max(x, 0)
    case "gelu": 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
    case "gelu_tanh": 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    case "silu": x / (1 + exp(-x))
    case "sigmoid": 1 / (1 + exp(-x))
    case "tanh": tanh(x)
    default: preconditionFailure("DenseModel.activation: no reference for \(name)")
    }
  }

  /// `norm` over each row of `width` values:
  /// simple RMS `x / (sqrt(mean x^2) + eps)`, RMS `x / sqrt(mean x^2 + eps) * w`,
  /// layer `(x - mean) / sqrt(var + eps) * w + b` (biased variance).
  public static func normalize(_ norm: Normalization, _ x: [Double], width d: Int) -> [Double] {
    let eps = Double(norm.epsilon)
    let (w, b) = (norm.weight?.doubles, norm.bias?.doubles)
    var y = x
    for r in 0..<x.count / d {
      let row = x[r * d..<(r + 1) * d]
      let mean = norm.kind == .layerNorm ? row.reduce(0, +) / Double(d) : 0
      let meanSquare = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
      let scale =
        norm.kind == .simpleRMSNorm
        ? 1 / (meanSquare.squareRoot() + eps) : 1 / (meanSquare + eps).squareRoot()
      for j in 0..<d {
        y[r * d + j] = (x[r * d + j] - mean) * scale * (w?[j] ?? 1) + (b?[j] ?? 0)
      }
    }
    return y
  }

  /// `y[i, c] = sum_j t_c[i - j] x[j, c] + skip_c x[i, c]` for one sequence `[length, channels]`
  /// (``Dense/longConvolution(_:batch:length:channels:kernel:direction:skip:)``).
  public static func toeplitz(
    _ x: [Double], length: Int, channels: Int, kernel: DenseKernel, direction: ConvolutionDirection
  ) -> [Double] {
    Dense.longConvolution(
      x, batch: 1, length: length, channels: channels, kernel: kernel.coefficients, direction: direction,
      skip: kernel.skip)
  }

  /// A GLU `W3 (SiLU(W1 x + b1) * (W2 x + b2)) + b3` or an MLP `W2 act(W1 x + b1) + b2`.
  public static func channelMixer(_ mixer: any ChannelMixer, _ x: [Double], rows: Int) -> [Double] {
    if let glu = mixer as? GLU {
      let gate = linear(glu.l1, x, rows: rows).map { activation("silu", $0) }
      let value = linear(glu.l2, x, rows: rows)
      return linear(glu.l3, zip(gate, value).map { $0 * $1 }, rows: rows)
    }
    if let mlp = mixer as? MLP {
      let name = mlp.activation.rawValue
      return linear(mlp.l2, linear(mlp.l1, x, rows: rows).map { activation(name, $0) }, rows: rows)
    }
    preconditionFailure("DenseModel.channelMixer: no reference for \(type(of: mixer))")
  }

  /// The sequence mixers of the toolkit, with their long convolution by `kernel`:
  /// - GTU: `W_o (SiLU(W_u x + b_u) * T SiLU(W_v x + b_v)) + b_o`;
  /// - SSM block: `W (act(T x)) + b`, then GLU `z[:d] * sigmoid(z[d:])` (or the linear output);
  /// - Hyena (order N): in_proj, causal short filter with bias, `v = T_o(v * x_(N-1-o))` (times the
  ///   step's scale), then `W_out act(v * x_0) + b_out`, channel `c (N-1) + o` of the kernel for step `o`.
  public static func mixer(_ mixer: any SequenceMixer, _ x: [Double], length: Int, kernel: DenseKernel) throws
    -> [Double]
  {
    if let gtu = mixer as? any GTUParts { return gtu.dense(x, length: length, kernel: kernel) }
    if let ssm = mixer as? any SSMParts { return ssm.dense(x, length: length, kernel: kernel) }
    if let hyena = mixer as? any HyenaParts { return hyena.dense(x, length: length, kernel: kernel) }
    preconditionFailure("DenseModel.mixer: no reference for \(type(of: mixer))")
  }

  /// Pre-norm `h = x + mixer(norm1(x)); h + channelMixer(norm2(h))`, post-norm
  /// `h = norm1(x + mixer(x)); norm2(h + channelMixer(h))`.
  public static func block(_ block: Block, _ x: [Double], length: Int, kernel: DenseKernel) throws -> [Double]
  {
    let d = block.mixer.width
    func add(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 + $1 } }
    if block.prenorm {
      let h = add(
        x, try mixer(block.mixer, normalize(block.norm1, x, width: d), length: length, kernel: kernel))
      return add(h, channelMixer(block.channelMixer, normalize(block.norm2, h, width: d), rows: length))
    }
    let h = normalize(
      block.norm1, add(x, try mixer(block.mixer, x, length: length, kernel: kernel)), width: d)
    return normalize(block.norm2, add(h, channelMixer(block.channelMixer, h, rows: length)), width: d)
  }

  /// Embedding rows, every block (layer `i`'s kernel from `kernel(i)`), the final norm: `[L, D]`.
  public static func hidden(
    _ model: any SequenceModel, embedding: Embedding, finalNorm: Normalization, tokens: [Int],
    kernel: (Int) throws -> DenseKernel
  ) throws -> [Double] {
    let (table, d) = (embedding.weight.doubles, embedding.width)
    var h = tokens.flatMap { table[$0 * d..<($0 + 1) * d] }
    for (i, b) in model.blocks.enumerated() { h = try block(b, h, length: tokens.count, kernel: kernel(i)) }
    return normalize(finalNorm, h, width: d)
  }

  /// A causal language model's logits `[L, vocabulary]`: `norm(h) E^T`, the tied head.
  public static func logits(
    _ model: CausalLanguageModel, tokens: [Int], kernel: (Int) throws -> DenseKernel
  ) throws -> [Double] {
    let h = try hidden(
      model, embedding: model.embedding, finalNorm: model.finalNorm, tokens: tokens, kernel: kernel)
    let d = model.embedding.width
    return Dense.matmul(
      h, Dense.transpose(model.embedding.weight.doubles, rows: model.vocabulary, columns: d),
      m: tokens.count, k: d, n: model.vocabulary)
  }

  /// A classifier's logits `[classes]`: `W mean_i(norm(h_i)) + b`.
  public static func logits(
    _ model: SequenceClassifier, tokens: [Int], kernel: (Int) throws -> DenseKernel
  ) throws -> [Double] {
    let h = try hidden(
      model, embedding: model.embedding, finalNorm: model.finalNorm, tokens: tokens, kernel: kernel)
    let d = model.embedding.width
    let pooled = (0..<d).map { c in
      (0..<tokens.count).reduce(0.0) { $0 + h[$1 * d + c] } / Double(tokens.count)
    }
    return linear(model.head, pooled, rows: 1)
  }

  /// A layer's kernel as the module computes it (Float coefficients and skip, widened).
  public static func kernel(of mixer: any SequenceMixer, length: Int) throws -> DenseKernel {
    guard let k = mixer.longConvKernel else { preconditionFailure("DenseModel.kernel: no kernel") }
    return DenseKernel(coefficients: try k.coefficients(length: length).doubles, skip: k.skip?.doubles)
  }

  /// `-log softmax(logits)[target]`, with the largest logit subtracted first.
  public static func crossEntropy(_ logits: ArraySlice<Double>, target: Int) -> Double {
    let top = logits.max()!
    return top + log(logits.reduce(0) { $0 + exp($1 - top) }) - logits[logits.startIndex + target]
  }

  /// `softmax(logits)`.
  public static func softmax(_ logits: [Double]) -> [Double] {
    let top = logits.max()!
    let e = logits.map { exp($0 - top) }
    let total = e.reduce(0, +)
    return e.map { $0 / total }
  }
}

// The generic mixers opened through protocols of their parts (a generic class cannot be cast
// to without its kernel type).

protocol GTUParts { func dense(_ x: [Double], length: Int, kernel: DenseKernel) -> [Double] }
protocol SSMParts { func dense(_ x: [Double], length: Int, kernel: DenseKernel) -> [Double] }
protocol HyenaParts { func dense(_ x: [Double], length: Int, kernel: DenseKernel) -> [Double] }

extension GatedToeplitzUnit: GTUParts {
  func dense(_ x: [Double], length: Int, kernel t: DenseKernel) -> [Double] {
    let u = DenseModel.linear(uProj, x, rows: length).map { DenseModel.activation("silu", $0) }
    let v = DenseModel.linear(vProj, x, rows: length).map { DenseModel.activation("silu", $0) }
    let mixed = DenseModel.toeplitz(
      v, length: length, channels: innerWidth, kernel: t, direction: kernel.direction)
    return DenseModel.linear(out, zip(u, mixed).map { $0 * $1 }, rows: length)
  }
}

extension SSMBlock: SSMParts {
  func dense(_ x: [Double], length: Int, kernel t: DenseKernel) -> [Double] {
    let d = width
    let h = DenseModel.toeplitz(x, length: length, channels: d, kernel: t, direction: kernel.direction).map {
      DenseModel.activation(activation.rawValue, $0)
    }
    let z = DenseModel.linear(output, h, rows: length)
    guard outputGLU else { return z }
    return (0..<length * d).map { k in
      let (i, c) = (k / d, k % d)
      return z[i * 2 * d + c] * DenseModel.activation("sigmoid", z[i * 2 * d + d + c])
    }
  }
}

extension HyenaOperator: HyenaParts {
  func dense(_ x: [Double], length: Int, kernel t: DenseKernel) -> [Double] {
    let (d, n) = (width, order)
    let streams = (n + 1) * d
    let u = DenseModel.linear(inProj, x, rows: length)
    let (w, beta, taps) = (shortFilter.doubles, shortFilterBias.doubles, shortFilter.shape[1])
    var filtered = [Double](repeating: 0, count: u.count)
    for i in 0..<length {
      for c in 0..<streams {
        var acc = beta[c]
        for j in 0..<taps where i - j >= 0 { acc += w[c * taps + j] * u[(i - j) * streams + c] }
        filtered[i * streams + c] = acc
      }
    }
    func stream(_ k: Int) -> [Double] {
      (0..<length).flatMap { i in (0..<d).map { filtered[i * streams + k * d + $0] } }
    }
    let columns = t.coefficients.count / ((n - 1) * d)
    let scales = orderScales?.doubles
    var v = stream(n)
    for o in 0..<n - 1 {
      let gate = stream(n - 1 - o)
      if outerMixing {
        for i in 0..<length {
          let sum = gate[i * d..<(i + 1) * d].reduce(0, +)
          for c in 0..<d { v[i * d + c] *= sum }
        }
      } else {
        v = zip(v, gate).map { $0 * $1 }
      }
      // Step o's filter: kernel channels c (N-1) + o.
      var coefficients: [Double] = []
      var skip: [Double]? = t.skip == nil ? nil : []
      for c in 0..<d {
        let channel = c * (n - 1) + o
        coefficients += t.coefficients[channel * columns..<(channel + 1) * columns]
        skip?.append(t.skip![channel])
      }
      let step = DenseKernel(coefficients: coefficients, skip: skip)
      v = DenseModel.toeplitz(v, length: length, channels: d, kernel: step, direction: kernel.direction)
      if let scales { v = v.map { $0 * scales[o] } }
    }
    let x0 = stream(0)
    return DenseModel.linear(
      outProj, zip(v, x0).map { DenseModel.activation(activation.rawValue, $0 * $1) }, rows: length)
  }
}
