import Foundation
import LongConvTensors

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A problem with a file of tensors (a safetensors file, a checkpoint): the file, the tensor
/// when there is one, and what is wrong.
public struct TensorFileError: Error, Equatable, CustomStringConvertible {
  /// The file.
  public var file: String
  /// The tensor the problem is about, or `nil` for the file as a whole.
  public var tensor: String?
  /// What is wrong.
  public var problem: String

  /// An error about `file` (and `tensor`).
  public init(file: String, tensor: String? = nil, problem: String) {
    self.file = file
    self.tensor = tensor
    self.problem = problem
  }

  /// `<file>: <problem>`, or `<file>: tensor "<name>": <problem>` when a tensor is named.
  public var description: String {
    if let tensor { return "\(file): tensor \"\(tensor)\": \(problem)" }
    return "\(file): \(problem)"
  }
}

/// A malformed or unreadable safetensors file.
public typealias SafeTensorsError = TensorFileError

/// The tensors of a [safetensors](https://github.com/huggingface/safetensors) file, as
/// Float32 tensors.
///
/// The format: an 8-byte little-endian header length `N`, `N` bytes of JSON header
/// (`{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "__metadata__": {...}}`,
/// offsets relative to the data section), then the raw little-endian data. Reading accepts F32,
/// F64, F16 and BF16 and validates the whole file before converting; writing produces F32 or
/// F64, atomically (temporary file in the same directory, then rename).
public struct SafeTensors {
  /// Element types of stored tensors.
  public enum DType: String, CaseIterable, Sendable {
    /// IEEE 754 single precision, 4 bytes per scalar.
    case f32 = "F32"
    /// IEEE 754 double precision, 8 bytes per scalar.
    case f64 = "F64"
    /// IEEE 754 half precision, 2 bytes per scalar (read only).
    case f16 = "F16"
    /// bfloat16, the upper 16 bits of a Float32, 2 bytes per scalar (read only).
    case bf16 = "BF16"

    /// Bytes per element.
    public var size: Int {
      switch self {
      case .f32: 4
      case .f64: 8
      case .f16, .bf16: 2
      }
    }
  }

  /// The `__metadata__` entries (empty when the file has none).
  public let metadata: [String: String]
  private let tensors: [String: Tensor]
  private let dtypes: [String: DType]
  /// F64 tensors at full precision (the Float32 `tensors` round them).
  private let wideTensors: [String: [Double]]

  /// Tensor names, sorted.
  public var names: [String] { tensors.keys.sorted() }

  /// The tensor called `name`, converted to Float32, or `nil` if the file has none.
  public func tensor(_ name: String) -> Tensor? { tensors[name] }

  /// The element type `name` was stored with, or `nil` if the file has no such tensor.
  public func dtype(_ name: String) -> DType? { dtypes[name] }

  /// The values of `name` in Double: exact for every stored dtype (F64 at full precision,
  /// the others widened), or `nil` if the file has no such tensor.
  public func doubles(_ name: String) -> [Double]? {
    if let wide = wideTensors[name] { return wide }
    return tensors[name].map { $0.scalars.map(Double.init) }
  }

  // MARK: Reading

  /// Reads and validates the file at `url`, converting every tensor to Float32.
  public static func read(contentsOf url: URL) throws -> SafeTensors {
    let file = url.path
    let data: Data
    do {
      data = try Data(contentsOf: url, options: .alwaysMapped)
    } catch {
      throw SafeTensorsError(file: file, problem: "cannot read the file (\(error.localizedDescription))")
    }
    return try data.withUnsafeBytes { try parse($0, file: file) }
  }

