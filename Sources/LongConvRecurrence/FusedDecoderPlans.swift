import CDecodeKernels
import LongConv
import LongConvLayers
import LongConvTensors

/// What a block's mixer computes on a member's channels before its output product.
enum MixerForm {
  case gated(u: RowProduct, v: RowProduct, activation: ElementwisePlan)
  case hyena(HyenaForm)
  case ssm(ElementwisePlan)
}

/// A member's share of a Hyena operator: its rows of each stream's projection
/// (`projections[n]` for stream `n`), the short filter, the step scales and the activation.
struct HyenaForm {
  let projections: UnsafePointer<RowProduct>
  let order: Int
  let filter: UnsafePointer<Float>
  let filterBias: UnsafePointer<Float>
  let taps: Int
  let orderScales: UnsafePointer<Float>?
  let activation: ElementwisePlan
}

/// The channel mixer's nonlinearity: `act(W_1 z) * (W_2 z)` (gated, a GLU), or `act(W_1 z)`.
enum ChannelActivation {
  case gated(ElementwisePlan)
  case pointwise(ElementwisePlan)
}

/// An ``LongConvLayers/Activation`` as a plan holds it: a trivial value (the arena holds plans
/// as raw memory), the common functions called directly so that their loops inline, any other
/// through its type. The formulas are the functions' own (``LongConvTensors/ElementwiseFunction``).
enum ElementwisePlan {
  case identity, silu, gelu, relu
  case other(any ElementwiseFunction.Type)

  init(_ activation: Activation) {
    switch ObjectIdentifier(activation.function) {
    case ObjectIdentifier(IdentityFunction.self): self = .identity
    case ObjectIdentifier(SiLUFunction.self): self = .silu
    case ObjectIdentifier(GELUFunction.self): self = .gelu
    case ObjectIdentifier(ReLUFunction.self): self = .relu
    default: self = .other(activation.function)
    }
  }

  /// `y[i] = f(x[i])` for `i` in `range` (`x` may be `y`), the function chosen once so that
  /// each loop vectorises (a choice per element kept SiLU's loop scalar: 20% slower compact
  /// decoding).
  @inline(__always)
  func map(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
    switch self {
    case .identity: if UnsafePointer(y) != x { for i in range { y[i] = x[i] } }
    case .silu: for i in range { y[i] = SiLUFunction.value(x[i]) }
    case .gelu: for i in range { y[i] = GELUFunction.value(x[i]) }
    case .relu: for i in range { y[i] = ReLUFunction.value(x[i]) }
    case .other(let function): for i in range { y[i] = function.value(x[i]) }
    }
  }

  /// `x[i] = f(x[i])` for `i` in `range`.
  @inline(__always)
  func apply(_ x: UnsafeMutablePointer<Float>, _ range: Range<Int>) { map(x, into: x, range) }
}

/// One member's share of one block.
struct LayerPlan {
  let prenorm: Bool
  let norm1: NormPlan, norm2: NormPlan
  let mixer: MixerForm
  /// This member's channels of the recurrence.
  let channels: Range<Int>
  /// The mixer's output product on those channels, its bias, and whether a GLU follows it.
  let o: ColumnProduct
  let mixerBias: UnsafePointer<Float>?
  let outputGLU: Bool
  let recurrence: RecurrencePlan
  let activation: ChannelActivation
  /// `W_1`'s rows, `W_2`'s rows for a GLU (nil for an MLP), and the output product's columns.
  let first: RowProduct
  let gate: RowProduct?
  let out: ColumnProduct
  let channelBias: UnsafePointer<Float>?
}

/// `y[r] = W[r] . x + b[r]` for one member's rows `r` in ``range`` of a copied weight.
struct RowProduct {
  /// Row ``range``'s lower bound of the whole `[rows, cols]` weight.
  let weight: UnsafePointer<Float>
  let bias: UnsafePointer<Float>?
  let range: Range<Int>
  let cols: Int
  /// The decoder's kernels.
  let kernels: lck_kernels

  /// One per member (`bounds` from ``FusedDecoder``), over one copy of `weight` and `bias`.
  static func slices(_ weight: Tensor, bias: Tensor?, bounds: [Int], kernels: lck_kernels, arena: Arena)
    -> [RowProduct]
  {
    let (w, b, cols) = (arena.copy(weight), bias.map(arena.copy), weight.shape[1])
    return (0..<bounds.count - 1).map { t in
      let range = bounds[t]..<bounds[t + 1]
      return RowProduct(
        weight: w + range.lowerBound * cols, bias: b.map { UnsafePointer($0 + range.lowerBound) },
        range: range,
        cols: cols, kernels: kernels)
    }
  }

