import Foundation
import LongConvIO
import LongConvLayers
import LongConvTensors

/// A problem loading or saving a checkpoint: the file, the tensor when there is one, and
/// what is wrong.
public typealias CheckpointError = TensorFileError

/// Checkpoints: a directory holding `model.safetensors` (every named parameter and buffer,
/// F32) and `config.json` (the model's resolved config).
///
/// Saving is atomic for the directory as a whole: the new checkpoint is written into a
/// sibling temporary directory, the old one is renamed aside to `.<name>.previous`, the new
/// one renamed in, and the old one removed. A crash before the swap leaves the old checkpoint
/// in place; a crash between the two renames leaves it at `.<name>.previous`, where
/// ``load(from:)`` finds it.
public enum Checkpoint {
  /// The parameters, by dotted name, in F32.
  public static let weightsFile = "model.safetensors"
  /// The model's resolved config.
  public static let configFile = "config.json"

  /// Saves `model`'s parameters and config into `directory`, replacing an earlier checkpoint;
  /// `extraFiles` (name to contents) and `extraTensorFiles` (name to tensors, written as
  /// safetensors; optimizer state, say) go into the same atomic swap.
  public static func save(
    _ model: any SequenceModel, to directory: URL, extraFiles: [String: Data] = [:],
    extraTensorFiles: [String: [String: Tensor]] = [:]
  ) throws {
    let target = directory.standardizedFileURL
    let path = target.path
    let fileManager = FileManager.default
    var isDirectory: ObjCBool = false
    if fileManager.fileExists(atPath: path, isDirectory: &isDirectory) {
      guard isDirectory.boolValue else {
        throw CheckpointError(file: path, problem: "exists and is not a directory")
      }
      let contents = try contentsOfDirectory(target)
      guard contents.isEmpty || contents.contains(weightsFile) || contents.contains(configFile) else {
        throw CheckpointError(
          file: path,
          problem: "exists and is not a checkpoint (no \(weightsFile) or \(configFile)); not replacing it")
      }
    }

    var tensors: [String: Tensor] = [:]
    for (name, tensor) in model.namedState() {
      guard tensors.updateValue(tensor, forKey: name) == nil else {
        throw CheckpointError(file: path, tensor: name, problem: "two parameters or buffers have this name")
      }
    }

    let parent = target.deletingLastPathComponent()
    let temporary = parent.appendingPathComponent(".\(target.lastPathComponent).tmp-\(UUID().uuidString)")
    let previous = previousURL(target)
    do {
      try fileManager.createDirectory(at: temporary, withIntermediateDirectories: false)
    } catch {
      throw CheckpointError(
        file: path, problem: "cannot create a temporary directory beside it (\(error.localizedDescription))")
    }
    var installed = false
    defer { if !installed { try? fileManager.removeItem(at: temporary) } }

    try SafeTensors.write(tensors, dtype: .f32, to: temporary.appendingPathComponent(weightsFile))
    let config = model.config.serialized()
    try AtomicFile.write(to: temporary.appendingPathComponent(configFile)) { sink in
      try config.withUnsafeBytes { try sink($0) }
    }
    for (name, tensors) in extraTensorFiles {
      try SafeTensors.write(tensors, dtype: .f32, to: temporary.appendingPathComponent(name))
    }
    for (name, data) in extraFiles.sorted(by: { $0.key < $1.key }) {
      try AtomicFile.write(to: temporary.appendingPathComponent(name)) { sink in
        try data.withUnsafeBytes { try sink($0) }
      }
    }
    AtomicFile.syncDirectory(temporary)

    // Swap: old aside, new in, old removed.
    let hadOld = fileManager.fileExists(atPath: path)
    if hadOld {
      // A `.previous` beside an existing checkpoint is left over from a finished save.
      try? fileManager.removeItem(at: previous)
      guard rename(path, previous.path) == 0 else {
        throw CheckpointError(
          file: path, problem: "cannot move the old checkpoint aside (\(String(cString: strerror(errno))))")
      }
    }
    guard rename(temporary.path, path) == 0 else {
      let reason = String(cString: strerror(errno))
      if hadOld { _ = rename(previous.path, path) }
      throw CheckpointError(file: path, problem: "cannot move the new checkpoint into place (\(reason))")
    }
    installed = true
    AtomicFile.syncDirectory(parent)
    try? fileManager.removeItem(at: previous)
  }

