import Foundation
import LongConv
import LongConvTensors
import LongConvTraining
import Testing

/// `docs/CONFIG.md` against the code: every key a component reads is documented, every
/// documented key is read, and every default written as a single code span is the one the
/// code fills in. Components registered by the tests themselves (`test_` names) are skipped.
@Suite struct ConfigReferenceTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../..").standardized

  /// One documented key: its type and default cells as written.
  struct Entry: Equatable {
    var type: String
    var defaultValue: String
  }

  /// The tables of `docs/CONFIG.md`: `[section: [component: [key: entry]]]`, where a section is
  /// a `##` heading and a component the first code span of a `###` heading (`""` for a table
  /// directly under the `##` heading).
  static func reference() throws -> [String: [String: [String: Entry]]] {
    let text = try String(contentsOf: root.appendingPathComponent("docs/CONFIG.md"), encoding: .utf8)
    var tables: [String: [String: [String: Entry]]] = [:]
    var (section, component) = ("", "")
    func firstCodeSpan(_ s: Substring) -> String? {
      let parts = s.split(separator: "`", omittingEmptySubsequences: false)
      return parts.count >= 3 ? String(parts[1]) : nil
    }
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      if line.hasPrefix("## ") {
        (section, component) = (line.dropFirst(3).trimmingCharacters(in: .whitespaces), "")
      } else if line.hasPrefix("### ") {
        component = firstCodeSpan(line) ?? String(line.dropFirst(4))
      } else if line.hasPrefix("| `") {
        let cells = line.split(separator: "|", omittingEmptySubsequences: false).map {
          $0.trimmingCharacters(in: .whitespaces)
        }
        guard cells.count >= 4, let key = firstCodeSpan(Substring(cells[1])) else { continue }
        #expect(
          tables[section, default: [:]][component, default: [:]][key] == nil,
          "docs/CONFIG.md: \(section) \(component): \(key) documented twice")
        tables[section, default: [:]][component, default: [:]][key] = Entry(
          type: cells[2], defaultValue: cells[3])
      }
    }
    return tables
  }

  static func object(_ value: JSONValue?) -> [String: JSONValue] {
    if case .object(let o)? = value { return o }
    return [:]
  }

  static func reader(_ json: String) throws -> ConfigReader {
    try ConfigReader(JSONValue.parse(Data(json.utf8), source: "config reference"), file: "reference.json")
  }

  /// Expects the documented keys of `component` to be exactly `resolved`'s, and each default
  /// written as one code span (`` `0.99` ``, `` `fixed` ``, `` `true` ``) to equal the resolved
  /// value of a key the config did not set.
  func compare(
    _ label: String, documented: [String: Entry]?, resolved: [String: JSONValue], given: Set<String>,
    sourceLocation: SourceLocation = #_sourceLocation
  ) {
    guard let documented else {
      Issue.record("docs/CONFIG.md has no table for \(label)", sourceLocation: sourceLocation)
      return
    }
    let read = Set(resolved.keys)
    let written = Set(documented.keys)
    #expect(
      read.subtracting(written).isEmpty,
      "\(label): keys read by the code but not in docs/CONFIG.md: \(read.subtracting(written).sorted())",
      sourceLocation: sourceLocation)
    #expect(
      written.subtracting(read).isEmpty,
      "\(label): keys in docs/CONFIG.md that the code does not read: \(written.subtracting(read).sorted())",
      sourceLocation: sourceLocation)
    for (key, entry) in documented where !given.contains(key) {
      let cell = entry.defaultValue
      guard cell.count >= 3, cell.first == "`", cell.last == "`", cell.filter({ $0 == "`" }).count == 2,
        let value = resolved[key]
      else { continue }
      let literal = String(cell.dropFirst().dropLast())
      let matches: Bool
      switch value {
      case .number(let d): matches = Double(literal) == d
      case .bool(let b): matches = literal == String(b)
      case .string(let s): matches = literal == s
      default: continue
      }
      #expect(
        matches, "\(label).\(key): docs/CONFIG.md says default \(cell), the code uses \(value)",
        sourceLocation: sourceLocation)
    }
  }

  @Test func modelKeysMatchTheShippedConfigs() throws {
    let reference = try Self.reference()
    let documented = reference["Model"]?[""]
    // Every shipped config, plus a minimal one whose keys all take their defaults.
    let directory = Self.root.appendingPathComponent("Configs")
    var configs: [(name: String, json: JSONValue)] = try FileManager.default
      .contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }.sorted().map {
        ($0, try JSONValue.read(contentsOf: directory.appendingPathComponent($0)))
      }
    #expect(configs.count >= 4)
    configs.append(
      (
        "minimal",
        try JSONValue.parse(
          Data(
            #"{"dim": 4, "num_layers": 1, "layers": {"mixer": {"type": "ssm", "kernel": {"type": "ema"}}}}"#
              .utf8),
          source: "minimal")
      ))
    var union: [String: JSONValue] = [:]
    for (name, json) in configs {
      // Small sizes build fast and read the same keys.
      var small = Self.object(json)
      for (key, value) in ["dim": 4.0, "num_layers": 0, "vocab_size": 8] where small[key] != nil {
        small[key] = .number(value)
      }
      let model = try ModelBuilder.build(.object(small), file: name)
      let top = Self.object(model.config)
      var flat = top
      for (key, value) in Self.object(top["layers"]) { flat["layers.\(key)"] = value }
      var given = Set(Self.object(json).keys)
      for key in Self.object(Self.object(json)["layers"]).keys { given.insert("layers.\(key)") }
      let keysOfThisKind = documented.map { d in
        d.filter { $0.key != "num_classes" || top["model"] == .string("classifier") }
      }
      if name == "minimal" {
        compare("model (\(name))", documented: keysOfThisKind, resolved: flat, given: given)
      }
      union.merge(flat) { a, _ in a }
    }
    // Over all configs (language models and the classifier), every documented key is read.
    compare("model", documented: documented, resolved: union, given: Set(union.keys))
  }

  @Test func trainingKeysMatchTheirTable() throws {
    let documented = try Self.reference()["Training"]?[""]
    // An empty section: every key takes its default.
    let config = try Self.reader("{}")
    _ = try TrainingOptions(config: config)
    compare("training", documented: documented, resolved: Self.object(config.resolved), given: [])
    // What the trainer writes is what it reads.
    #expect(Set(Self.object(TrainingOptions().json).keys) == Set(Self.object(config.resolved).keys))
    // Every shipped recipe reads.
    let directory = Self.root.appendingPathComponent("Configs")
    for name in try FileManager.default.contentsOfDirectory(atPath: directory.path)
    where name.hasSuffix(".json") {
      let url = directory.appendingPathComponent(name)
      let options = try TrainingOptions.recipe(in: JSONValue.read(contentsOf: url), file: url.path)
      try options.check()
    }
  }

  @Test func everyRegisteredKernelMatchesItsTable() throws {
    let documented = try Self.reference()["Kernels"] ?? [:]
    let types = Registry.kernelTypes.filter { !$0.hasPrefix("test_") }
    #expect(types.count >= 5)
    #expect(
      Set(documented.keys) == Set(types),
      "kernels in docs/CONFIG.md \(documented.keys.sorted()) vs registered \(types)")
    for type in types {
      // Hyena's filter is causal only: build causal, and bidirectional where supported.
      for direction in ConvolutionDirection.allCases {
        let config = try Self.reader(#"{"type": "\#(type)"}"#)
        var generator = SeededGenerator(seed: 0)
        let context = KernelContext(channels: 4, direction: direction, maxLength: 16)
        guard (try? Registry.makeKernel(config, context: context, generator: &generator)) != nil else {
          #expect(direction == .bidirectional, "kernel \(type) fails to build with its defaults")
          continue
        }
        compare(
          "kernel \(type) (\(direction))", documented: documented[type],
          resolved: Self.object(config.resolved),
          given: ["type"])
      }
    }
  }

  @Test func everyRegisteredMixerMatchesItsTable() throws {
    let reference = try Self.reference()
    let mixers = reference["Mixers"] ?? [:]
    let types = Registry.mixerTypes.filter { !$0.hasPrefix("test_") }
    #expect(Set(mixers.keys) == Set(types), "mixers in docs/CONFIG.md \(mixers.keys.sorted()) vs \(types)")
    let context = MixerContext(width: 4, direction: .causal, maxLength: 16)
    for type in types {
      let config = try Self.reader(#"{"type": "\#(type)", "kernel": {"type": "explicit"}}"#)
      var generator = SeededGenerator(seed: 0)
      _ = try Registry.makeMixer(config, context: context, generator: &generator)
      compare(
        "mixer \(type)", documented: mixers[type], resolved: Self.object(config.resolved), given: ["type"])
    }

    let channelMixers = reference["Channel mixers"] ?? [:]
    let channelTypes = Registry.channelMixerTypes.filter { !$0.hasPrefix("test_") }
    #expect(
      Set(channelMixers.keys) == Set(channelTypes),
      "channel mixers in docs/CONFIG.md \(channelMixers.keys.sorted()) vs \(channelTypes)")
    for type in channelTypes {
      let config = try Self.reader(#"{"type": "\#(type)"}"#)
      var generator = SeededGenerator(seed: 0)
      _ = try Registry.makeChannelMixer(config, context: context, generator: &generator)
      compare(
        "channel mixer \(type)", documented: channelMixers[type], resolved: Self.object(config.resolved),
        given: ["type"])
    }
  }

  @Test func theCheckCatchesAnUndocumentedKey() {
    // The comparison itself: a key read but not documented, and one documented but not read.
    let documented = [
      "type": Entry(type: "string", defaultValue: "required"), "a": Entry(type: "", defaultValue: "`1`"),
    ]
    withKnownIssue {
      compare(
        "probe", documented: documented, resolved: ["type": .string("x"), "b": .number(1)], given: ["type"])
    }
    withKnownIssue {
      compare(
        "probe default", documented: documented, resolved: ["type": .string("x"), "a": .number(2)], given: [])
    }
  }
}
