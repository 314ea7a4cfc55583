import Foundation
import LongConvIO
import LongConvTensors
import Testing

@testable import LongConv

/// A fresh directory under the temporary directory, removed by `cleanUp()`.
struct ScratchDirectory {
  let url: URL

  init() throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "longconv-test-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }

  func file(_ name: String) -> URL { url.appendingPathComponent(name) }

  /// Names in the directory, hidden ones included, sorted.
  func listing() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
  }

  func cleanUp() { try? FileManager.default.removeItem(at: url) }
}

/// Safetensors read against hand-made bytes, write/read round trips, and every malformed file.
@Suite struct SafeTensorsTests {
  /// The bytes of a safetensors file with `header` (not padded) and `data`.
  static func bytes(header: String, data: [UInt8]) -> [UInt8] {
    let h = Array(header.utf8)
    return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + data
  }

  static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
  static func le32(_ v: Float) -> [UInt8] { withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
  static func le64(_ v: Double) -> [UInt8] { withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }

  /// Writes `bytes` to a file in a scratch directory and reads it back.
  static func read(_ bytes: [UInt8], name: String = "t.safetensors") throws -> SafeTensors {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let url = scratch.file(name)
    try Data(bytes).write(to: url)
    return try SafeTensors.read(contentsOf: url)
  }

  /// The error reading `bytes` gives, checked to name the file.
  static func readError(_ bytes: [UInt8]) throws -> SafeTensorsError? {
    do {
      _ = try read(bytes, name: "bad.safetensors")
      Issue.record("expected an error")
      return nil
    } catch let error as SafeTensorsError {
      #expect(error.file.hasSuffix("bad.safetensors"))
      #expect(error.description.contains("bad.safetensors"))
      return error
    }
  }

  @Test func readsF32() throws {
    let data = Self.le32(1) + Self.le32(-2.5) + Self.le32(.leastNonzeroMagnitude) + Self.le32(3e38)
    let st = try Self.read(
      Self.bytes(header: #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, data: data))
    let a = try #require(st.tensor("a"))
    #expect(a.shape == [2, 2])
    #expect(a.scalars == [1, -2.5, .leastNonzeroMagnitude, 3e38])
    #expect(st.dtype("a") == .f32)
    #expect(st.names == ["a"])
    #expect(st.metadata.isEmpty)
  }

  @Test func readsF64() throws {
    let data = Self.le64(1.5) + Self.le64(-0.1) + Self.le64(1e-300) + Self.le64(-1e300)
    let st = try Self.read(
      Self.bytes(header: #"{"d":{"dtype":"F64","shape":[4],"data_offsets":[0,32]}}"#, data: data))
    let d = try #require(st.tensor("d"))
    #expect(d.scalars == [1.5, Float(-0.1), 0, -.infinity])
    #expect(st.dtype("d") == .f64)
  }

  @Test func readsF16() throws {
    // 1.0, -2.0, 65504 (largest), 2^-24 (smallest subnormal), -(1023 * 2^-24) (largest
    // subnormal, negative), 2^-14 (smallest normal), +inf, -0.
    let halves: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x83FF, 0x0400, 0x7C00, 0x8000]
    let st = try Self.read(
      Self.bytes(
        header: #"{"h":{"dtype":"F16","shape":[2,4],"data_offsets":[0,16]}}"#,
        data: halves.flatMap(Self.le16)))
    let h = try #require(st.tensor("h"))
    let expected: [Float] = [
      1, -2, 65504, Float(sign: .plus, exponent: -24, significand: 1),
      -1023 * Float(sign: .plus, exponent: -24, significand: 1),
      Float(sign: .plus, exponent: -14, significand: 1), .infinity, -0.0,
    ]
    #expect(h.scalars == expected)
    #expect(h.scalars[7].sign == .minus)
    #expect(st.dtype("h") == .f16)
    // NaN stays NaN.
    #expect(SafeTensors.floatFromHalf(0x7E00).isNaN)
  }

  @Test func readsBF16() throws {
    // 1.0, -2.0, 0.15625 (0x3E20), the smallest subnormal (0x0001 = 2^-133), -inf.
    let values: [UInt16] = [0x3F80, 0xC000, 0x3E20, 0x0001, 0xFF80]
    let st = try Self.read(
      Self.bytes(
        header: #"{"b":{"dtype":"BF16","shape":[5],"data_offsets":[0,10]}}"#,
        data: values.flatMap(Self.le16)))
    let b = try #require(st.tensor("b"))
    #expect(b.scalars == [1, -2, 0.15625, Float(sign: .plus, exponent: -133, significand: 1), -.infinity])
    #expect(st.dtype("b") == .bf16)
  }

  @Test func readsSeveralTensorsMetadataScalarsAndEmptyTensors() throws {
    // Entries in any order in the header; offsets need not follow it.
    let header = """
      {"__metadata__":{"format":"pt","note":"hi"},
       "z":{"dtype":"F32","shape":[],"data_offsets":[0,4]},
       "e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},
       "y":{"dtype":"BF16","shape":[1,2],"data_offsets":[4,8]}}
      """
    let data = Self.le32(7) + Self.le16(0x3F80) + Self.le16(0x4000)
    let st = try Self.read(Self.bytes(header: header + "   ", data: data))
    #expect(st.names == ["e", "y", "z"])
    #expect(st.metadata == ["format": "pt", "note": "hi"])
    #expect(st.tensor("z")?.shape == [])
    #expect(st.tensor("z")?.scalars == [7])
    #expect(st.tensor("e")?.shape == [0, 3])
    #expect(st.tensor("y")?.scalars == [1, 2])
    #expect(st.tensor("missing") == nil)
    #expect(st.dtype("missing") == nil)
  }

  @Test func writeThenReadRoundTrips() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    var generator = SeededGenerator(seed: 3)
    let tensors: [String: Tensor] = [
      "b.weight": Tensor.normal([3, 5], std: 1, generator: &generator),
      "a": Tensor(4.25),
      "empty": Tensor(repeating: 0, shape: [2, 0]),
      "name \"with\" quotes\\and\ttab": try Tensor(
        shape: [2], scalars: [-1, Float.leastNormalMagnitude / 3]),
    ]
    let metadata = ["format": "longconv", "quote\"": "line\nbreak"]
    for dtype in [SafeTensors.DType.f32, .f64] {
      let url = scratch.file("rt-\(dtype.rawValue).safetensors")
      try SafeTensors.write(tensors, metadata: metadata, dtype: dtype, to: url)
      let bytes = try [UInt8](Data(contentsOf: url))
      let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
      #expect(headerLength % 8 == 0)
      let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
      // Sorted names, padded with spaces.
      let order = ["__metadata__", "\"a\"", "\"b.weight\"", "\"empty\"", "\"name"].map {
        header.range(of: $0)!.lowerBound
      }
      #expect(order == order.sorted())
      #expect(header.hasSuffix("}") || header.hasSuffix(" "))

      let st = try SafeTensors.read(contentsOf: url)
      #expect(st.names == tensors.keys.sorted())
      #expect(st.metadata == metadata)
      for (name, tensor) in tensors {
        let back = try #require(st.tensor(name))
        #expect(back.shape == tensor.shape)
        #expect(back.scalars == tensor.scalars)
        #expect(st.dtype(name) == dtype)
      }
      // Writing the same tensors again gives the same bytes.
      let again = scratch.file("again.safetensors")
      try SafeTensors.write(tensors, metadata: metadata, dtype: dtype, to: again)
      #expect(try Data(contentsOf: again) == Data(bytes))
    }
    // No temporary files are left behind.
    #expect(try scratch.listing() == ["again.safetensors", "rt-F32.safetensors", "rt-F64.safetensors"])
  }

  @Test func writesExactlyTheExpectedBytes() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let url = scratch.file("exact.safetensors")
    try SafeTensors.write(["b": Tensor([1, -2]), "a": Tensor(0.5)], metadata: ["k": "v"], to: url)
    let header =
      #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"#
      + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
    let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
    let expected = Self.bytes(header: padded, data: Self.le32(0.5) + Self.le32(1) + Self.le32(-2))
    #expect(try [UInt8](Data(contentsOf: url)) == expected)

    try SafeTensors.write(["x": Tensor([1.5])], dtype: .f64, to: url)
    let header64 = #"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#
    let padded64 = header64 + String(repeating: " ", count: (8 - header64.utf8.count % 8) % 8)
    #expect(try [UInt8](Data(contentsOf: url)) == Self.bytes(header: padded64, data: Self.le64(1.5)))
  }

  @Test func writeReplacesAnExistingFile() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let url = scratch.file("w.safetensors")
    try SafeTensors.write(["x": Tensor([1, 2, 3])], to: url)
    try SafeTensors.write(["y": Tensor([4])], to: url)
    let st = try SafeTensors.read(contentsOf: url)
    #expect(st.names == ["y"])
    #expect(try scratch.listing() == ["w.safetensors"])
  }

  @Test func failedWritesLeaveNothingBehind() throws {
    let scratch = try ScratchDirectory()
    defer { scratch.cleanUp() }
    let url = scratch.file("w.safetensors")
    #expect(throws: SafeTensorsError.self) {
      try SafeTensors.write(["__metadata__": Tensor([1])], to: url)
    }
    #expect(throws: SafeTensorsError.self) {
      try SafeTensors.write(["x": Tensor([1])], dtype: .f16, to: url)
    }
    do {
      try SafeTensors.write(["x": Tensor([1])], to: scratch.file("no/such/dir/w.safetensors"))
      Issue.record("expected an error")
    } catch let error as SafeTensorsError {
      #expect(error.problem.contains("cannot create a temporary file"))
    }
    #expect(try scratch.listing().isEmpty)

