import LongConvLayers
import LongConvTensors

/// Reads one JSON object of a config with typed accessors that name the key path in every
/// error, and records each key it reads (defaults included), so ``resolved`` is the complete
/// config the model was built from: encoding it and decoding again gives the same model.
public final class ConfigReader {
  /// Dotted path of this object (`""` at the top).
  public let path: String
  /// File the config came from, for errors.
  public let file: String?
  private let values: [String: JSONValue]
  private var read: [String: JSONValue] = [:]
  private var children: [String: ConfigReader] = [:]
  private var ignored: Set<String> = []

  /// A reader for `value`, which must be an object.
  public init(_ value: JSONValue, path: String = "", file: String? = nil) throws {
    guard case .object(let values) = value else {
      throw ConfigError(file: file, path: path, problem: "expected an object, got \(value.kindDescription)")
    }
    self.values = values
    self.path = path
    self.file = file
  }

  func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

  /// An error at `key` of this object, naming the file and the key path: for a component's
  /// own checks of a value it has read (`config.error("rate", "must be above 0, got \(rate)")`).
  public func error(_ key: String, _ problem: String) -> ConfigError {
    ConfigError(file: file, path: keyPath(key), problem: problem)
  }

  private func value(_ key: String) -> JSONValue? {
    if let v = values[key], v != .null { return v }
    return nil
  }

  /// An integer; `default` when absent, else the key is required.
  public func int(_ key: String, default fallback: Int? = nil, minimum: Int? = nil) throws -> Int {
    let result: Int
    switch value(key) {
    case .number(let d)?:
      guard d.rounded() == d, Swift.abs(d) < 1e15 else {
        throw error(key, "expected an integer, got number \(d)")
      }
      result = Int(d)
    case let other?: throw error(key, "expected an integer, got \(other.kindDescription)")
    case nil:
      guard let fallback else { throw error(key, "missing required key") }
      result = fallback
    }
    if let minimum, result < minimum { throw error(key, "must be at least \(minimum), got \(result)") }
    read[key] = .number(Double(result))
    return result
  }

  /// A number; `default` when absent, else the key is required.
  public func double(_ key: String, default fallback: Double? = nil, range: ClosedRange<Double>? = nil) throws
    -> Double
  {
    let result: Double
    switch value(key) {
    case .number(let d)?: result = d
    case let other?: throw error(key, "expected a number, got \(other.kindDescription)")
    case nil:
      guard let fallback else { throw error(key, "missing required key") }
      result = fallback
    }
    if let range, !range.contains(result) {
      throw error(key, "must be in [\(range.lowerBound), \(range.upperBound)], got \(result)")
    }
    read[key] = .number(result)
    return result
  }

  /// A boolean; `default` when absent, else the key is required.
  public func bool(_ key: String, default fallback: Bool? = nil) throws -> Bool {
    let result: Bool
    switch value(key) {
    case .bool(let b)?: result = b
    case let other?: throw error(key, "expected true or false, got \(other.kindDescription)")
    case nil:
      guard let fallback else { throw error(key, "missing required key") }
      result = fallback
    }
    read[key] = .bool(result)
    return result
  }

  /// A string; `default` when absent, else required; limited to `allowed` when given.
  public func string(_ key: String, default fallback: String? = nil, allowed: [String]? = nil) throws
    -> String
  {
    let result: String
    switch value(key) {
    case .string(let s)?: result = s
    case let other?: throw error(key, "expected a string, got \(other.kindDescription)")
    case nil:
      guard let fallback else { throw error(key, "missing required key") }
      result = fallback
    }
    if let allowed, !allowed.contains(result) {
      throw error(key, "unknown value \"\(result)\" (expected one of: \(allowed.joined(separator: ", ")))")
    }
    read[key] = .string(result)
    return result
  }

  /// The value of `key` (`nil` when absent or null), marked as read: for keys a reader
  /// accepts whatever they hold (a training-only setting of another framework's config).
  public func accept(_ key: String) -> JSONValue? {
    let v = value(key)
    read[key] = v ?? .null
    return v
  }

  /// A nested object; an empty object when absent and `optional`.
  public func object(_ key: String, optional: Bool = false) throws -> ConfigReader {
    let child: ConfigReader
    switch value(key) {
    case let v?: child = try ConfigReader(v, path: keyPath(key), file: file)
    case nil:
      guard optional else { throw error(key, "missing required key") }
      child = try ConfigReader(.object([:]), path: keyPath(key), file: file)
    }
    children[key] = child
    return child
  }

  /// Leaves `key` to another reader: it is neither an unknown key nor part of ``resolved``
  /// (a model config's `training` section, which the trainer reads).
  public func ignore(_ key: String) { ignored.insert(key) }

  /// The value at `key` as written, or `nil` when absent (for handing a section to another reader).
  public func raw(_ key: String) -> JSONValue? { value(key) }

  /// Throws for any key that no accessor read: a misspelt key is an error, not a silent default.
  public func rejectUnknownKeys() throws {
    for key in values.keys.sorted() where read[key] == nil && children[key] == nil && !ignored.contains(key) {
      throw error(key, "unknown key")
    }
    for child in children.values { try child.rejectUnknownKeys() }
  }

  /// Every key read, with the values used (defaults filled in), nested objects included.
  public var resolved: JSONValue {
    var all = read
    for (key, child) in children { all[key] = child.resolved }
    return .object(all)
  }
}
