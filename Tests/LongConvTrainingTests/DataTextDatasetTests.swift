import Foundation
import LongConvTensors
import Testing

@testable import LongConvTraining

/// Byte-level text: the split sizes of the reference recipe, shifted targets, seeded sampling,
/// sequential validation chunks, and errors that name the file.
@Suite struct DataTextDatasetTests {
  static let bytes: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 / 7) }

  @Test func splitSizesMatchTheReference() throws {
    for count in [20, 29, 30, 991, 999, 1000] {
      let data = try TextDataset(bytes: Array(Self.bytes.prefix(count)))
      // the PyTorch baseline (Benchmarks/torch_baseline.py): nval = len(raw) // 10; train, val = raw[:-nval], raw[-nval:]
      #expect(data.validation.count == count / 10)
      #expect(data.train.count == count - count / 10)
      #expect(data.train + data.validation == Array(Self.bytes.prefix(count)))
    }
    let quarter = try TextDataset(bytes: Self.bytes, validationFraction: 0.25)
    #expect(quarter.validation.count == 250)
    #expect(TextDataset.vocabularySize == 256)
  }

  @Test func randomBatchTargetsAreInputsShiftedByOne() throws {
    let data = try TextDataset(bytes: Self.bytes)
    var generator = SeededGenerator(seed: 3)
    let (batch, length) = (5, 17)
    let (inputs, targets) = try data.randomBatch(batch: batch, length: length, generator: &generator)
    #expect(inputs.count == batch * length)
    #expect(targets.count == batch * length)
    let train = data.train.map { Int($0) }
    for b in 0..<batch {
      let row = Array(inputs[(b * length)..<((b + 1) * length)])
      let targetRow = Array(targets[(b * length)..<((b + 1) * length)])
      #expect(Array(row.dropFirst()) == Array(targetRow.dropLast()))
      // The window lies in the training split: find a start where both rows match.
      let starts = (0...(train.count - length - 1)).filter { s in
        Array(train[s..<(s + length)]) == row && Array(train[(s + 1)...(s + length)]) == targetRow
      }
      #expect(!starts.isEmpty)
    }
    #expect(inputs.allSatisfy { (0...255).contains($0) })
  }

  @Test func randomBatchIsDeterministicPerSeedAndCoversEveryStart() throws {
    let data = try TextDataset(bytes: Array(0...40))  // train: 37 distinct bytes 0...36
    func draw(_ seed: UInt64) throws -> [Int] {
      var generator = SeededGenerator(seed: seed)
      return try data.randomBatch(batch: 400, length: 4, generator: &generator).inputs
    }
    #expect(try draw(1) == draw(1))
    #expect(try draw(1) != draw(2))
    // Every start 0...32 (37 - 4 - 1) appears, and nothing later: the last target is byte 36.
    let inputs = try draw(7)
    let starts = Set(stride(from: 0, to: inputs.count, by: 4).map { inputs[$0] })
    #expect(starts == Set(0...32))
    #expect(!inputs.contains { $0 >= 36 })
  }

  @Test func sequentialBatchesPredictEveryValidationByteOnce() throws {
    let data = try TextDataset(bytes: Self.bytes)
    let validation = data.validation.map { Int($0) }
    for length in [1, 7, 33, 99, 500] {
      let chunks = Array(try data.sequentialBatches(length: length))
      #expect(chunks.count == (validation.count - 1 + length - 1) / length)
      #expect(try data.sequentialBatches(length: length).count == chunks.count)
      #expect(chunks.flatMap(\.inputs) == Array(validation.dropLast()))
      #expect(chunks.flatMap(\.targets) == Array(validation.dropFirst()))
      for chunk in chunks {
        #expect(chunk.inputs.count == chunk.targets.count)
        #expect(chunk.inputs.count <= length)
      }
      // Deterministic: a second pass gives the same chunks.
      let again = Array(try data.sequentialBatches(length: length))
      #expect(again.map(\.inputs) == chunks.map(\.inputs))
    }
    let trainChunks = Array(try data.sequentialBatches(length: 64, split: .train))
    #expect(trainChunks.flatMap(\.targets) == data.train.dropFirst().map { Int($0) })
  }

  @Test func readsAFileAndNamesItInErrors() throws {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("textdataset-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }

    let file = directory.appendingPathComponent("corpus.txt")
    try Data(Self.bytes).write(to: file)
    let data = try TextDataset(contentsOf: file)
    #expect(data.train + data.validation == Self.bytes)
    #expect(data.source == file.path)

    let missing = directory.appendingPathComponent("no-such-corpus.txt")
    let error = #expect(throws: TextDatasetError.self) { try TextDataset(contentsOf: missing) }
    #expect(error?.source == missing.path)
    #expect(error?.description.contains("no-such-corpus.txt") == true)

    let tiny = directory.appendingPathComponent("tiny.txt")
    try Data("hello".utf8).write(to: tiny)
    let short = #expect(throws: TextDatasetError.self) { try TextDataset(contentsOf: tiny) }
    #expect(short?.description.contains("tiny.txt") == true)
    #expect(short?.problem.contains("too short") == true)
  }

  @Test func rejectsBadRequestsWithoutTrapping() throws {
    let data = try TextDataset(bytes: Array(0...40), source: "gen")
    var generator = SeededGenerator(seed: 0)
    #expect(data.maximumTrainLength == 36)
    _ = try data.randomBatch(batch: 1, length: 36, generator: &generator)
    #expect(throws: TextDatasetError.self) {
      try data.randomBatch(batch: 1, length: 37, generator: &generator)
    }
    #expect(throws: TextDatasetError.self) {
      try data.randomBatch(batch: 0, length: 4, generator: &generator)
    }
    #expect(throws: TextDatasetError.self) { try data.sequentialBatches(length: 0) }
    #expect(throws: TextDatasetError.self) { try TextDataset(bytes: Self.bytes, validationFraction: 1) }
    #expect(throws: TextDatasetError.self) { try TextDataset(bytes: [], validationFraction: 0.5) }
  }
}