  /// Parses the bytes of a whole safetensors file; `file` names it in errors.
  public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SafeTensors {
    func fail(_ problem: String, tensor: String? = nil) -> SafeTensorsError {
      SafeTensorsError(file: file, tensor: tensor, problem: problem)
    }
    guard bytes.count >= 8 else {
      throw fail("file is \(bytes.count) bytes, shorter than the 8-byte header length")
    }
    let headerLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
    guard headerLength <= UInt64(bytes.count - 8) else {
      throw fail(
        "header length \(headerLength) runs past the end of the file (\(bytes.count - 8) bytes follow it)")
    }
    let dataStart = 8 + Int(headerLength)
    let dataLength = bytes.count - dataStart
    let header = try parseHeader(Data(bytes[8..<dataStart]), file: file)

    // Entries: types, dtype, shape, offsets and size.
    var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
    var metadata: [String: String] = [:]
    for (name, value) in header {
      if name == "__metadata__" {
        guard case .object(let fields) = value else {
          throw fail("__metadata__ is \(value.kind), expected an object of strings")
        }
        for (key, v) in fields {
          guard case .string(let s) = v else {
            throw fail("__metadata__ key \"\(key)\" is \(v.kind), expected a string")
          }
          metadata[key] = s
        }
        continue
      }
      guard case .object(let fields) = value else {
        throw fail(
          "entry is \(value.kind), expected an object with dtype, shape and data_offsets", tensor: name)
      }
      for key in ["dtype", "shape", "data_offsets"] where fields[key] == nil {
        throw fail("missing \"\(key)\"", tensor: name)
      }
      guard case .string(let dtypeName) = fields["dtype"]! else {
        throw fail("dtype is \(fields["dtype"]!.kind), expected a string", tensor: name)
      }
      guard let dtype = DType(rawValue: dtypeName) else {
        throw fail(
          "unsupported dtype \"\(dtypeName)\" (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))",
          tensor: name)
      }
      guard let shape = fields["shape"]!.integers else {
        throw fail(
          "shape is \(fields["shape"]!.kind), expected an array of non-negative integers", tensor: name)
      }
      guard let offsets = fields["data_offsets"]!.integers, offsets.count == 2 else {
        throw fail(
          "data_offsets is \(fields["data_offsets"]!.kind), expected [begin, end] as non-negative integers",
          tensor: name)
      }
      let (begin, end) = (offsets[0], offsets[1])
      guard end >= begin else {
        throw fail("data_offsets [\(begin), \(end)] end before they begin", tensor: name)
      }
      guard end <= dataLength else {
        throw fail(
          "data_offsets [\(begin), \(end)] run past the data section (\(dataLength) bytes)", tensor: name)
      }
      var elements = shape.contains(0) ? 0 : 1  // an empty tensor needs no data
      for extent in shape where elements > 0 {
        let (product, overflow) = elements.multipliedReportingOverflow(by: extent)
        guard !overflow, product <= dataLength else {
          throw fail("shape \(shape) has more elements than the data section holds", tensor: name)
        }
        elements = product
      }
      guard elements * dtype.size == end - begin else {
        throw fail(
          "shape \(shape) of \(dtype.rawValue) needs \(elements * dtype.size) bytes, data_offsets [\(begin), \(end)] hold \(end - begin)",
          tensor: name)
      }
      entries.append((name, dtype, shape, begin, end))
    }

    // The data section must be covered exactly: no overlaps, no gaps, nothing left over.
    entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
    var covered = 0
    var previous: String?
    for entry in entries {
      if entry.begin < covered {
        throw fail(
          "data_offsets [\(entry.begin), \(entry.end)] overlap tensor \"\(previous!)\" (which ends at \(covered))",
          tensor: entry.name)
      }
      if entry.begin > covered {
        throw fail(
          "data bytes \(covered)..<\(entry.begin) belong to no tensor (the data section must be fully indexed)"
        )
      }
      covered = entry.end
      previous = entry.name
    }
    if covered != dataLength {
      throw fail(
        "data bytes \(covered)..<\(dataLength) belong to no tensor (the data section must be fully indexed)")
    }

    // Convert.
    let data = UnsafeRawBufferPointer(rebasing: bytes[dataStart...])
    var tensors: [String: Tensor] = [:]
    var dtypes: [String: DType] = [:]
    var wideTensors: [String: [Double]] = [:]
    for entry in entries {
      if entry.dtype == .f64 {
        let source = UnsafeRawBufferPointer(rebasing: data[entry.begin..<entry.end])
        wideTensors[entry.name] = (0..<(entry.end - entry.begin) / 8).map {
          Double(
            bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))
        }
      }
      let tensor = Tensor(repeating: 0, shape: entry.shape)
      tensor.withUnsafeMutableBufferPointer { out in
        convert(UnsafeRawBufferPointer(rebasing: data[entry.begin..<entry.end]), entry.dtype, into: out)
      }
      tensors[entry.name] = tensor
      dtypes[entry.name] = entry.dtype
    }
    return SafeTensors(metadata: metadata, tensors: tensors, dtypes: dtypes, wideTensors: wideTensors)
  }

  private static func convert(
    _ source: UnsafeRawBufferPointer, _ dtype: DType, into out: UnsafeMutableBufferPointer<Float>
  ) {
    switch dtype {
    case .f32:
      for i in out.indices {
        out[i] = Float(
          bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
      }
    case .f64:
      for i in out.indices {
        out[i] = Float(
          Double(
            bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
      }
    case .f16:
      for i in out.indices {
        out[i] = floatFromHalf(
          UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
      }
    case .bf16:
      for i in out.indices {
        let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        out[i] = Float(bitPattern: UInt32(bits) << 16)
      }
    }
  }

  /// IEEE 754 binary16 to Float32, exactly (every half is a float).
  public static func floatFromHalf(_ bits: UInt16) -> Float {
    let sign: UInt32 = UInt32(bits & 0x8000) << 16
    let exponent = Int((bits >> 10) & 0x1F)
    let mantissa = UInt32(bits & 0x3FF)
    switch exponent {
    case 0:
      // Zero or subnormal: mantissa * 2^-24.
      let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
      return sign != 0 ? -magnitude : magnitude
    case 0x1F:
      // Infinity or NaN (payload kept).
      return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
      return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }
  }

  // MARK: Writing

  /// Writes `tensors` to `url` as `dtype` (F32 or F64), names sorted, header padded with
  /// spaces to a multiple of 8 bytes, atomically: a temporary file in the same directory is
  /// written, synced and renamed over `url`, so readers see the old file or the new one.
  public static func write(
    _ tensors: [String: Tensor], metadata: [String: String] = [:], dtype: DType = .f32, to url: URL
  ) throws {
    guard dtype == .f32 || dtype == .f64 else {
      throw SafeTensorsError(
        file: url.path, problem: "cannot write dtype \(dtype.rawValue) (only F32 and F64)")
    }
    let entries = tensors.map { name, tensor in
      Entry(name: name, shape: tensor.shape, dtype: dtype) { sink in
        switch dtype {
        case .f64:
          let wide = tensor.withUnsafeBufferPointer { $0.map { Double($0).bitPattern.littleEndian } }
          try wide.withUnsafeBytes { try sink($0) }
        default:
          #if _endian(little)
            try tensor.withUnsafeBufferPointer { try sink(UnsafeRawBufferPointer($0)) }
          #else
            let swapped = tensor.withUnsafeBufferPointer { $0.map { $0.bitPattern.littleEndian } }
            try swapped.withUnsafeBytes { try sink($0) }
          #endif
        }
      }
    }
    try write(entries, metadata: metadata, to: url)
  }

  /// Writes Double arrays as F64 tensors (`values.count` must equal the product of `shape`),
  /// atomically, like ``write(_:metadata:dtype:to:)``.
  public static func write(
    doubles: [String: (shape: [Int], values: [Double])], metadata: [String: String] = [:], to url: URL
  ) throws {
    for (name, entry) in doubles where entry.shape.reduce(1, *) != entry.values.count {
      throw SafeTensorsError(
        file: url.path, tensor: name,
        problem: "shape \(entry.shape) does not hold \(entry.values.count) values")
    }
    let entries = doubles.map { name, entry in
      Entry(name: name, shape: entry.shape, dtype: .f64) { sink in
        let bits = entry.values.map { $0.bitPattern.littleEndian }
        try bits.withUnsafeBytes { try sink($0) }
      }
    }
    try write(entries, metadata: metadata, to: url)
  }

  /// One tensor to write: its header fields and a body that streams its bytes.
  private struct Entry {
    var name: String
    var shape: [Int]
    var dtype: DType
    var body: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
  }

  private static func write(_ unsorted: [Entry], metadata: [String: String], to url: URL) throws {
    if unsorted.contains(where: { $0.name == "__metadata__" }) {
      throw SafeTensorsError(
        file: url.path, tensor: "__metadata__", problem: "the name is reserved for metadata")
    }
    let entries = unsorted.sorted { $0.name < $1.name }
    var fields: [String] = []
    if !metadata.isEmpty {
      let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
      fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
    }
    var offset = 0
    for entry in entries {
      let bytes = entry.shape.reduce(1, *) * entry.dtype.size
      let shape = entry.shape.map(String.init).joined(separator: ",")
      fields.append(
        "\(jsonString(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}"
      )
      offset += bytes
    }
    var header = Array("{\(fields.joined(separator: ","))}".utf8)
    header += repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8)

    try AtomicFile.write(to: url) { sink in
      try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try sink($0) }
      try header.withUnsafeBytes { try sink($0) }
      for entry in entries { try entry.body(sink) }
    }
  }

  /// JSON string literal for `s`.
  private static func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20:
        out +=
          "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
          + String(scalar.value, radix: 16)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}

// MARK: Header JSON

/// A JSON value from a safetensors header, keeping the kind of each value for type checks.
private enum HeaderValue: Decodable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([HeaderValue])
  case object([String: HeaderValue])

  init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let b = try? container.decode(Bool.self) {
      self = .bool(b)
    } else if let d = try? container.decode(Double.self) {
      self = .number(d)
    } else if let s = try? container.decode(String.self) {
      self = .string(s)
    } else if let a = try? container.decode([HeaderValue].self) {
      self = .array(a)
    } else {
      self = .object(try container.decode([String: HeaderValue].self))
    }
  }

  /// An array of non-negative integers (exactly representable), or `nil`.
  var integers: [Int]? {
    guard case .array(let items) = self else { return nil }
    var out: [Int] = []
    for item in items {
      guard case .number(let d) = item, d >= 0, d <= 9_007_199_254_740_992, d.rounded() == d else {
        return nil
      }
      out.append(Int(d))
    }
    return out
  }

  var kind: String {
    switch self {
    case .null: "null"
    case .bool(let b): "boolean \(b)"
    case .number(let d): "number \(d)"
    case .string(let s): "string \"\(s)\""
    case .array(let items): "the array [\(items.map(\.compact).joined(separator: ", "))]"
    case .object: "an object"
    }
  }

  /// Short rendering of a value inside an array.
  private var compact: String {
    switch self {
    case .number(let d): d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : String(d)
    case .string(let s): "\"\(s)\""
    case .array: "[...]"
    case .object: "{...}"
    case .null: "null"
    case .bool(let b): String(b)
    }
  }
}

extension SafeTensors {
  fileprivate static func parseHeader(_ data: Data, file: String) throws -> [String: HeaderValue] {
    let value: HeaderValue
    do {
      value = try JSONDecoder().decode(HeaderValue.self, from: data)
    } catch let DecodingError.dataCorrupted(context) {
      let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
      throw SafeTensorsError(
        file: file, problem: "invalid JSON header (\(detail ?? context.debugDescription))")
    } catch {
      throw SafeTensorsError(file: file, problem: "invalid JSON header (\(error))")
    }
    guard case .object(let fields) = value else {
      throw SafeTensorsError(file: file, problem: "JSON header is \(value.kind), expected an object")
    }
    return fields
  }
}
