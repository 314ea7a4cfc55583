// The files `new-kernel` writes. `__NAME__` is the Swift type name, `__TYPE__` its config
// `type` (snake case). Raw strings, so `\(...)` in the templates is written as is.

enum KernelTemplates {
  static func render(_ template: String, name: String, type: String) -> String {
    template.replacingOccurrences(of: "__NAME__", with: name).replacingOccurrences(of: "__TYPE__", with: type)
  }

  /// `Sources/LongConv/Kernels/__NAME__.swift`.
  static let kernel = #"""
    import Foundation
    import LongConvLayers
    import LongConvTensors

    /// A damped-cosine long-convolution kernel (scaffolded by `swift package new-kernel`: replace
    /// the math with yours, keep the contract of ``LongConvKernel``, and update the test beside
    /// it, `Tests/LongConvTests/__NAME__Tests.swift`, whose reference formula is this one).
    ///
    /// Per channel `c`, with a learned amplitude `a_c`, decay rate `r_c = softplus(rho_c) > 0` and
    /// frequency `omega_c` (radians per lag):
    ///
    /// ```
    /// t_c[k] = a_c exp(-r_c |k|) cos(omega_c k)
    /// ```
    ///
    /// for the lags `k = 0 ... L-1` (causal, `[D, L]`) or `k = -(L-1) ... L-1` (bidirectional,
    /// `[D, 2L - 1]`, negative lags first; this kernel is symmetric). An optional learned skip
    /// `D [D]` is added as `D * x`. The coefficients are built from existing ops (`softplus`,
    /// `exp`, `cos` and broadcasting products), so the gradients come from their pullbacks.
    /// Defined for every length.
    ///
    /// What it knows about itself (delete what your kernel does not have):
    /// - ``separableDecay``: `gamma_c = exp(-r_c)`, since `t_c[k] = gamma_c^|k| a_c cos(omega_c k)`;
    /// - ``stateSpace()``: causal only, one complex mode per channel, exact:
    ///   `t_c[k] = Re(a_c p_c^k)` with the pole `p_c = exp(-r_c + i omega_c)` and residue `a_c`.
    ///
    /// Initialisation: `a ~ N(0, 1/4)`; `r_c` log-spaced over the channels from `min_decay` to
    /// `max_decay` (`rho = log(exp(r) - 1)`); `omega ~ U(0, max_frequency)`; `D ~ N(0, 1)`.
    ///
    /// Config (`type: "__TYPE__"`):
    /// - `min_decay` (default 0.01) and `max_decay` (default 0.5): the range of the initial decay
    ///   rates, `0 < min_decay <= max_decay`;
    /// - `max_frequency` (default 0.5): the largest initial frequency, at least 0;
    /// - `skip` (default true): learn the skip `D`.
    ///
    /// Parameters: `amplitude [D, 1]`, `rho [D, 1]`, `omega [D, 1]`, `skip [D]`.
    ///
    /// - Complexity: `O(D L)` time and memory for ``coefficients(length:)``.
    public final class __NAME__: ConfigurableKernel {
      public static let typeName = "__TYPE__"

      public let channels: Int
      public let direction: ConvolutionDirection
      /// `[D, 1]`: the amplitude `a`.
      public let amplitude: Tensor
      /// `[D, 1]`: the decay rate before `softplus`, `rho`.
      public let rho: Tensor
      /// `[D, 1]`: the frequency `omega`, radians per lag.
      public let omega: Tensor
      /// `[D]`: the learned skip, or `nil`.
      public let skip: Tensor?

      public init(
        channels: Int, direction: ConvolutionDirection, minDecay: Double = 0.01, maxDecay: Double = 0.5,
        maxFrequency: Double = 0.5, skip: Bool = true, generator: inout SeededGenerator
      ) {
        precondition(channels >= 1, "__NAME__: channels \(channels) < 1")
        precondition(0 < minDecay && minDecay <= maxDecay, "__NAME__: bad decay range")
        self.channels = channels
        self.direction = direction
        amplitude = Tensor.normal([channels, 1], std: 0.5, generator: &generator).requiringGradient()
        let rates = (0..<channels).map { c in
          minDecay * Foundation.pow(maxDecay / minDecay, channels == 1 ? 0 : Double(c) / Double(channels - 1))
        }
        rho = try! Tensor(shape: [channels, 1], doubles: rates.map { Foundation.log(Foundation.expm1($0)) })
          .requiringGradient()
        omega = Tensor.uniform([channels, 1], low: 0, high: Float(maxFrequency), generator: &generator)
          .requiringGradient()
        self.skip = skip ? Tensor.normal([channels], generator: &generator).requiringGradient() : nil
      }

