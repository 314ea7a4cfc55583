/// A mistake in how a command was called (exit status 2), as opposed to a problem with the
/// files or values it was given (exit status 1).
public struct UsageError: Error, CustomStringConvertible {
  /// What is wrong, naming the command and the option.
  public let message: String
  /// A usage error saying `message`.
  public init(message: String) { self.message = message }
  /// The message.
  public var description: String { message }
}

/// The command line of one command: an optional positional word (a subcommand), `--name value`
/// options, `--name v1 v2 ...` list options and `--flag` switches, checked against the names
/// the command declares. Anything else is a ``UsageError``. The one parser of the `longconv`
/// tool, `longconv-bench` and the examples.
public struct Arguments {
  private var values: [String: String] = [:]
  private var lists: [String: [String]] = [:]
  private var flags: Set<String> = []
  private let command: String
  /// True when `-h` or `--help` was given.
  public let wantsHelp: Bool
  /// The words before the first option that are not options themselves (a subcommand).
  public let positional: [String]

  /// Parses `arguments` for `command`, which takes `options` (one value each), `listOptions`
  /// (one or more values each, up to the next option), `switches`, and at most `positionals`
  /// leading words.
  public init(
    _ arguments: [String], command: String, options: Set<String>, listOptions: Set<String> = [],
    switches: Set<String> = [], positionals: Int = 0
  ) throws {
    self.command = command
    var help = false
    var words: [String] = []
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
      } else if listOptions.contains(argument) {
        var list: [String] = []
        while i + 1 < arguments.count, !arguments[i + 1].hasPrefix("--") {
          list.append(arguments[i + 1])
          i += 1
        }
        guard !list.isEmpty else {
          throw UsageError(message: "\(command): \(argument) needs at least one value")
        }
        lists[argument, default: []] += list
      } else if !argument.hasPrefix("-"), words.count < positionals, values.isEmpty, lists.isEmpty {
        words.append(argument)
      } else {
        throw UsageError(message: "\(command): unknown argument '\(argument)'")
      }
      i += 1
    }
    wantsHelp = help
    positional = words
  }

  /// Whether the switch `name` was given.
  public func flag(_ name: String) -> Bool { flags.contains(name) }

  /// The value of `name`, or `nil` when absent.
  public func string(_ name: String) -> String? { values[name] }

  /// A required option.
  public func required(_ name: String, command: String? = nil) throws -> String {
    guard let value = values[name] else {
      throw UsageError(message: "\(command ?? self.command): \(name) is required")
    }
    return value
  }

  /// An integer option of at least `minimum`, or `nil` when absent.
  public func integer(_ name: String, minimum: Int) throws -> Int? {
    guard let text = values[name] else { return nil }
    guard let value = Int(text), value >= minimum else {
      throw UsageError(message: "\(command): \(name) needs an integer >= \(minimum), got '\(text)'")
    }
    return value
  }

  /// A positive integer option, or `nil` when absent.
  public func positiveInteger(_ name: String, command: String? = nil) throws -> Int? {
    guard let text = values[name] else { return nil }
    guard let value = Int(text), value >= 1 else {
      throw UsageError(message: "\(command ?? self.command): \(name) needs a positive integer, got '\(text)'")
    }
    return value
  }

  /// A non-negative integer option, or `nil` when absent.
  public func nonNegativeInteger(_ name: String, command: String? = nil) throws -> Int? {
    guard let text = values[name] else { return nil }
    guard let value = Int(text), value >= 0 else {
      throw UsageError(message: "\(command ?? self.command): \(name) needs an integer >= 0, got '\(text)'")
    }
    return value
  }

  /// A finite number option in `range`, or `nil` when absent.
  public func number(
    _ name: String, in range: ClosedRange<Double> = -.greatestFiniteMagnitude...(.greatestFiniteMagnitude)
  )
    throws -> Double?
  {
    guard let text = values[name] else { return nil }
    guard let value = Double(text), value.isFinite, range.contains(value) else {
      // A side at the largest finite number is no bound a user needs to read.
      let (low, high) = (range.lowerBound, range.upperBound)
      let bounds =
        switch (low > -.greatestFiniteMagnitude, high < .greatestFiniteMagnitude) {
        case (true, true): " in [\(low), \(high)]"
        case (true, false): " >= \(low)"
        case (false, true): " <= \(high)"
        case (false, false): ""
        }
      throw UsageError(message: "\(command): \(name) needs a finite number\(bounds), got '\(text)'")
    }
    return value
  }

  /// The positive integers of the list option `name` (empty when absent).
  public func positiveIntegers(_ name: String) throws -> [Int] {
    try (lists[name] ?? []).map { text in
      guard let value = Int(text), value >= 1 else {
        throw UsageError(message: "\(command): \(name) needs positive integers, got '\(text)'")
      }
      return value
    }
  }
}
