import LongConvLayers
import LongConvTensors
import Synchronization

/// What a kernel is built for: its channels, its direction and the longest sequence it must
/// serve (some kernels, like Hyena's, are defined only up to a maximum length).
public struct KernelContext: Sendable {
  /// Channels `D` of the coefficients.
  public var channels: Int
  /// Causal (language models) or bidirectional (encoders).
  public var direction: ConvolutionDirection
  /// The longest sequence the kernel must serve (the model's `max_length`).
  public var maxLength: Int
  /// A context for `channels` channels in `direction` up to `maxLength`.
  public init(channels: Int, direction: ConvolutionDirection, maxLength: Int) {
    self.channels = channels
    self.direction = direction
    self.maxLength = maxLength
  }
}

/// What a mixer or channel mixer is built for: its width, direction and maximum length.
public struct MixerContext: Sendable {
  /// Width `D` of the mixer's input and output.
  public var width: Int
  /// The model's direction, passed on to the kernel.
  public var direction: ConvolutionDirection
  /// The model's `max_length`, passed on to the kernel.
  public var maxLength: Int
  /// A context of width `width` in `direction` up to `maxLength`.
  public init(width: Int, direction: ConvolutionDirection, maxLength: Int) {
    self.width = width
    self.direction = direction
    self.maxLength = maxLength
  }
}

/// A kernel that a config can name: the registry builds it from its JSON object.
public protocol ConfigurableKernel: LongConvKernel, SendableMetatype {
  /// The config's `type` string, for example `"tnn"`.
  static var typeName: String { get }
  /// Builds the kernel from its config object (defaults for optional keys).
  init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator) throws
}

/// A sequence mixer that a config can name. Mixers are generic over their kernel, which the
/// config chooses, so a conforming type (often a small enum beside the mixer) builds the
/// mixer rather than being it.
public protocol ConfigurableMixer: SendableMetatype {
  /// The config's `type` string, for example `"gtu"`.
  static var typeName: String { get }
  /// Builds the mixer (and its kernel) from its config object.
  static func make(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator) throws
    -> any SequenceMixer
}

/// A channel mixer that a config can name: the registry builds it from its JSON object.
public protocol ConfigurableChannelMixer: ChannelMixer, SendableMetatype {
  /// The config's `type` string, for example `"glu"`.
  static var typeName: String { get }
  /// Builds the channel mixer from its config object (defaults for optional keys).
  init(config: ConfigReader, context: MixerContext, generator: inout SeededGenerator) throws
}

/// Why a registration was refused.
public enum RegistryError: Error, Equatable, CustomStringConvertible {
  /// Another component is registered under this name (`kind` is kernel, mixer or channel mixer).
  case nameTaken(kind: String, name: String)

  /// The name and the problem.
  public var description: String {
    switch self {
    case .nameTaken(let kind, let name):
      "a \(kind) named \"\(name)\" is already registered; pass replacing: true to replace it"
    }
  }
}

/// Builds a kernel from its config object, its context and the model's seeded generator.
public typealias KernelFactory =
  @Sendable (ConfigReader, KernelContext, inout SeededGenerator) throws -> any LongConvKernel
/// Builds a sequence mixer (and its kernel) from its config object.
public typealias MixerFactory =
  @Sendable (ConfigReader, MixerContext, inout SeededGenerator) throws -> any SequenceMixer
/// Builds a channel mixer from its config object.
public typealias ChannelMixerFactory =
  @Sendable (ConfigReader, MixerContext, inout SeededGenerator) throws -> any ChannelMixer

/// Maps config `type` names to factories. Built-in kernels and mixers are registered the
/// same way a user's are (in `BuiltinComponents.swift`), one style for every kind:
///
/// ```swift
/// try Registry.register(kernel: DampedOscillatorKernel.self)         // ConfigurableKernel
/// try Registry.register(mixer: MyMixerFactory.self)                  // ConfigurableMixer
/// try Registry.register(channelMixer: MyChannelMixer.self)           // ConfigurableChannelMixer
/// ```
///
/// Registering a type again is allowed and changes nothing; another component under a taken
/// name is refused with ``RegistryError/nameTaken(kind:name:)`` unless `replacing` is true.
/// Closure factories (`register(kernel:_:)` and the like) are for components without a type
/// of their own.
public enum Registry {
  struct Entry<Factory: Sendable>: Sendable {
    let factory: Factory
    /// The registered type, when the entry came from one (so registering it again is a no-op).
    let type: ObjectIdentifier?
  }

  struct Tables {
    var kernels: [String: Entry<KernelFactory>] = [:]
    var mixers: [String: Entry<MixerFactory>] = [:]
    var channelMixers: [String: Entry<ChannelMixerFactory>] = [:]
  }

  static let tables = Mutex(Tables())
  /// Registers the built-ins once, before the first lookup.
  static let builtins: Void = BuiltinComponents.register()

  /// Registers a kernel type under its `typeName`.
  public static func register<K: ConfigurableKernel>(kernel: K.Type, replacing: Bool = false) throws {
    _ = builtins
    try add(kernel: kernel, replacing: replacing)
  }

  /// Registers a sequence mixer under its builder's `typeName`.
  public static func register<M: ConfigurableMixer>(mixer: M.Type, replacing: Bool = false) throws {
    _ = builtins
    try add(mixer: mixer, replacing: replacing)
  }

