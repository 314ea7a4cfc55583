import Foundation
import LongConv
import LongConvIO
import LongConvRecurrence
import LongConvTestSupport
import Testing

/// The interchange file, read back by a reader written here from the format's description
/// (8-byte header length, JSON header, little-endian F64 data), must give the same outputs.
@Suite struct StateSpaceFileTests {
  func temporaryFile(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("lck-\(UUID().uuidString)-\(name)")
  }

  /// An independent reader: tensor name -> (shape, values).
  func readIndependently(_ url: URL) throws -> [String: (shape: [Int], values: [Double])] {
    let data = try Data(contentsOf: url)
    let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let header = try #require(
      try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + headerLength)) as? [String: Any])
    var tensors: [String: (shape: [Int], values: [Double])] = [:]
    for (name, entry) in header where name != "__metadata__" {
      let fields = try #require(entry as? [String: Any])
      #expect(fields["dtype"] as? String == "F64", "\(name) dtype")
      let shape = try #require(fields["shape"] as? [Int])
      let offsets = try #require(fields["data_offsets"] as? [Int])
      let bytes = data.subdata(in: 8 + headerLength + offsets[0]..<8 + headerLength + offsets[1])
      let values = stride(from: 0, to: bytes.count, by: 8).map { i in
        Double(
          bitPattern: bytes[bytes.startIndex + i..<bytes.startIndex + i + 8].reversed().reduce(0) {
            $0 << 8 | UInt64($1)
          })
      }
      tensors[name] = (shape, values)
    }
    return tensors
  }

  /// `y_i = Re(sum residues * s_i) + skip * x_i`, `s_i = poles * s_(i-1) + x_i`, in Double,
  /// straight from the independent reader's arrays.
  func run(_ tensors: [String: (shape: [Int], values: [Double])], kernel: String, _ x: [Float], length: Int)
    -> [Double]
  {
    let poles = tensors["\(kernel).poles"]!
    let residues = tensors["\(kernel).residues"]!.values
    let skip = tensors["\(kernel).skip"]?.values
    let (d, states) = (poles.shape[0], poles.shape[1])
    var y = [Double](repeating: 0, count: length * d)
    for c in 0..<d {
      var s = [(Double, Double)](repeating: (0, 0), count: states)
      for i in 0..<length {
        let input = Double(x[i * d + c])
        var out = (skip?[c] ?? 0) * input
        for n in 0..<states {
          let j = (c * states + n) * 2
          let (pr, pi) = (poles.values[j], poles.values[j + 1])
          s[n] = (pr * s[n].0 - pi * s[n].1 + input, pr * s[n].1 + pi * s[n].0)
          out += residues[j] * s[n].0 - residues[j + 1] * s[n].1
        }
        y[i * d + c] = out
      }
    }
    return y
  }

  @Test func independentReaderGivesTheSameOutputs() throws {
    // A compact kernel (ragged states, a skip) and an exact one with a decay.
    let hyena = try makeKernel(#"{"type": "hyena", "filter_width": 8, "emb_dim": 5}"#, channels: 3)
    let tnn = try makeKernel(#"{"type": "tnn", "rpe_width": 8, "rpe_layers": 1}"#, channels: 2)
    let n = 50
    let compact = try CompactConverter(tolerance: 1e-3, maxStates: 12)
      .convert(CausalKernelSamples(kernel: hyena, length: n, name: "a"))
    let exact = try ExactConverter().convert(CausalKernelSamples(kernel: tnn, length: n, name: "b"))
    let url = temporaryFile("kernels.safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try StateSpaceFile.write(
      ["layer.a": compact.stateSpace, "layer.b": exact.stateSpace], metadata: ["length": "\(n)"], to: url)

    let tensors = try readIndependently(url)
    #expect(tensors["layer.a.poles"]!.shape.count == 3 && tensors["layer.a.poles"]!.shape[2] == 2)
    #expect(tensors["layer.b.poles"]!.shape == [2, (n + 1) / 2, 2])
    #expect(tensors["layer.b.skip"] == nil)
    for (name, system, d) in [("layer.a", compact.stateSpace, 3), ("layer.b", exact.stateSpace, 2)] {
      let x = randomInputs(length: n, channels: d, seed: 11)
      let ours = runRecurrence(RecurrentConvolution(system), x, length: n)
      let theirs = run(tensors, kernel: name, x, length: n)
      #expect(relativeError(ours.map(Double.init), theirs) < 1e-6, "\(name)")
    }

    // Our reader returns the systems written (padding dropped), bit for bit.
    let (kernels, metadata) = try StateSpaceFile.read(contentsOf: url)
    #expect(metadata["length"] == "\(n)")
    #expect(kernels["layer.a"] == compact.stateSpace)
    #expect(kernels["layer.b"] == exact.stateSpace)
  }

  @Test func malformedFilesAreClearErrors() throws {
    let url = temporaryFile("bad.safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    let cases: [([String: (shape: [Int], values: [Double])], String)] = [
      (["k.poles": ([1, 2], [0, 0])], "expected [channels, states, 2]"),
      (["k.poles": ([1, 1, 2], [0.5, 0]), "k.residues": ([1, 2, 2], [1, 0, 0, 0])], "differs"),
      (["k.poles": ([1, 1, 2], [0.5, 0])], "missing"),
      (["k.residues": ([1, 1, 2], [0.5, 0])], "no matching k.poles"),
      (["k.poles": ([1, 1, 2], [.nan, 0]), "k.residues": ([1, 1, 2], [1, 0])], "nan"),
      (["weights": ([1], [0])], "not part of a kernel"),
    ]
    for (tensors, expected) in cases {
      try SafeTensors.write(doubles: tensors, to: url)
      do {
        _ = try StateSpaceFile.read(contentsOf: url)
        Issue.record("accepted a file expected to fail with \(expected)")
      } catch let error as TensorFileError {
        #expect(error.description.contains(expected), "\(error)")
        #expect(error.description.contains(url.lastPathComponent))
      }
    }
  }
}
