import Foundation
import LongConv
import LongConvIO
import LongConvLayers
import LongConvTensors

/// Fills a model's tensors from another framework's state dict, checking everything before
/// anything is copied: each source tensor present, of the expected shape and finite, and, at
/// the end, every tensor of the file used.
struct StateDictReader {
  /// Where one of our tensors comes from: the source's name, its shape there, and the
  /// conversion of its values to our layout (the identity by default).
  struct Source {
    let name: String
    let shape: [Int]
    var convert: (Tensor) -> [Float] = { $0.scalars }
  }

  let weights: SafeTensors
  let file: String
  private var used = Set<String>()
  private var copies: [(values: [Float], into: Tensor)] = []

  init(contentsOf url: URL) throws {
    weights = try SafeTensors.read(contentsOf: url)
    file = url.path
  }

  /// The checked source tensor `name` (of `shape`, needed for our `ours`), marked as used.
  mutating func tensor(_ name: String, shape: [Int], for ours: String) throws -> Tensor {
    guard let tensor = weights.tensor(name) else {
      throw CheckpointError(file: file, tensor: name, problem: "missing (needed for \(ours), shape \(shape))")
    }
    guard tensor.shape == shape else {
      throw CheckpointError(
        file: file, tensor: name, problem: "shape \(tensor.shape) does not match the config's \(shape)")
    }
    guard tensor.scalars.allSatisfy(\.isFinite) else {
      throw CheckpointError(file: file, tensor: name, problem: "holds values that are not finite")
    }
    used.insert(name)
    return tensor
  }

  /// Schedules the copy of `source` into our tensor `name`.
  mutating func fill(_ tensor: Tensor, named name: String, from source: Source) throws {
    copies.append((source.convert(try self.tensor(source.name, shape: source.shape, for: name)), tensor))
  }

  /// Marks `name` as used without reading it (a tensor the source keeps but that has no effect).
  mutating func ignore(_ name: String) { used.insert(name) }

  /// Throws for the first tensor of the file nothing used (`problem` given their count and the
  /// first few names); otherwise copies every scheduled value.
  func finish(unused problem: (Int, String) -> String) throws {
    let extra = weights.names.filter { !used.contains($0) }
    guard extra.isEmpty else {
      throw CheckpointError(
        file: file, tensor: extra[0], problem: problem(extra.count, extra.prefix(5).joined(separator: ", ")))
    }
    for (values, tensor) in copies {
      tensor.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: values) }
    }
  }
}
