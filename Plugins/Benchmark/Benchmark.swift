import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory benchmark [--quick] [--suite conv,tno]
/// [--len 1024,4096] [--dim D] [--threads N] [--reps R] [--output DIR]`
///
/// Builds `longconv-bench` in release, runs each suite over a range of lengths, and writes
/// into `Benchmarks/results/` (or `--output`): `latest.jsonl` (the raw JSON lines),
/// `latest.md` (a table per suite, with the command, date and machine) and one
/// `latest-<suite>.svg` per suite (time against length, log-log).
@main
struct Benchmark: CommandPlugin {
  func performCommand(context: PluginContext, arguments: [String]) async throws {
    var extractor = ArgumentExtractor(arguments)
    if extractor.extractFlag(named: "help") > 0 {
      print(BenchmarkOptions.usage)
      return
    }
    let options = try BenchmarkOptions(&extractor)
    guard extractor.remainingArguments.isEmpty else {
      throw BenchmarkError("unexpected arguments \(extractor.remainingArguments)\n\(BenchmarkOptions.usage)")
    }

    print("benchmark: building longconv-bench (release)...")
    let build = try packageManager.build(
      .product("longconv-bench"), parameters: .init(configuration: .release, logging: .concise))
    guard build.succeeded,
      let executable = build.builtArtifacts.first(where: { $0.kind == .executable })
    else {
      throw BenchmarkError("building longconv-bench failed:\n\(build.logText)")
    }

    var records: [BenchRecord] = []
    var lines: [String] = []
    for suite in options.suites {
      let arguments = options.arguments(for: suite)
      print("benchmark: longconv-bench \(arguments.joined(separator: " "))")
      let output = try run(executable.url, arguments)
      for line in output.split(separator: "\n") where line.hasPrefix("{") {
        print("  " + line)
        lines.append(String(line))
        if let record = BenchRecord(json: String(line)) { records.append(record) }
      }
    }
    guard !records.isEmpty else { throw BenchmarkError("longconv-bench printed no results") }

    let directory =
      options.output.map { URL(fileURLWithPath: $0, relativeTo: context.package.directoryURL) }
      ?? context.package.directoryURL.appending(path: "Benchmarks/results")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let command =
      (["swift package --allow-writing-to-package-directory benchmark"] + arguments).joined(separator: " ")
    var written = ["latest.jsonl", "latest.md"]
    try (lines.joined(separator: "\n") + "\n").write(
      to: directory.appending(path: "latest.jsonl"), atomically: true, encoding: .utf8)
    var plots: [String: String] = [:]
    for suite in options.suites {
      let suiteRecords = records.filter { $0.suite == suite }
      guard let svg = Report.svg(title: Report.title(suite), records: suiteRecords) else { continue }
      let file = "latest-\(suite).svg"
      try svg.write(to: directory.appending(path: file), atomically: true, encoding: .utf8)
      plots[suite] = file
      written.append(file)
    }
    let markdown = Report.markdown(
      records: records, suites: options.suites, plots: plots, command: command, machine: machine())
    try markdown.write(to: directory.appending(path: "latest.md"), atomically: true, encoding: .utf8)
    print("benchmark: wrote \(written.map { directory.appending(path: $0).path }.joined(separator: ", "))")
  }

  /// Runs `executable` and returns its standard output; throws on a non-zero exit.
  func run(_ executable: URL, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw BenchmarkError(
        "longconv-bench \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
  }

  /// One line describing the machine: cores, CPU model, OS.
  func machine() -> String {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let cpu =
      (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
      .split(separator: "\n").first { $0.hasPrefix("model name") }?
      .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    return "\(cores) cores, \(cpu), \(ProcessInfo.processInfo.operatingSystemVersionString)"
  }
}

struct BenchmarkError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = "benchmark: " + description }
}

struct BenchmarkOptions {
  static let usage = """
    usage: swift package --allow-writing-to-package-directory benchmark [options]
      --quick             three shorter lengths, three repetitions (seconds, once built)
      --suite S[,S...]    conv, tno (default: conv,tno)
      --len L[,L...]      sequence lengths (default 1024,4096,16384,65536; quick: 512,2048,8192)
      --dim D             channels (default 256)
      --batch B           batch (default 1)
      --threads N         threads (default: every core)
      --reps R            timed repetitions per point (default 5; quick: 3)
      --output DIR        where to write latest.{md,jsonl} and latest-<suite>.svg
                          (default Benchmarks/results)
    """
  static let knownSuites = ["conv", "tno"]

  var suites = ["conv", "tno"]
  var lengths = [1024, 4096, 16384, 65536]
  var dim = 256
  var batch = 1
  var threads: Int?
  var reps = 5
  var output: String?

  init(_ extractor: inout ArgumentExtractor) throws {
    if extractor.extractFlag(named: "quick") > 0 {
      lengths = [512, 2048, 8192]
      reps = 3
    }
    func list(_ name: String) -> [String]? {
      let values = extractor.extractOption(named: name).flatMap { $0.split(separator: ",").map(String.init) }
      return values.isEmpty ? nil : values
    }
    func integers(_ name: String) throws -> [Int]? {
      guard let values = list(name) else { return nil }
      return try values.map {
        guard let v = Int($0), v >= 1 else {
          throw BenchmarkError("--\(name) needs positive integers, got \($0)")
        }
        return v
      }
    }
    func integer(_ name: String) throws -> Int? {
      guard let values = try integers(name) else { return nil }
      guard values.count == 1 else { throw BenchmarkError("--\(name) takes one value") }
      return values[0]
    }
    if let s = list("suite") {
      for suite in s where !Self.knownSuites.contains(suite) {
        throw BenchmarkError("unknown suite \(suite) (known: \(Self.knownSuites.joined(separator: ", ")))")
      }
      suites = s
    }
    if let l = try integers("len") { lengths = l }
    if let d = try integer("dim") { dim = d }
    if let b = try integer("batch") { batch = b }
    threads = try integer("threads")
    if let r = try integer("reps") { reps = r }
    output = extractor.extractOption(named: "output").last
  }

  func arguments(for suite: String) -> [String] {
    var a = [suite, "--dim", "\(dim)", "--batch", "\(batch)", "--reps", "\(reps)", "--len"]
    a += lengths.map(String.init)
    if let threads { a += ["--threads", "\(threads)"] }
    return a
  }
}

/// One JSON line of `longconv-bench`: its suite, shape and the timings in milliseconds.
struct BenchRecord {
  var suite: String
  var length: Int
  var dim: Int
  var batch: Int
  var threads: Int
  /// `(key, milliseconds)` in the order the line gives them.
  var times: [(key: String, ms: Double)]

  init?(json: String) {
    guard
      let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
      let suite = object["bench"] as? String, let length = (object["len"] as? NSNumber)?.intValue
    else { return nil }
    self.suite = suite
    self.length = length
    dim = (object["dim"] as? NSNumber)?.intValue ?? 0
    batch = (object["batch"] as? NSNumber)?.intValue ?? 0
    threads = (object["threads"] as? NSNumber)?.intValue ?? 0
    // JSONSerialization loses the key order: restore it from the text.
    let keys = json.split(separator: "\"").map(String.init).filter { $0.hasSuffix("_ms") }
    var seen = Set<String>()
    times = keys.compactMap { key in
      guard seen.insert(key).inserted, let ms = (object[key] as? NSNumber)?.doubleValue else { return nil }
      return (key, ms)
    }
  }
}
