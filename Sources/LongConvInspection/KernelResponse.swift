import LongConv
import LongConvIO
import LongConvLayers
import LongConvTensors

/// A kernel's coefficients at one sequence length, in Double: what inspection draws.
public struct KernelResponse: Sendable {
  /// The kernel's config `type` (`"tnn"`), or its Swift type name.
  public let kernelName: String
  /// Causal (``coefficients`` hold lags `0 ... L-1`) or bidirectional (lags `-(L-1) ... L-1`).
  public let direction: ConvolutionDirection
  /// The sequence length `L`: the Toeplitz matrix is `L x L`.
  public let length: Int
  /// `[D][L]` (causal, lags `0 ... L-1`) or `[D][2L - 1]` (bidirectional, lags `-(L-1) ... L-1`).
  public let coefficients: [[Double]]

  /// The coefficients `kernel` produces for `length`, computed without recording a graph;
  /// rethrows the kernel's ``LongConv/KernelError`` for a length it cannot produce.
  public init(kernel: any LongConvKernel, length: Int) throws {
    let tensor = try Tensor.withoutRecording { try kernel.coefficients(length: length) }
    let columns = kernel.direction == .causal ? length : 2 * length - 1
    precondition(
      tensor.shape == [kernel.channels, columns],
      "KernelResponse: coefficients \(tensor.shape) for \(kernel.channels) channels, length \(length)")
    let scalars = tensor.scalars
    let name = (kernel as? any ConfigurableKernel).map { type(of: $0).typeName }
    let rows = (0..<kernel.channels).map { c in scalars[c * columns..<(c + 1) * columns].map(Double.init) }
    self.init(
      kernelName: name ?? String(describing: type(of: kernel)), direction: kernel.direction, length: length,
      coefficients: rows)
  }

  /// A response from coefficients already computed, `[D][L]` (causal) or `[D][2L - 1]` (bidirectional); the
  /// row lengths are not checked.
  public init(kernelName: String, direction: ConvolutionDirection, length: Int, coefficients: [[Double]]) {
    self.kernelName = kernelName
    self.direction = direction
    self.length = length
    self.coefficients = coefficients
  }

  /// Channels `D`.
  public var channels: Int { coefficients.count }

  /// The lags stored: `0 ... L-1` or `-(L-1) ... L-1`.
  public var lags: ClosedRange<Int> { (direction == .causal ? 0 : 1 - length)...(length - 1) }

  /// `t_c[lag]`, and 0 for a lag the kernel does not have (negative lags of a causal kernel).
  public func coefficient(channel: Int, lag: Int) -> Double {
    lags.contains(lag) ? coefficients[channel][lag - lags.lowerBound] : 0
  }

  /// The Euclidean norm of each channel's coefficients.
  public var norms: [Double] { coefficients.map { row in row.reduce(0) { $0 + $1 * $1 }.squareRoot() } }

  /// `count` channels worth drawing (all of them when `count >= channels`): channel 0, then
  /// channels at evenly spaced ranks of the norm, largest first (for 4: channel 0, the largest,
  /// the median and the smallest norm), then further ranks if some coincided.
  public func representativeChannels(count: Int) -> [Int] {
    let wanted = min(count, channels)
    let norms = self.norms
    let byNorm = (0..<channels).sorted { norms[$0] > norms[$1] || (norms[$0] == norms[$1] && $0 < $1) }
    let picks = wanted - 1
    var chosen = [0]
    for j in 0..<max(picks, 0) {
      let rank = picks == 1 ? 0 : Int((Double(j) * Double(channels - 1) / Double(picks - 1)).rounded())
      chosen.append(byNorm[rank])
    }
    var seen = Set<Int>()
    chosen = chosen.filter { seen.insert($0).inserted }
    for c in byNorm where chosen.count < wanted && !seen.contains(c) { chosen.append(c) }
    return Array(chosen.prefix(wanted))
  }

  /// Channel `channel`'s `L x L` Toeplitz matrix, averaged to at most `maxCells` cells a side.
  public func toeplitz(channel: Int, maxCells: Int = 128) -> ToeplitzSample {
    precondition(maxCells >= 1, "toeplitz: maxCells \(maxCells) < 1")
    let stride = (length + maxCells - 1) / maxCells
    let cells = (length + stride - 1) / stride
    // The mean of t[i - j] over a stride x stride block on diagonal d: lag d s + m appears
    // s - |m| times.
    let diagonals = (1 - cells..<cells).map { d in
      var sum = 0.0
      for m in 1 - stride..<stride {
        sum += Double(stride - abs(m)) * coefficient(channel: channel, lag: d * stride + m)
      }
      return sum / Double(stride * stride)
    }
    return ToeplitzSample(size: length, stride: stride, cells: cells, diagonals: diagonals)
  }
}

/// A Toeplitz matrix `T[i][j] = t[i - j]` (zero above the diagonal for a causal kernel) of
/// `size x size` entries, averaged over blocks of `stride x stride` entries into
/// `cells x cells` cells.
///
/// Block means of a Toeplitz matrix form a Toeplitz matrix, so one value per cell diagonal
/// is kept: cell `(I, J)` is the mean of `T` over rows `I s ..< (I+1) s` and columns
/// `J s ..< (J+1) s`. When `size` is not a multiple of the stride, the last row and column
/// of cells stand for fewer entries and show the mean of the full block (lags beyond the
/// kernel count as 0).
public struct ToeplitzSample: Sendable, Equatable {
  /// Entries a side of the full matrix (the sequence length).
  public let size: Int
  /// Entries a side of a block.
  public let stride: Int
  /// Cells a side.
  public let cells: Int
  /// `2 cells - 1` values: cell diagonal `I - J` at index `I - J + cells - 1`.
  public let diagonals: [Double]

  /// The value of cell `(row, column)`.
  public func value(row: Int, column: Int) -> Double { diagonals[row - column + cells - 1] }

  /// The largest magnitude of any cell.
  public var maxMagnitude: Double { diagonals.map(abs).max() ?? 0 }
}