  /// Writes `y[range]`.
  @inline(__always)
  func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
    guard !range.isEmpty else { return }
    kernels.gemv(weight, range.count, cols, x, bias, y + range.lowerBound)
  }
}

/// `p = W[:, C] x[C]` for one member's columns `C` of a `[rows, cols]` weight, kept contiguous.
/// The bias is added once, when the members' partials are summed.
struct ColumnProduct {
  let block: UnsafePointer<Float>
  let columns: Range<Int>
  let rows: Int
  /// Columns of the whole weight.
  let columnsTotal: Int
  /// The decoder's kernels.
  let kernels: lck_kernels

  /// One per member, over the column slices `bounds` of `weight`.
  static func slices(_ weight: Tensor, bounds: [Int], kernels: lck_kernels, arena: Arena) -> [ColumnProduct] {
    let (rows, cols) = (weight.shape[0], weight.shape[1])
    let values = weight.scalars
    return (0..<bounds.count - 1).map { t in
      let columns = bounds[t]..<bounds[t + 1]
      let block = arena.allocate(rows * columns.count, of: Float.self)
      for r in 0..<rows {
        for (j, c) in columns.enumerated() { block[r * columns.count + j] = values[r * cols + c] }
      }
      return ColumnProduct(block: block, columns: columns, rows: rows, columnsTotal: cols, kernels: kernels)
    }
  }

  /// Writes the partial `p [rows]` (zeros when the member has no columns).
  @inline(__always)
  func apply(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>) {
    guard !columns.isEmpty else {
      p.update(repeating: 0, count: rows)
      return
    }
    kernels.gemv(block, rows, columns.count, x + columns.lowerBound, nil, p)
  }
}

/// A ``RecurrentConvolution``'s poles, residues and skip, copied for the kernels.
struct RecurrencePlan {
  let offsets: UnsafePointer<Int>
  let sharedPoles: Bool
  let poles: (re: UnsafePointer<Double>, im: UnsafePointer<Double>)
  let residues: (re: UnsafePointer<Float>, im: UnsafePointer<Float>)
  let skip: UnsafePointer<Float>?
  /// The decoder's kernels.
  let kernels: lck_kernels

  init(_ recurrence: RecurrentConvolution, kernels: lck_kernels, arena: Arena) {
    self.kernels = kernels
    offsets = UnsafePointer(arena.copy(recurrence.offsets))
    sharedPoles = recurrence.sharedPoles
    poles = (UnsafePointer(arena.copy(recurrence.poles.re)), UnsafePointer(arena.copy(recurrence.poles.im)))
    residues = (
      UnsafePointer(arena.copy(recurrence.residues.re)), UnsafePointer(arena.copy(recurrence.residues.im))
    )
    skip = recurrence.skip.map { UnsafePointer(arena.copy($0)) }
  }

  /// ``RecurrentConvolution/step(_:into:state:)`` for `channels` alone: `y[c]` from `x[c]`.
  @inline(__always)
  func step(
    channels: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    state: (re: UnsafeMutablePointer<Double>?, im: UnsafeMutablePointer<Double>?)
  ) {
    guard !channels.isEmpty else { return }
    kernels.channels(
      channels.lowerBound, channels.upperBound, offsets, sharedPoles ? 1 : 0, poles.re, poles.im, residues.re,
      residues.im, skip, state.re, state.im, x, y)
  }
}

/// A norm on one row, its parameters copied: `y = (x - c) * s * weight + bias` with `c` and
/// `s` from the norm's own formula (``LongConvTensors/RowNormalization``).
struct NormPlan {
  let formula: RowNormalization
  let width: Int
  let weight: UnsafePointer<Float>?
  let bias: UnsafePointer<Float>?

  init(_ norm: Normalization, width: Int, arena: Arena) {
    formula = norm.formula
    self.width = width
    weight = norm.weight.map { UnsafePointer(arena.copy($0)) }
    bias = norm.bias.map { UnsafePointer(arena.copy($0)) }
  }

  /// Writes the normalised `x` into `y` and returns `y`.
  func apply(_ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
    let d = width
    let (center, _, scale) = formula.statistics(of: x, count: d)
    for j in 0..<d { y[j] = (x[j] - center) * scale }
    if let weight {
      for j in 0..<d { y[j] = y[j] * weight[j] }
    }
    if let bias {
      for j in 0..<d { y[j] = y[j] + bias[j] }
    }
    return UnsafePointer(y)
  }
}
