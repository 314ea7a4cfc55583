import Foundation
import LongConv
import LongConvIO
import LongConvRecurrence
import LongConvTensors
import Testing

/// Writes a safetensors file from raw tensors (`dtype`, shape, bytes), as another tool would.
private func writeRaw(_ tensors: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])], to url: URL)
  throws
{
  var offset = 0
  var fields: [String] = []
  var body: [UInt8] = []
  for tensor in tensors {
    let shape = tensor.shape.map(String.init).joined(separator: ",")
    fields.append(
      "\"\(tensor.name)\":{\"dtype\":\"\(tensor.dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + tensor.bytes.count)]}"
    )
    offset += tensor.bytes.count
    body += tensor.bytes
  }
  var header = Array("{\(fields.joined(separator: ","))}".utf8)
  header += repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
  var data = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
  data += header + body
  try Data(data).write(to: url)
}

private func bytes(_ values: [Float]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

@Suite struct KernelFileConversionTests {
  let directory: URL

  init() throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("kfc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

  /// A damped cosine (2 real states) and a decaying exponential (1 state), 64 lags, F64.
  func kernelValues() -> [Double] {
    var values: [Double] = []
    for k in 0..<64 { values.append(Foundation.pow(0.9, Double(k)) * Foundation.cos(0.3 * Double(k))) }
    for k in 0..<64 { values.append(0.5 * Foundation.pow(0.8, Double(k))) }
    return values
  }

  @Test func convertsF64AndF32KernelsToTheInterchangeFile() throws {
    defer { try? FileManager.default.removeItem(at: directory) }
    let values = kernelValues()
    try SafeTensors.write(
      doubles: ["wide": ([2, 64], values)], to: url("wide.safetensors"))
    try SafeTensors.write(
      ["narrow": try Tensor(shape: [2, 64], doubles: values)], to: url("narrow.safetensors"))
    for (input, name) in [("wide.safetensors", "wide"), ("narrow.safetensors", "narrow")] {
      for converter in [ExactConverter() as any KernelConverter, try CompactConverter(tolerance: 1e-6)] {
        let output = url("\(name)-\(converter.mode.rawValue).safetensors")
        let reports = try KernelFileConversion.convert(
          contentsOf: url(input), converter: converter, writingTo: output)
        #expect(reports.map(\.kernel) == [name])
        let (kernels, metadata) = try StateSpaceFile.read(contentsOf: output)
        #expect(metadata["mode"] == converter.mode.rawValue && metadata["length"] == "64")
        let system = try #require(kernels[name])
        #expect(system.channels == 2)
        // F64 input keeps its precision; F32 input is exact to its own rounding.
        let tolerance = name == "wide" ? (converter.mode == .exact ? 1e-12 : 1e-5) : 1e-5
        for c in 0..<2 {
          let response = system.impulseResponse(channel: c, length: 64)
          for k in 0..<64 { #expect(abs(response[k] - values[c * 64 + k]) <= tolerance) }
        }
        if converter.mode == .compact { #expect(reports[0].maxStates <= 2) }
      }
    }
  }

  @Test func acceptsHalfPrecision() throws {
    defer { try? FileManager.default.removeItem(at: directory) }
    let half: [UInt16] = [0x3C00, 0x3800, 0x3400, 0x3000]  // 1, 0.5, 0.25, 0.125
    let bfloat: [UInt16] = [0x3F80, 0x3F00]  // 1, 0.5
    try writeRaw(
      [
        ("h", "F16", [1, 4], half.withUnsafeBytes { Array($0) }),
        ("b", "BF16", [1, 2], bfloat.withUnsafeBytes { Array($0) }),
      ], to: url("half.safetensors"))
    let kernels = try KernelFileConversion.read(contentsOf: url("half.safetensors"))
    #expect(kernels.map(\.name) == ["b", "h"])
    #expect(kernels[1].values == [1, 0.5, 0.25, 0.125])
    try KernelFileConversion.convert(
      contentsOf: url("half.safetensors"), converter: ExactConverter(), writingTo: url("half-out.safetensors")
    )
  }

  @Test(
    arguments: [
      ("nan", "F32", [1, 3], bytes([1, .nan, 2]), "a", "channel 0, lag 1 is nan"),
      ("inf", "F32", [2, 2], bytes([1, 2, 3, -.infinity]), "a", "channel 1, lag 1 is -inf"),
      ("rank1", "F32", [3], bytes([1, 2, 3]), "a", "rank 1"),
      ("rank3", "F32", [1, 1, 2], bytes([1, 2]), "a", "rank 3"),
      ("nolags", "F32", [2, 0], [], "a", "at least one channel and one lag"),
      ("nochannels", "F32", [0, 4], [], "a", "at least one channel and one lag"),
      ("int", "I32", [1, 2], [1, 0, 0, 0, 2, 0, 0, 0], "a", "unsupported dtype"),
    ] as [(String, String, [Int], [UInt8], String, String)])
  func badKernelsNameTheFileAndTensor(
    _ file: String, _ dtype: String, _ shape: [Int], _ data: [UInt8], _ tensor: String, _ problem: String
  ) throws {
    defer { try? FileManager.default.removeItem(at: directory) }
    let input = url("\(file).safetensors")
    // A good tensor beside the bad one, so the file itself is well formed.
    try writeRaw([(tensor, dtype, shape, data), ("z", "F32", [1, 2], bytes([1, 0.5]))], to: input)
    let output = url("out.safetensors")
    let error = #expect(throws: TensorFileError.self) {
      try KernelFileConversion.convert(contentsOf: input, converter: ExactConverter(), writingTo: output)
    }
    #expect(error?.file == input.path)
    #expect(error?.tensor == tensor)
    #expect(error?.problem.contains(problem) == true, "\(String(describing: error))")
    #expect(!FileManager.default.fileExists(atPath: output.path))
  }

  @Test func refusesAnEmptyFileAndWritingOverTheInput() throws {
    defer { try? FileManager.default.removeItem(at: directory) }
    try writeRaw([], to: url("empty.safetensors"))
    let empty = #expect(throws: TensorFileError.self) {
      try KernelFileConversion.read(contentsOf: url("empty.safetensors"))
    }
    #expect(empty?.problem.contains("no tensors") == true)

    let input = url("k.safetensors")
    try SafeTensors.write(doubles: ["k": ([1, 8], kernelValues().prefix(8).map { $0 })], to: input)
    let before = try Data(contentsOf: input)
    try FileManager.default.createSymbolicLink(at: url("link.safetensors"), withDestinationURL: input)
    for output in [input, url("link.safetensors"), url("./k.safetensors")] {
      #expect(throws: TensorFileError.self) {
        try KernelFileConversion.convert(contentsOf: input, converter: ExactConverter(), writingTo: output)
      }
    }
    #expect(try Data(contentsOf: input) == before)
  }
}
