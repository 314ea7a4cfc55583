/// The options of one subcommand: `--name value` options and `--flag` switches, checked
/// against the names the command declares. Anything else is a usage error (exit status 2).
struct Arguments {
  private var values: [String: String] = [:]
  private var flags: Set<String> = []
  /// True when `-h` or `--help` was given.
  let wantsHelp: Bool

  /// Parses `arguments` for `command`, which takes `options` (with a value) and `switches`.
  init(_ arguments: [String], command: String, options: Set<String>, switches: Set<String> = []) throws {
    var help = false
    var i = 0
    while i < arguments.count {
      let argument = arguments[i]
      if argument == "-h" || argument == "--help" {
        help = true
      } else if switches.contains(argument) {
        flags.insert(argument)
      } else if options.contains(argument) {
        guard i + 1 < arguments.count, !arguments[i + 1].hasPrefix("--") else {
          throw UsageError(message: "\(command): \(argument) needs a value")
        }
        guard values.updateValue(arguments[i + 1], forKey: argument) == nil else {
          throw UsageError(message: "\(command): \(argument) given twice")
        }
        i += 1
      } else {
        throw UsageError(message: "\(command): unknown option '\(argument)'")
      }
      i += 1
    }
    wantsHelp = help
  }

  func flag(_ name: String) -> Bool { flags.contains(name) }

  func string(_ name: String) -> String? { values[name] }

  /// A required option.
  func required(_ name: String, command: String) throws -> String {
    guard let value = values[name] else { throw UsageError(message: "\(command): \(name) is required") }
    return value
  }

  /// A positive integer option, or `nil` when absent.
  func positiveInteger(_ name: String, command: String) throws -> Int? {
    guard let text = values[name] else { return nil }
    guard let value = Int(text), value >= 1 else {
      throw UsageError(message: "\(command): \(name) needs a positive integer, got '\(text)'")
    }
    return value
  }

  /// A non-negative integer option, or `nil` when absent.
  func nonNegativeInteger(_ name: String, command: String) throws -> Int? {
    guard let text = values[name] else { return nil }
    guard let value = Int(text), value >= 0 else {
      throw UsageError(message: "\(command): \(name) needs an integer >= 0, got '\(text)'")
    }
    return value
  }
}
