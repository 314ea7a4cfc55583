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
/// same way a user's are:
///
/// ```swift
/// Registry.register(kernel: DampedOscillatorKernel.self)
/// ```
public enum Registry {
  struct Tables {
    var kernels: [String: KernelFactory] = [:]
    var mixers: [String: MixerFactory] = [:]
    var channelMixers: [String: ChannelMixerFactory] = [:]
  }

  static let tables = Mutex(Tables())
  /// Registers the built-ins once, before the first lookup.
  static let builtins: Void = BuiltinComponents.register()

  /// Registers a kernel type under its `typeName` (replacing any earlier one of that name).
  public static func register<K: ConfigurableKernel>(kernel: K.Type) {
    register(kernel: K.typeName) { config, context, generator in
      try K(config: config, context: context, generator: &generator)
    }
  }

  /// Registers a kernel factory under `name` (replacing any earlier one of that name).
  public static func register(kernel name: String, _ factory: @escaping KernelFactory) {
    tables.withLock { $0.kernels[name] = factory }
  }

  /// Registers a sequence-mixer factory under `name` (replacing any earlier one).
  public static func register(mixer name: String, _ factory: @escaping MixerFactory) {
    tables.withLock { $0.mixers[name] = factory }
  }

  /// Registers a channel-mixer factory under `name` (replacing any earlier one).
  public static func register(channelMixer name: String, _ factory: @escaping ChannelMixerFactory) {
    tables.withLock { $0.channelMixers[name] = factory }
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
    in table: KeyPath<Tables, [String: Factory]> & Sendable
  ) throws -> Factory {
    _ = builtins
    let type = try config.string("type", default: fallback)
    let (factory, known) = tables.withLock { ($0[keyPath: table][type], $0[keyPath: table].keys.sorted()) }
    guard let factory else {
      throw config.error("type", "unknown \(kind) type \"\(type)\" (known: \(known.joined(separator: ", ")))")
    }
    return factory
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
