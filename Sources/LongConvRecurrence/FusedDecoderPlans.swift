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

/// How a decoder packs its products: their kernels, the weights' format, and the memory.
struct Packing {
  let kernels: lck_kernels
  let weights: DecodingWeights
  let arena: Arena
}

/// A copied weight matrix, row-major, in the decoder's ``DecodingWeights`` format.
enum PackedWeights {
  case float32(UnsafePointer<Float>)
  case bfloat16(UnsafePointer<UInt16>)

  /// A copy of `values` (`count` of them) in `packing`'s format.
  init(_ values: UnsafePointer<Float>, count: Int, packing: Packing) {
    switch packing.weights {
    case .float32:
      let p = packing.arena.allocate(count, of: Float.self)
      p.update(from: values, count: count)
      self = .float32(p)
    case .bfloat16:
      let p = packing.arena.allocate(count, of: UInt16.self)
      for i in 0..<count { p[i] = BFloat16.rounded(values[i]) }
      self = .bfloat16(p)
    }
  }

  /// The weights from element `offset` on.
  func advanced(by offset: Int) -> PackedWeights {
    switch self {
    case .float32(let w): .float32(w + offset)
    case .bfloat16(let w): .bfloat16(w + offset)
    }
  }

  /// `count` weights from `offset` on, as Float32, into `y` (an embedding row).
  func widen(from offset: Int, count: Int, into y: UnsafeMutablePointer<Float>) {
    switch self {
    case .float32(let w): y.update(from: w + offset, count: count)
    case .bfloat16(let w): for i in 0..<count { y[i] = BFloat16.value(w[offset + i]) }
    }
  }

  /// `y[r] = W[r] . x + b[r]` for `rows` rows of `cols` columns, on `kernels`.
  @inline(__always)
  func product(
    rows: Int, cols: Int, _ x: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    into y: UnsafeMutablePointer<Float>, kernels: lck_kernels
  ) {
    switch self {
    case .float32(let w): kernels.gemv(w, rows, cols, x, bias, y)
    case .bfloat16(let w): kernels.gemv_bf16(w, rows, cols, x, bias, y)
    }
  }
}

/// `y[r] = W[r] . x + b[r]` for one member's rows `r` in ``range`` of a copied weight.
struct RowProduct {
  /// Row ``range``'s lower bound of the whole `[rows, cols]` weight.
  let weight: PackedWeights
  let bias: UnsafePointer<Float>?
  let range: Range<Int>
  let cols: Int
  /// The decoder's kernels.
  let kernels: lck_kernels

  /// One per member (`bounds` from ``FusedDecoder``), over one copy of `weight` and `bias`.
  static func slices(_ weight: Tensor, bias: Tensor?, bounds: [Int], packing: Packing) -> [RowProduct] {
    let cols = weight.shape[1]
    let w = weight.withUnsafeBufferPointer {
      PackedWeights($0.baseAddress!, count: weight.count, packing: packing)
    }
    let b = bias.map(packing.arena.copy)
    return (0..<bounds.count - 1).map { t in
      let range = bounds[t]..<bounds[t + 1]
      return RowProduct(
        weight: w.advanced(by: range.lowerBound * cols), bias: b.map { UnsafePointer($0 + range.lowerBound) },
        range: range, cols: cols, kernels: packing.kernels)
    }
  }

  /// Writes `y[range]`.
  @inline(__always)
  func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
    guard !range.isEmpty else { return }
    weight.product(rows: range.count, cols: cols, x, bias: bias, into: y + range.lowerBound, kernels: kernels)
  }
}

/// `p = W[:, C] x[C]` for one member's columns `C` of a `[rows, cols]` weight, kept contiguous.
/// The bias is added once, when the members' partials are summed.
struct ColumnProduct {
  let block: PackedWeights
  let columns: Range<Int>
  let rows: Int
  /// Columns of the whole weight.
  let columnsTotal: Int
  /// The decoder's kernels.
  let kernels: lck_kernels

