import Foundation
import LongConvLayers
import LongConvTensors

/// A JSON value, parsed without losing which kind of value each key held.
public enum JSONValue: Equatable, Sendable {
  /// JSON `null`.
  case null
  /// `true` or `false`.
  case bool(Bool)
  /// A number, held as a Double (integers included).
  case number(Double)
  /// A string.
  case string(String)
  /// An array, in order.
  case array([JSONValue])
  /// An object: keys and values (the key order of the file is not kept).
  case object([String: JSONValue])

  /// Reads and parses the JSON file at `url`; errors name the file.
  public static func read(contentsOf url: URL) throws -> JSONValue {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw ConfigError(
        file: url.path, path: "", problem: "cannot read the file (\(error.localizedDescription))")
    }
    return try parse(data, source: url.path)
  }

  /// Parses `data`; `source` names the file in the error.
  public static func parse(_ data: Data, source: String) throws -> JSONValue {
    do {
      return try JSONDecoder().decode(JSONValue.self, from: data)
    } catch let DecodingError.dataCorrupted(context) {
      let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
      throw ConfigError(
        file: source, path: "", problem: "invalid JSON (\(detail ?? context.debugDescription))")
    } catch {
      throw ConfigError(file: source, path: "", problem: "invalid JSON (\(error))")
    }
  }

  /// Pretty JSON with sorted keys, so equal configs give equal bytes.
  public func serialized() -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return (try? encoder.encode(self)) ?? Data()
  }

  /// What kind of value this is, for error messages.
  public var kindDescription: String {
    switch self {
    case .null: "null"
    case .bool(let b): "boolean \(b)"
    case .number(let d): "number \(d)"
    case .string(let s): "string \"\(s)\""
    case .array: "an array"
    case .object: "an object"
    }
  }
}

/// A problem in a config: the file, the dotted key path and what is wrong.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
  /// The config file, or `nil` for a config built in memory.
  public var file: String?
  /// Dotted key path, for example `layers.mixer.kernel.rpe_layers`.
  public var path: String
  /// What is wrong, with the expected and the actual value.
  public var problem: String

  /// An error at `path` of `file`.
  public init(file: String?, path: String, problem: String) {
    self.file = file
    self.path = path
    self.problem = problem
  }

  /// `<file>: <path>: <problem>`, leaving out the file when `nil` and the path when empty.
  public var description: String {
    let place = [file, path.isEmpty ? nil : path].compactMap { $0 }.joined(separator: ": ")
    return place.isEmpty ? problem : "\(place): \(problem)"
  }
}

extension JSONValue: Codable {
  /// Decodes one JSON value of any kind, trying `null`, a boolean, a number, a string, an array, then an
  /// object.
  public init(from decoder: Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let d = try? c.decode(Double.self) {
      self = .number(d)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else if let a = try? c.decode([JSONValue].self) {
      self = .array(a)
    } else {
      self = .object(try c.decode([String: JSONValue].self))
    }
  }

  /// Writes the value back as JSON; a number with an integral value below `1e15` in magnitude is written as
  /// an integer (`3`, not `3.0`).
  public func encode(to encoder: Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .null: try c.encodeNil()
    case .bool(let b): try c.encode(b)
    case .number(let d):
      // Integral values print as integers (`3`, not `3.0`).
      if d.rounded() == d && Swift.abs(d) < 1e15 { try c.encode(Int(d)) } else { try c.encode(d) }
    case .string(let s): try c.encode(s)
    case .array(let a): try c.encode(a)
    case .object(let o): try c.encode(o)
    }
  }
}
