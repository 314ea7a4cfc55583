import Foundation
import LongConv
import LongConvIO

/// Conversion of bare kernels stored in a safetensors file: every tensor `NAME`, `[channels, n]`
/// (F32, F64, F16 or BF16; read in Double, so F64 keeps its precision), holds the causal lags
/// `0 ..< n` of one kernel. The result is an interchange file (``StateSpaceFile``) with one
/// kernel per tensor, under the same name.
public enum KernelFileConversion {
  /// The kernels in the file at `url`, in name order. Throws a ``LongConvIO/TensorFileError`` naming the
  /// file and the tensor for a file with no tensors, a tensor that is not `[channels, n]`
  /// with both at least 1, or a value that is not finite.
  public static func read(contentsOf url: URL) throws -> [CausalKernelSamples] {
    let file = try SafeTensors.read(contentsOf: url)
    guard !file.names.isEmpty else {
      throw TensorFileError(file: url.path, problem: "holds no tensors (expected kernels [channels, lags])")
    }
    return try file.names.map { name in
      func fail(_ problem: String) -> TensorFileError {
        TensorFileError(file: url.path, tensor: name, problem: problem)
      }
      let shape = file.tensor(name)!.shape
      guard shape.count == 2 else {
        throw fail("rank \(shape.count) (shape \(shape)); a kernel is [channels, lags]")
      }
      guard shape[0] >= 1, shape[1] >= 1 else {
        throw fail("shape \(shape): needs at least one channel and one lag")
      }
      let values = file.doubles(name)!
      if let i = values.firstIndex(where: { !$0.isFinite }) {
        throw fail("value at channel \(i / shape[1]), lag \(i % shape[1]) is \(values[i])")
      }
      do {
        return try CausalKernelSamples(name: name, channels: shape[0], length: shape[1], values: values)
      } catch let error as ConversionError {
        throw fail(error.problem)
      }
    }
  }

  /// Converts every kernel of `input` with `converter` and writes the interchange file
  /// `output` (atomically), with metadata `mode`, `source` and `length` (or `length.NAME` per
  /// kernel when the lengths differ). Refuses to write over `input` itself. Returns the
  /// reports, in name order.
  @discardableResult
  public static func convert(
    contentsOf input: URL, converter: some KernelConverter, writingTo output: URL
  ) throws -> [KernelConversionReport] {
    if sameFile(input, output) {
      throw TensorFileError(file: output.path, problem: "is the input file; choose another output")
    }
    let kernels = try read(contentsOf: input)
    var systems: [String: DiagonalStateSpace] = [:]
    var reports: [KernelConversionReport] = []
    for kernel in kernels {
      let conversion: KernelConversion
      do {
        conversion = try converter.convert(kernel)
      } catch let error as ConversionError {
        throw TensorFileError(file: input.path, tensor: kernel.name, problem: error.problem)
      }
      systems[kernel.name] = conversion.stateSpace
      reports.append(conversion.report)
    }
    var metadata = ["mode": converter.mode.rawValue, "source": input.path]
    let lengths = Set(kernels.map(\.length))
    if lengths.count == 1 {
      metadata["length"] = "\(lengths.first!)"
    } else {
      for kernel in kernels { metadata["length.\(kernel.name)"] = "\(kernel.length)" }
    }
    metadata["limited_to_length"] =
      reports.contains { $0.mode == .exact || ($0.exactChannels ?? 0) > 0 } ? "true" : "false"
    try StateSpaceFile.write(systems, metadata: metadata, to: output)
    return reports
  }

  /// Whether `a` and `b` name the same file (after resolving links, or by device and inode
  /// when both exist).
  public static func sameFile(_ a: URL, _ b: URL) -> Bool {
    if a.standardizedFileURL.resolvingSymlinksInPath().path
      == b.standardizedFileURL.resolvingSymlinksInPath().path
    {
      return true
    }
    var sa = stat()
    var sb = stat()
    guard stat(a.path, &sa) == 0, stat(b.path, &sb) == 0 else { return false }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
  }
}