  /// One per member, over the column slices `bounds` of `weight`.
  static func slices(_ weight: Tensor, bounds: [Int], packing: Packing) -> [ColumnProduct] {
    let (rows, cols) = (weight.shape[0], weight.shape[1])
    let values = weight.scalars
    return (0..<bounds.count - 1).map { t in
      let columns = bounds[t]..<bounds[t + 1]
      var block = [Float](repeating: 0, count: rows * columns.count)
      for r in 0..<rows {
        for (j, c) in columns.enumerated() { block[r * columns.count + j] = values[r * cols + c] }
      }
      return ColumnProduct(
        block: PackedWeights(block, count: block.count, packing: packing), columns: columns, rows: rows,
        columnsTotal: cols, kernels: packing.kernels)
    }
  }

  /// Writes the partial `p [rows]` (zeros when the member has no columns).
  @inline(__always)
  func apply(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>) {
    guard !columns.isEmpty else {
      p.update(repeating: 0, count: rows)
      return
    }
    block.product(
      rows: rows, cols: columns.count, x + columns.lowerBound, bias: nil, into: p, kernels: kernels)
  }
}

/// A layer's recurrence state while a step runs: the modal states, or ETSC's folded slots
/// and the inputs consumed so far.
struct RecurrenceState {
  let re: UnsafeMutablePointer<Double>?
  let im: UnsafeMutablePointer<Double>?
  let slots: UnsafeMutablePointer<Float>?
  let time: Int
}

/// A ``RecurrentConvolution``'s constants copied for the kernels: poles, residues and skip, or
/// for ETSC's grid the folded window (``FoldedGrid``) and skip.
struct RecurrencePlan {
  /// The constants of one of the two bases a recurrence runs in.
  enum Form {
    /// Complex modes: `offsets[c] ..< offsets[c + 1]` are channel `c`'s, with their poles
    /// (one row for every channel when shared) and residues.
    case modal(
      offsets: UnsafePointer<Int>, sharedPoles: Bool,
      poles: (re: UnsafePointer<Double>, im: UnsafePointer<Double>),
      residues: (re: UnsafePointer<Float>, im: UnsafePointer<Float>))
    /// ETSC's grid in the folded basis: the schedule and the reversed kernel.
    case folded(schedule: FoldedGrid.Schedule, window: UnsafePointer<Float>)
  }

  let form: Form
  let skip: UnsafePointer<Float>?
  /// The decoder's kernels.
  let kernels: lck_kernels

  init(_ recurrence: RecurrentConvolution, packing: Packing) {
    let arena = packing.arena
    kernels = packing.kernels
    if let grid = recurrence.folded {
      form = .folded(schedule: grid.schedule, window: UnsafePointer(arena.copy(grid.window)))
    } else {
      form = .modal(
        offsets: UnsafePointer(arena.copy(recurrence.offsets)), sharedPoles: recurrence.sharedPoles,
        poles: (
          UnsafePointer(arena.copy(recurrence.poles.re)), UnsafePointer(arena.copy(recurrence.poles.im))
        ),
        residues: (
          UnsafePointer(arena.copy(recurrence.residues.re)), UnsafePointer(arena.copy(recurrence.residues.im))
        ))
    }
    skip = recurrence.skip.map { UnsafePointer(arena.copy($0)) }
  }

  /// ``RecurrentConvolution/step(_:into:state:)`` for `channels` alone: `y[c]` from `x[c]`.
  @inline(__always)
  func step(
    channels: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, state: RecurrenceState
  ) {
    guard !channels.isEmpty else { return }
    switch form {
    case .folded(let schedule, let window):
      let (slot, rescale, input, output) = schedule.scales(time: state.time)
      kernels.folded(
        channels.lowerBound, channels.upperBound, schedule.m, slot, rescale, input, output, window, skip,
        state.slots, x, y)
    case .modal(let offsets, let sharedPoles, let poles, let residues):
      kernels.channels(
        channels.lowerBound, channels.upperBound, offsets, sharedPoles ? 1 : 0, poles.re, poles.im,
        residues.re,
        residues.im, skip, state.re, state.im, x, y)
    }
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