      public convenience init(config: ConfigReader, context: KernelContext, generator: inout SeededGenerator)
        throws
      {
        let minDecay = try config.double("min_decay", default: 0.01)
        guard minDecay > 0 else { throw config.error("min_decay", "must be above 0, got \(minDecay)") }
        let maxDecay = try config.double("max_decay", default: 0.5)
        guard maxDecay >= minDecay else {
          throw config.error("max_decay", "must be at least min_decay (\(minDecay)), got \(maxDecay)")
        }
        let maxFrequency = try config.double("max_frequency", default: 0.5)
        guard maxFrequency >= 0 else {
          throw config.error("max_frequency", "must be at least 0, got \(maxFrequency)")
        }
        let skip = try config.bool("skip", default: true)
        self.init(
          channels: context.channels, direction: context.direction, minDecay: minDecay, maxDecay: maxDecay,
          maxFrequency: maxFrequency, skip: skip, generator: &generator)
      }

      /// The lags of the columns: `0 ... L-1` or `-(L-1) ... L-1`.
      func lags(_ length: Int) -> [Float] {
        direction == .causal ? (0..<length).map(Float.init) : (1 - length..<length).map(Float.init)
      }

      /// `[D, L]` (causal) or `[D, 2L - 1]` (bidirectional): `a exp(-softplus(rho) |k|) cos(omega k)`.
      public func coefficients(length: Int) throws -> Tensor {
        guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
        let k = lags(length)
        let lag = Tensor(k).reshaped([1, k.count])
        let negativeDistance = Tensor(k.map { -Swift.abs($0) }).reshaped([1, k.count])
        return amplitude * (rho.softplus() * negativeDistance).exp() * (omega * lag).cos()
      }

      /// `gamma [D] = exp(-softplus(rho))`, a constant (no gradient).
      public var separableDecay: Tensor? {
        Tensor.withoutRecording { (-rho.detached().softplus()).exp().reshaped([channels]) }
      }

      /// `r = a cos(omega k)`: the coefficients without their decay, for converters that fold
      /// `gamma` into the poles.
      public func undecayedCoefficients(length: Int) throws -> Tensor? {
        guard length >= 1 else { throw KernelError.invalidLength(kernel: Self.typeName, requested: length) }
        let k = lags(length)
        return amplitude * (omega * Tensor(k).reshaped([1, k.count])).cos()
      }

      /// The exact recurrence of the causal kernel in Double: one complex mode per channel,
      /// pole `exp(-softplus(rho) + i omega)`, residue `a`, skip `D`. `nil` when bidirectional.
      public func stateSpace() -> DiagonalStateSpace? {
        guard direction == .causal else { return nil }
        let (a, rho, omega) = (amplitude.scalars, self.rho.scalars, self.omega.scalars)
        var polesReal: [[Double]] = []
        var polesImaginary: [[Double]] = []
        for c in 0..<channels {
          let r = Foundation.log1p(Foundation.exp(Double(rho[c])))
          let modulus = Foundation.exp(-r)
          polesReal.append([modulus * Foundation.cos(Double(omega[c]))])
          polesImaginary.append([modulus * Foundation.sin(Double(omega[c]))])
        }
        return DiagonalStateSpace(
          polesReal: polesReal, polesImaginary: polesImaginary, residuesReal: a.map { [Double($0)] },
          residuesImaginary: a.map { _ in [0] }, skip: skip?.scalars.map(Double.init))
      }
    }

    """#

  /// `Tests/LongConvTests/__NAME__Tests.swift`.
  static let test = #"""
    import Foundation
    import LongConv
    import LongConvTensors
    import LongConvTestSupport
    import Testing

    /// __NAME__ (`"__TYPE__"`): coefficients against the formula in Double,
    /// gradients by finite differences, the state-space form, and a model built from a
    /// config naming it.
    @Suite("__NAME__")
    struct __NAME__Tests {
      static func kernel(
        channels: Int = 3, direction: ConvolutionDirection, skip: Bool = true, seed: UInt64 = 1
      ) -> __NAME__ {
        var generator = SeededGenerator(seed: seed)
        return __NAME__(
          channels: channels, direction: direction, minDecay: 0.05, maxDecay: 0.8, maxFrequency: 1.5,
          skip: skip, generator: &generator)
      }

      /// `t_c[k] = a_c exp(-log(1 + e^rho_c) |k|) cos(omega_c k)` in Double, row by row.
      static func reference(_ kernel: __NAME__, lags: [Int]) -> [Double] {
        let (a, rho, omega) = (kernel.amplitude.doubles, kernel.rho.doubles, kernel.omega.doubles)
        var out: [Double] = []
        for c in 0..<kernel.channels {
          let rate = log(1 + exp(rho[c]))
          for k in lags { out.append(a[c] * exp(-rate * Double(abs(k))) * cos(omega[c] * Double(k))) }
        }
        return out
      }