  /// Registers a channel-mixer type under its `typeName`.
  public static func register<C: ConfigurableChannelMixer>(channelMixer: C.Type, replacing: Bool = false)
    throws
  {
    _ = builtins
    try add(channelMixer: channelMixer, replacing: replacing)
  }

  /// Registers a kernel factory under `name`.
  public static func register(
    kernel name: String, replacing: Bool = false, _ factory: @escaping KernelFactory
  )
    throws
  {
    _ = builtins
    try add(name, kind: "kernel", type: nil, replacing: replacing, in: \.kernels, factory)
  }

  /// Registers a sequence-mixer factory under `name`.
  public static func register(mixer name: String, replacing: Bool = false, _ factory: @escaping MixerFactory)
    throws
  {
    _ = builtins
    try add(name, kind: "mixer", type: nil, replacing: replacing, in: \.mixers, factory)
  }

  /// Registers a channel-mixer factory under `name`.
  public static func register(
    channelMixer name: String, replacing: Bool = false, _ factory: @escaping ChannelMixerFactory
  ) throws {
    _ = builtins
    try add(name, kind: "channel mixer", type: nil, replacing: replacing, in: \.channelMixers, factory)
  }

  // The typed registrations without loading the built-ins first: the path of the built-ins
  // themselves (``BuiltinComponents``), which the public calls above load.

  static func add<K: ConfigurableKernel>(kernel: K.Type, replacing: Bool = false) throws {
    try add(K.typeName, kind: "kernel", type: ObjectIdentifier(kernel), replacing: replacing, in: \.kernels) {
      config, context, generator in try K(config: config, context: context, generator: &generator)
    }
  }

  static func add<M: ConfigurableMixer>(mixer: M.Type, replacing: Bool = false) throws {
    try add(M.typeName, kind: "mixer", type: ObjectIdentifier(mixer), replacing: replacing, in: \.mixers) {
      config, context, generator in try M.make(config: config, context: context, generator: &generator)
    }
  }

  static func add<C: ConfigurableChannelMixer>(channelMixer: C.Type, replacing: Bool = false) throws {
    try add(
      C.typeName, kind: "channel mixer", type: ObjectIdentifier(channelMixer), replacing: replacing,
      in: \.channelMixers
    ) { config, context, generator in try C(config: config, context: context, generator: &generator) }
  }

  /// Adds `factory` under `name` to `table`, refusing a taken name (see ``Registry``).
  private static func add<Factory: Sendable>(
    _ name: String, kind: String, type: ObjectIdentifier?, replacing: Bool,
    in table: WritableKeyPath<Tables, [String: Entry<Factory>]> & Sendable, _ factory: Factory
  ) throws {
    try tables.withLock { tables in
      if let existing = tables[keyPath: table][name], !replacing {
        guard type != nil, existing.type == type else {
          throw RegistryError.nameTaken(kind: kind, name: name)
        }
        return
      }
      tables[keyPath: table][name] = Entry(factory: factory, type: type)
    }
  }

  /// The registered kernel `type` names, sorted.
  public static var kernelTypes: [String] {
    _ = builtins
    return tables.withLock { $0.kernels.keys.sorted() }
  }
  /// The registered sequence-mixer `type` names, sorted.
  public static var mixerTypes: [String] {
    _ = builtins
    return tables.withLock { $0.mixers.keys.sorted() }
  }
  /// The registered channel-mixer `type` names, sorted.
  public static var channelMixerTypes: [String] {
    _ = builtins
    return tables.withLock { $0.channelMixers.keys.sorted() }
  }

  /// Builds the kernel that `config`'s `type` names.
  public static func makeKernel(
    _ config: ConfigReader, context: KernelContext, generator: inout SeededGenerator
  ) throws -> any LongConvKernel {
    try factory(named: config, kind: "kernel", in: \.kernels)(config, context, &generator)
  }

  /// Builds the sequence mixer that `config`'s `type` names.
  public static func makeMixer(
    _ config: ConfigReader, context: MixerContext, generator: inout SeededGenerator
  ) throws -> any SequenceMixer {
    try factory(named: config, kind: "mixer", in: \.mixers)(config, context, &generator)
  }

  /// Builds the channel mixer that `config`'s `type` names (`"glu"` when absent).
  public static func makeChannelMixer(
    _ config: ConfigReader, context: MixerContext, generator: inout SeededGenerator
  ) throws -> any ChannelMixer {
    try factory(named: config, kind: "channel mixer", default: "glu", in: \.channelMixers)(
      config, context, &generator)
  }

  /// The factory `config`'s `type` names in `table`, or an error at `type` listing the known names.
  private static func factory<Factory>(
    named config: ConfigReader, kind: String, default fallback: String? = nil,
    in table: KeyPath<Tables, [String: Entry<Factory>]> & Sendable
  ) throws -> Factory {
    _ = builtins
    let type = try config.string("type", default: fallback)
    let (entry, known) = tables.withLock { ($0[keyPath: table][type], $0[keyPath: table].keys.sorted()) }
    guard let entry else {
      throw config.error("type", "unknown \(kind) type \"\(type)\" (known: \(known.joined(separator: ", ")))")
    }
    return entry.factory
  }
}

/// Checks that a kernel supports the direction asked of it.
public func requireDirection(
  _ direction: ConvolutionDirection, supported: Set<ConvolutionDirection>, kernel: String,
  config: ConfigReader
) throws {
  guard supported.contains(direction) else {
    throw ConfigError(
      file: config.file, path: config.path,
      problem: "kernel \"\(kernel)\" does not support \(direction.rawValue) convolution")
  }
}