  /// Builds the model described by `directory/config.json` and loads its parameters and
  /// buffers from `directory/model.safetensors` (``loadState(into:from:)``).
  public static func load(from directory: URL) throws -> any SequenceModel {
    let source = try existing(directory)
    let model = try ModelBuilder.build(contentsOf: source.appendingPathComponent(configFile))
    try loadState(into: model, from: source)
    return model
  }

  /// Loads the parameters and buffers of the checkpoint in `directory` into `model` (a model
  /// built from another config, to start a run from trained weights), after checking that every
  /// parameter is present, that every tensor has its exact shape and that the file holds nothing
  /// else. A buffer the file lacks keeps the value the config gives it (checkpoints written
  /// before a constant became a buffer hold none).
  public static func loadState(into model: any SequenceModel, from directory: URL) throws {
    let source = try existing(directory)
    let weightsURL = source.appendingPathComponent(weightsFile)
    let file = weightsURL.path
    let stored = try SafeTensors.read(contentsOf: weightsURL)

    let parameters = model.namedParameters()
    let buffers = model.namedBuffers().filter { stored.tensor($0.name) != nil }
    let missing = parameters.map(\.name).filter { stored.tensor($0) == nil }
    if let first = missing.first {
      throw CheckpointError(
        file: file, tensor: first,
        problem:
          "missing; the model needs \(missing.count) parameter(s) the file lacks: \(missing.joined(separator: ", "))"
      )
    }
    let state = parameters + buffers
    for (name, parameter) in state {
      let shape = stored.tensor(name)!.shape
      guard shape == parameter.shape else {
        throw CheckpointError(
          file: file, tensor: name, problem: "shape mismatch: expected \(parameter.shape), found \(shape)")
      }
    }
    let known = Set(model.namedState().map(\.name))
    let extra = stored.names.filter { !known.contains($0) }
    if let first = extra.first {
      throw CheckpointError(
        file: file, tensor: first,
        problem:
          "not a parameter or buffer of the model; unexpected tensor(s): \(extra.joined(separator: ", "))")
    }

    for (name, parameter) in state {
      let value = stored.tensor(name)!
      value.withUnsafeBufferPointer { source in
        parameter.withUnsafeMutableBufferPointer { target in
          _ = target.update(fromContentsOf: source)
        }
      }
    }
  }

  /// `directory`, or the previous checkpoint a save interrupted between its two renames set
  /// aside; throws when neither exists.
  static func existing(_ directory: URL) throws -> URL {
    let target = directory.standardizedFileURL
    let source = location(of: target)
    // A set-aside copy counts only if its weights made it there.
    let found = FileManager.default.fileExists(
      atPath: source == target ? source.path : source.appendingPathComponent(weightsFile).path)
    guard found else { throw CheckpointError(file: target.path, problem: "no such checkpoint directory") }
    return source
  }

  /// Where the checkpoint at `directory` really is: the directory itself, or the previous
  /// checkpoint set aside by a save that was interrupted between its two renames.
  public static func location(of directory: URL) -> URL {
    let target = directory.standardizedFileURL
    if FileManager.default.fileExists(atPath: target.path) { return target }
    let previous = previousURL(target)
    return FileManager.default.fileExists(atPath: previous.path) ? previous : target
  }

  static func previousURL(_ target: URL) -> URL {
    target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).previous")
  }

  private static func contentsOfDirectory(_ url: URL) throws -> [String] {
    do {
      return try FileManager.default.contentsOfDirectory(atPath: url.path)
    } catch {
      throw CheckpointError(
        file: url.path, problem: "cannot list the directory (\(error.localizedDescription))")
    }
  }
}