      @Test("coefficients match the formula in Double, both directions")
      func coefficients() throws {
        for length in [1, 7, 40] {
          let causal = Self.kernel(direction: .causal)
          let c = try causal.coefficients(length: length)
          #expect(c.shape == [3, length])
          expectClose(c, Self.reference(causal, lags: Array(0..<length)), "causal L=\(length)")
          let both = Self.kernel(direction: .bidirectional)
          let b = try both.coefficients(length: length)
          #expect(b.shape == [3, 2 * length - 1])
          expectClose(b, Self.reference(both, lags: Array(1 - length..<length)), "bidirectional L=\(length)")
        }
        #expect(throws: KernelError.invalidLength(kernel: "__TYPE__", requested: 0)) {
          try Self.kernel(direction: .causal).coefficients(length: 0)
        }
      }

      @Test("gradients of every parameter by finite differences, both directions")
      func gradients() throws {
        for direction in ConvolutionDirection.allCases {
          let k = Self.kernel(direction: direction)
          let x = uniformTensor([2, 6, 3], seed: 4)
          let result = try checkGradients("__TYPE__ \(direction)", parameters: k.namedParameters()) {
            try k.convolve(x)
          }
          #expect(result.names == ["amplitude", "rho", "omega", "skip"])
        }
      }

      @Test("separableDecay and stateSpace() reproduce the coefficients")
      func decayAndStateSpace() throws {
        let k = Self.kernel(direction: .causal)
        let length = 30
        let coefficients = try k.coefficients(length: length)
        let system = try #require(k.stateSpace())
        var fromSystem: [Double] = []
        var fromDecay: [Double] = []
        let gamma = try #require(k.separableDecay).doubles
        let (a, omega) = (k.amplitude.doubles, k.omega.doubles)
        for c in 0..<k.channels {
          let (pr, pi) = (system.polesReal[c][0], system.polesImaginary[c][0])
          let modulus = (pr * pr + pi * pi).squareRoot()
          let angle = atan2(pi, pr)
          for n in 0..<length {
            let power = pow(modulus, Double(n))
            fromSystem.append(system.residuesReal[c][0] * power * cos(angle * Double(n)))
            fromDecay.append(pow(gamma[c], Double(n)) * a[c] * cos(omega[c] * Double(n)))
          }
        }
        expectClose(coefficients, fromSystem, tolerance: 1e-5, "stateSpace")
        expectClose(coefficients, fromDecay, tolerance: 1e-5, "separableDecay")
        #expect(system.skip == k.skip?.doubles)
        #expect(Self.kernel(direction: .bidirectional).stateSpace() == nil)
      }

      @Test("a model config naming \"__TYPE__\" builds and runs forward")
      func modelFromConfig() throws {
        #expect(Registry.kernelTypes.contains("__TYPE__"))
        for (kind, extra) in [("causal_lm", ""), ("classifier", #", "num_classes": 3"#)] {
          let text = """
            {"model": "\(kind)", "dim": 8, "num_layers": 2, "max_length": 16, "vocab_size": 16\(extra),
             "layers": {"mixer": {"type": "gtu", "kernel": {"type": "__TYPE__", "max_frequency": 1}}}}
            """
          let json = try JSONValue.parse(Data(text.utf8), source: "__TYPE__ test")
          let model = try ModelBuilder.build(json)
          let tokens = (0..<32).map { $0 % 16 }
          let logits: Tensor
          if let lm = model as? CausalLanguageModel {
            logits = try lm.logits(tokens, batch: 2, length: 16)
            #expect(logits.shape == [2, 16, 16])
          } else {
            logits = try #require(model as? SequenceClassifier).logits(tokens, batch: 2, length: 16)
            #expect(logits.shape == [2, 3])
          }
          #expect(logits.scalars.allSatisfy { $0.isFinite })
          guard case .object(let top) = model.config, case .object(let layers)? = top["layers"],
            case .object(let mixer)? = layers["mixer"], case .object(let kernel)? = mixer["kernel"]
          else {
            Issue.record("resolved config without layers.mixer.kernel")
            return
          }
          #expect(Set(kernel.keys) == ["type", "min_decay", "max_decay", "max_frequency", "skip"])
          #expect(kernel["max_frequency"] == .number(1))
        }
      }
    }

    """#

  /// The section of `docs/CONFIG.md` documenting the kernel's keys (the config reference test
  /// checks it against the keys the kernel reads).
  static let configSection = #"""
    ### `__TYPE__` (`__NAME__`)

    | key | type | default | meaning |
    |---|---|---|---|
    | `type` | string | required | `"__TYPE__"` |
    | `min_decay` | number > 0 | `0.01` | smallest initial decay rate |
    | `max_decay` | number >= `min_decay` | `0.5` | largest initial decay rate |
    | `max_frequency` | number >= 0 | `0.5` | largest initial frequency, radians per lag |
    | `skip` | bool | `true` | learn the skip `D` |

    """#
}