    // A failure after the old file exists keeps the old file.
    try SafeTensors.write(["x": Tensor([1])], to: url)
    struct Interrupted: Error {}
    #expect(throws: Interrupted.self) {
      try AtomicFile.write(to: url) { sink in
        try [UInt8](repeating: 0, count: 4).withUnsafeBytes { try sink($0) }
        throw Interrupted()
      }
    }
    #expect(try scratch.listing() == ["w.safetensors"])
    #expect(try SafeTensors.read(contentsOf: url).tensor("x")?.scalars == [1])
  }

  @Test func readingAMissingFileNamesIt() throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID()).safetensors")
    do {
      _ = try SafeTensors.read(contentsOf: url)
      Issue.record("expected an error")
    } catch let error as SafeTensorsError {
      #expect(error.file == url.path)
      #expect(error.problem.contains("cannot read the file"))
    }
  }

  // MARK: Malformed files

  static let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#

  @Test func rejectsShortFiles() throws {
    let error = try #require(try Self.readError([1, 0, 0]))
    #expect(error.tensor == nil)
    #expect(error.problem == "file is 3 bytes, shorter than the 8-byte header length")
    #expect(try Self.readError([]) != nil)
  }

  @Test func rejectsHeaderLengthsBeyondTheFile() throws {
    var bytes = Self.bytes(header: Self.good, data: [UInt8](repeating: 0, count: 8))
    bytes[0] = 200
    let error = try #require(try Self.readError(bytes))
    #expect(error.problem.contains("header length 200 runs past the end of the file"))
    // A length near 2^64 must not overflow.
    let huge = [UInt8](repeating: 0xFF, count: 8) + [UInt8](repeating: 0, count: 8)
    #expect(try Self.readError(huge)?.problem.contains("runs past the end of the file") == true)
  }

  @Test func rejectsInvalidJSONHeaders() throws {
    let error = try #require(try Self.readError(Self.bytes(header: #"{"a": {"dtype": "#, data: [])))
    #expect(error.tensor == nil)
    #expect(error.problem.hasPrefix("invalid JSON header"))
    let notObject = try #require(try Self.readError(Self.bytes(header: "[1, 2]", data: [])))
    #expect(notObject.problem == "JSON header is the array [1, 2], expected an object")
  }

  @Test func rejectsMalformedEntries() throws {
    let zeros = [UInt8](repeating: 0, count: 8)
    let cases: [(header: String, problem: String)] = [
      (#"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, #"missing "dtype""#),
      (#"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, #"missing "shape""#),
      (#"{"a":{"dtype":"F32","shape":[2]}}"#, #"missing "data_offsets""#),
      (#"{"a":[1]}"#, "entry is the array [1], expected an object with dtype, shape and data_offsets"),
      (#"{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}"#, "dtype is number 4.0, expected a string"),
      (
        #"{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#,
        #"shape is string "2", expected an array of non-negative integers"#
      ),
      (
        #"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#,
        "shape is the array [2.5], expected an array of non-negative integers"
      ),
      (
        #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
        "shape is the array [-2], expected an array of non-negative integers"
      ),
      (
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#,
        "data_offsets is the array [0], expected [begin, end] as non-negative integers"
      ),
      (
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":null}}"#,
        "data_offsets is null, expected [begin, end] as non-negative integers"
      ),
      (
        #"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
        #"unsupported dtype "I64" (supported: F32, F64, F16, BF16)"#
      ),
      (
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
        "data_offsets [8, 0] end before they begin"
      ),
      (
        #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
        "data_offsets [0, 16] run past the data section (8 bytes)"
      ),
      (
        #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        "shape [3] of F32 needs 12 bytes, data_offsets [0, 8] hold 8"
      ),
      (
        #"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}}"#,
        "shape [2] of F16 needs 4 bytes, data_offsets [0, 8] hold 8"
      ),
      (
        #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
        "shape [4294967296, 4294967296] has more elements than the data section holds"
      ),
    ]
    for (header, problem) in cases {
      let error = try #require(try Self.readError(Self.bytes(header: header, data: zeros)))
      #expect(error.tensor == "a", "\(header)")
      #expect(error.problem == problem, "\(header)")
      #expect(error.description.contains(#"tensor "a""#))
    }
    let metadata = try #require(
      try Self.readError(Self.bytes(header: #"{"__metadata__":{"k":1}}"#, data: [])))
    #expect(metadata.problem == #"__metadata__ key "k" is number 1.0, expected a string"#)
  }

  @Test func rejectsOverlapsGapsAndUncoveredBytes() throws {
    let overlap = try #require(
      try Self.readError(
        Self.bytes(
          header:
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
          data: [UInt8](repeating: 0, count: 8))))
    #expect(overlap.tensor == "b")
    #expect(overlap.problem == #"data_offsets [4, 8] overlap tensor "a" (which ends at 8)"#)

    let gap = try #require(
      try Self.readError(
        Self.bytes(
          header:
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
          data: [UInt8](repeating: 0, count: 12))))
    #expect(gap.tensor == nil)
    #expect(gap.problem == "data bytes 4..<8 belong to no tensor (the data section must be fully indexed)")

    let trailing = try #require(
      try Self.readError(Self.bytes(header: Self.good, data: [UInt8](repeating: 0, count: 10))))
    #expect(
      trailing.problem == "data bytes 8..<10 belong to no tensor (the data section must be fully indexed)")
  }
}
