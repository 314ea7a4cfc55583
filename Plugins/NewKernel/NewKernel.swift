import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory new-kernel --name MyKernel`
///
/// Scaffolds a kernel that works at once: `Sources/LongConv/Kernels/MyKernel.swift` (a
/// learnable damped-cosine kernel built from existing ops, its doc comment, its config
/// factory), its registration in `Sources/LongConv/Config/BuiltinComponents.swift` (so
/// `"type": "my_kernel"` works in any mixer's config), its tests in
/// `Tests/LongConvTests/MyKernelTests.swift` and its keys in `docs/CONFIG.md`. Every check runs
/// before anything is written; a failed write puts back what was written.
@main
struct NewKernel: CommandPlugin {
  func performCommand(context: PluginContext, arguments: [String]) async throws {
    var extractor = ArgumentExtractor(arguments)
    if extractor.extractFlag(named: "help") > 0 {
      print(Scaffold.usage)
      return
    }
    let names = extractor.extractOption(named: "name")
    let dryRun = extractor.extractFlag(named: "dry-run") > 0
    guard extractor.remainingArguments.isEmpty else {
      throw ScaffoldError("unexpected arguments \(extractor.remainingArguments); \(Scaffold.usage)")
    }
    guard names.count == 1, let name = names.first else {
      throw ScaffoldError("give exactly one --name; \(Scaffold.usage)")
    }
    let scaffold = try Scaffold(name: name, package: context.package.directoryURL)
    if dryRun {
      for edit in scaffold.edits { print("would write \(edit.relativePath)") }
      return
    }
    try scaffold.write()
    print(
      """
      new-kernel: \(name) (config type "\(scaffold.type)")
      \(scaffold.edits.map { "  wrote \($0.relativePath)" }.joined(separator: "\n"))
      Next: swift test --filter \(name)Tests
      """)
  }
}

struct ScaffoldError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = "new-kernel: " + description }
}

/// The files to write for one kernel, validated on creation.
struct Scaffold {
  static let usage = """
    usage: swift package --allow-writing-to-package-directory new-kernel --name <TypeName> [--dry-run]
      TypeName: a new Swift type name starting with an upper-case letter, e.g. DampedKernel;
      its config type is its snake case, e.g. "damped_kernel".
    """
  static let registrationMarker = "// new-kernel: registrations above this line"
  static let configMarker = "<!-- new-kernel: kernel sections above this line -->"

  struct Edit {
    var relativePath: String
    var url: URL
    var contents: String
    /// The file's contents before (`nil`: a new file).
    var original: String?
  }

  let name: String
  let type: String
  let edits: [Edit]

  init(name: String, package root: URL) throws {
    try Self.validate(name)
    self.name = name
    type = Self.snakeCase(name)

    func url(_ path: String) -> URL { root.appending(path: path) }
    func read(_ path: String) throws -> String {
      do {
        return try String(contentsOf: url(path), encoding: .utf8)
      } catch {
        throw ScaffoldError("cannot read \(path) (is this the LongConvKit package?): \(error)")
      }
    }

    let kernelPath = "Sources/LongConv/Kernels/\(name).swift"
    let testPath = "Tests/LongConvTests/\(name)Tests.swift"
    for path in [kernelPath, testPath] where FileManager.default.fileExists(atPath: url(path).path) {
      throw ScaffoldError("\(path) already exists; pick another name")
    }
    try Self.refuseExisting(name: name, type: type, in: [url("Sources"), url("Tests")])

    let registrationPath = "Sources/LongConv/Config/BuiltinComponents.swift"
    let registration = try read(registrationPath)
    let line = "    try Registry.add(kernel: \(name).self)\n"
    let configPath = "docs/CONFIG.md"
    let config = try read(configPath)
    let section = KernelTemplates.render(KernelTemplates.configSection, name: name, type: type)

    edits = [
      Edit(
        relativePath: kernelPath, url: url(kernelPath),
        contents: KernelTemplates.render(KernelTemplates.kernel, name: name, type: type)),
      Edit(
        relativePath: testPath, url: url(testPath),
        contents: KernelTemplates.render(KernelTemplates.test, name: name, type: type)),
      Edit(
        relativePath: registrationPath, url: url(registrationPath),
        contents: try Self.insert(
          line, before: Self.registrationMarker, in: registration, file: registrationPath),
        original: registration),
      Edit(
        relativePath: configPath, url: url(configPath),
        contents: try Self.insert(section + "\n", before: Self.configMarker, in: config, file: configPath),
        original: config),
    ]
  }

  /// Writes every file; on a failure, restores the ones already written and rethrows.
  func write() throws {
    var done: [Edit] = []
    do {
      for edit in edits {
        try edit.contents.write(to: edit.url, atomically: true, encoding: .utf8)
        done.append(edit)
      }
    } catch {
      for edit in done.reversed() {
        if let original = edit.original {
          try? original.write(to: edit.url, atomically: true, encoding: .utf8)
        } else {
          try? FileManager.default.removeItem(at: edit.url)
        }
      }
      throw ScaffoldError("could not write the scaffold (nothing kept): \(error)")
    }
  }

  /// `text` with `addition` inserted at the start of the line holding `marker`.
  static func insert(_ addition: String, before marker: String, in text: String, file: String) throws
    -> String
  {
    guard let range = text.range(of: marker) else {
      throw ScaffoldError("\(file) has no line \"\(marker)\" to insert before; put it back")
    }
    let lineStart =
      text[..<range.lowerBound].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
    var result = text
    result.insert(contentsOf: addition, at: lineStart)
    return result
  }

  static let keywords: Set<String> = [
    "Any", "Self", "Type", "Protocol", "associatedtype", "class", "deinit", "enum", "extension", "func",
    "import", "init", "inout", "let", "operator", "protocol", "static", "struct", "subscript", "typealias",
    "var", "break", "case", "continue", "default", "defer", "do", "else", "fallthrough", "for", "guard",
    "if", "in", "repeat", "return", "switch", "where", "while", "as", "catch", "false", "is", "nil",
    "rethrows", "super", "self", "throw", "throws", "true", "try", "actor", "await", "async",
  ]

  /// Names the toolkit's modules, the standard library or Foundation already use.
  static let reserved: Set<String> = [
    "LongConv", "LongConvKit", "LongConvTensors", "LongConvLayers", "LongConvTraining",
    "LongConvTestSupport", "LongConvRecurrence", "Array", "Bool", "Character", "Data", "Dictionary",
    "Double", "Float", "Int", "Optional", "Result", "Set", "String", "URL", "Error", "Never", "Void",
  ]

  /// A Swift type identifier: ASCII letters, digits and underscores, starting with an upper-case
  /// letter (the repo's `TypeNamesShouldBeCapitalized`), not a keyword or a reserved name.
  static func validate(_ name: String) throws {
    let ascii = name.unicodeScalars.allSatisfy {
      $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_")
    }
    guard !name.isEmpty, ascii, let first = name.unicodeScalars.first,
      CharacterSet.uppercaseLetters.contains(first)
    else {
      throw ScaffoldError(
        "\"\(name)\" is not a valid kernel type name: use ASCII letters, digits and underscores, starting with an upper-case letter (e.g. DampedKernel)"
      )
    }
    guard !keywords.contains(name), !reserved.contains(name) else {
      throw ScaffoldError(
        "\"\(name)\" is a Swift keyword or an existing module or standard type; pick another name")
    }
  }

  /// Refuses a type name declared anywhere in `directories`, or a config type already used.
  static func refuseExisting(name: String, type: String, in directories: [URL]) throws {
    let declaration = try Regex(
      #"\b(class|struct|enum|protocol|actor|typealias|extension)\s+"# + name + #"\b"#)
    let typeName = #""# + "\"" + type + "\""
    for directory in directories {
      guard
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)
      else { continue }
      for case let file as URL in files where file.pathExtension == "swift" {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { continue }
        let relative = file.path.replacingOccurrences(
          of: directory.deletingLastPathComponent().path + "/", with: "")
        if text.contains(declaration) {
          throw ScaffoldError("a type named \(name) already exists (\(relative)); pick another name")
        }
        for line in text.split(separator: "\n") where line.contains(typeName) {
          if line.contains("typeName") || line.contains("register(") {
            throw ScaffoldError(
              "the config type \(typeName) is already registered (\(relative)); pick another name")
          }
        }
      }
    }
  }

  /// `MyKernel` -> `my_kernel`, `S4DLike` -> `s4d_like`, `HTTPKernel2` -> `http_kernel2`.
  static func snakeCase(_ name: String) -> String {
    let characters = Array(name)
    var out = ""
    for (i, ch) in characters.enumerated() {
      if ch.isUppercase && i > 0 {
        let previous = characters[i - 1]
        let nextIsLower = i + 1 < characters.count && characters[i + 1].isLowercase
        if previous.isLowercase || ((previous.isUppercase || previous.isNumber) && nextIsLower) {
          if previous != "_" { out.append("_") }
        }
      }
      out.append(contentsOf: ch.lowercased())
    }
    return out
  }
}
