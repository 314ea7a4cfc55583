import Foundation
import LongConv
import LongConvIO

/// The interchange format for converted kernels: a safetensors file holding, for each kernel
/// `NAME`,
///
/// - `NAME.poles` and `NAME.residues`, `[channels, states, 2]` F64 (real, imaginary);
/// - optionally `NAME.skip`, `[channels]` F64;
///
/// meaning, per channel, `s_i = poles * s_(i-1) + x_i` and
/// `y_i = Re(sum over states of residues * s_i) + skip * x_i` (conjugate pairs folded by
/// doubling the residue). Channels with fewer states than the widest are padded with
/// zero poles and zero residues, which contribute nothing (and are dropped on reading).
/// Metadata (`__metadata__`) carries the conversion length and mode.
public enum StateSpaceFile {
  /// Writes `kernels` to `url` atomically.
  public static func write(
    _ kernels: [String: DiagonalStateSpace], metadata: [String: String] = [:], to url: URL
  ) throws {
    var tensors: [String: (shape: [Int], values: [Double])] = [:]
    for (name, system) in kernels {
      let d = system.channels
      let width = (0..<d).map(system.states).max() ?? 0
      var poles = [Double](repeating: 0, count: d * width * 2)
      var residues = poles
      for c in 0..<d {
        for n in 0..<system.states(c) {
          let i = (c * width + n) * 2
          (poles[i], poles[i + 1]) = (system.polesReal[c][n], system.polesImaginary[c][n])
          (residues[i], residues[i + 1]) = (system.residuesReal[c][n], system.residuesImaginary[c][n])
        }
      }
      tensors["\(name).poles"] = ([d, width, 2], poles)
      tensors["\(name).residues"] = ([d, width, 2], residues)
      if let skip = system.skip { tensors["\(name).skip"] = ([d], skip) }
    }
    try SafeTensors.write(doubles: tensors, metadata: metadata, to: url)
  }

  /// Reads every kernel in the file at `url`, with its metadata. Throws a
  /// ``LongConvIO/TensorFileError`` naming the file and tensor for a malformed file, a wrong rank or
  /// shape, an unpaired tensor or a value that is not finite.
  public static func read(contentsOf url: URL) throws -> (
    kernels: [String: DiagonalStateSpace], metadata: [String: String]
  ) {
    let file = try SafeTensors.read(contentsOf: url)
    func fail(_ tensor: String?, _ problem: String) -> TensorFileError {
      TensorFileError(file: url.path, tensor: tensor, problem: problem)
    }
    var kernels: [String: DiagonalStateSpace] = [:]
    var kernelNames: [String] = []
    for name in file.names {
      guard let suffix = [".poles", ".residues", ".skip"].first(where: { name.hasSuffix($0) }) else {
        throw fail(name, "not part of a kernel (expected NAME.poles, NAME.residues or NAME.skip)")
      }
      let base = String(name.dropLast(suffix.count))
      guard file.tensor("\(base).poles") != nil else { throw fail(name, "has no matching \(base).poles") }
      if suffix == ".poles" { kernelNames.append(base) }
    }
    for name in kernelNames {
      let (polesName, residuesName, skipName) = ("\(name).poles", "\(name).residues", "\(name).skip")
      let poles = file.doubles(polesName)!
      let shape = file.tensor(polesName)!.shape
      guard shape.count == 3, shape[2] == 2 else {
        throw fail(polesName, "shape \(shape), expected [channels, states, 2]")
      }
      guard let residues = file.doubles(residuesName) else {
        throw fail(residuesName, "missing (every NAME.poles needs NAME.residues)")
      }
      guard file.tensor(residuesName)!.shape == shape else {
        throw fail(residuesName, "shape \(file.tensor(residuesName)!.shape) differs from the poles' \(shape)")
      }
      for (tensor, values) in [(polesName, poles), (residuesName, residues)] {
        if let i = values.firstIndex(where: { !$0.isFinite }) {
          throw fail(tensor, "value \(i) is \(values[i])")
        }
      }
      let (d, width) = (shape[0], shape[1])
      var skip: [Double]?
      if let values = file.doubles(skipName) {
        guard file.tensor(skipName)!.shape == [d] else {
          throw fail(skipName, "shape \(file.tensor(skipName)!.shape), expected [\(d)]")
        }
        guard values.allSatisfy(\.isFinite) else { throw fail(skipName, "a value is not finite") }
        skip = values
      }
      var system = DiagonalStateSpace(
        polesReal: [], polesImaginary: [], residuesReal: [], residuesImaginary: [], skip: skip)
      for c in 0..<d {
        // Trailing padding (zero pole, zero residue) is dropped.
        var count = width
        while count > 0 {
          let i = (c * width + count - 1) * 2
          guard poles[i] == 0, poles[i + 1] == 0, residues[i] == 0, residues[i + 1] == 0 else { break }
          count -= 1
        }
        let indices = (0..<count).map { (c * width + $0) * 2 }
        system.polesReal.append(indices.map { poles[$0] })
        system.polesImaginary.append(indices.map { poles[$0 + 1] })
        system.residuesReal.append(indices.map { residues[$0] })
        system.residuesImaginary.append(indices.map { residues[$0 + 1] })
      }
      kernels[name] = system
    }
    return (kernels, file.metadata)
  }
}
