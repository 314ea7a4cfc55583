import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import Testing

@testable import LongConvTraining

@Suite struct ParameterGroupTests {
  static func model(_ text: String) throws -> any SequenceModel {
    try ModelBuilder.build(JSONValue.parse(Data(text.utf8), source: "test.json"), file: "test.json")
  }

  static func names(_ groups: [ParameterGroup], _ name: String) -> [String] {
    groups.first { $0.name == name }?.parameterNames ?? []
  }

  @Test func s4dParametersGetTheirOwnGroup() throws {
    let model = try Self.model(
      #"""
      {"dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "ssm", "kernel": {"type": "s4d", "state_size": 4}}}}
      """#)
    let groups = defaultGroups(for: model, weightDecay: 0.1)
    let ssm = Self.names(groups, "ssm")
    #expect(Set(ssm.map { String($0.split(separator: ".").last!) }) == ["logDt", "logAReal", "aImag"])
    #expect(ssm.allSatisfy { $0.hasPrefix("blocks.0.") })
    let ssmGroup = try #require(groups.first { $0.name == "ssm" })
    #expect(ssmGroup.learningRateScale == 0.1 && ssmGroup.weightDecay == 0)
    let noDecay = Self.names(groups, "no_decay")
    #expect(noDecay.allSatisfy { $0.lowercased().contains("norm") || $0.hasSuffix("bias") })
    #expect(noDecay.contains("finalNorm.weight"))
    let decay = try #require(groups.first { $0.name == "decay" })
    #expect(decay.weightDecay == 0.1 && decay.learningRateScale == 1)
    #expect(decay.parameterNames.contains("embedding.weight"))
    #expect(decay.parameterNames.contains { $0.hasSuffix("kernel.cReal") })
    #expect(!decay.parameterNames.contains { $0.lowercased().contains("norm") || $0.hasSuffix("bias") })
    // Every parameter is in exactly one group.
    let all = groups.flatMap(\.parameterNames)
    #expect(all.sorted() == model.namedParameters().map(\.name).sorted())
    #expect(
      defaultGroups(for: model, weightDecay: 0, ssmLearningRateScale: 0.5).first { $0.name == "ssm" }?
        .learningRateScale == 0.5)
  }

  @Test func tnnLearnedDecayIsNotDecayed() throws {
    let model = try Self.model(
      #"""
      {"dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "gtu",
                  "kernel": {"type": "tnn", "rpe_width": 8, "rpe_layers": 1, "decay": "learned"}}}}
      """#)
    let groups = defaultGroups(for: model, weightDecay: 0.1)
    #expect(!groups.contains { $0.name == "ssm" })
    let noDecay = Self.names(groups, "no_decay")
    #expect(noDecay.contains { $0.hasSuffix("kernel.gamma") })
    let decay = Self.names(groups, "decay")
    #expect(!decay.contains { $0.hasSuffix("gamma") })
    #expect(decay.contains { $0.hasSuffix("kernel.posProj.weight") })
    let all = groups.flatMap(\.parameterNames)
    #expect(all.sorted() == model.namedParameters().map(\.name).sorted())
  }

  @Test func emaDecayParametersAreNotDecayedButItsGammaIs() throws {
    let model = try Self.model(
      #"""
      {"dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "ssm", "kernel": {"type": "ema"}}}}
      """#)
    let groups = defaultGroups(
      for: model, weightDecay: 0.1, extraNoDecay: { $0.hasSuffix("embedding.weight") })
    let noDecay = Self.names(groups, "no_decay")
    #expect(noDecay.contains { $0.hasSuffix("kernel.delta") })
    #expect(noDecay.contains { $0.hasSuffix("kernel.alpha") })
    #expect(noDecay.contains("embedding.weight"))
    let decay = Self.names(groups, "decay")
    #expect(decay.contains { $0.hasSuffix("kernel.gamma") })
    #expect(decay.contains { $0.hasSuffix("kernel.beta") })
  }

  /// safari's `HyenaFilter` gives its kernel parameters `wd = 0` (the recall recipes keep it):
  /// the implicit MLP, `freq` and the filter's bias are not decayed, the operator's projections are.
  @Test func hyenaFilterParametersAreNotDecayed() throws {
    let model = try Self.model(
      #"""
      {"dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "hyena", "order": 2,
                  "kernel": {"type": "hyena", "emb_dim": 3, "filter_width": 8}}}}
      """#)
    let groups = defaultGroups(for: model, weightDecay: 0.1)
    let noDecay = Self.names(groups, "no_decay")
    let filterNames = model.namedParameters().map(\.name).filter { $0.contains(".kernel.") }
    #expect(filterNames.contains { $0.hasSuffix("freq") })
    #expect(filterNames.contains { $0.hasSuffix("implicitFilter.0.weight") })
    #expect(filterNames.allSatisfy { noDecay.contains($0) })
    let decay = Self.names(groups, "decay")
    #expect(decay.contains { $0.hasSuffix("mixer.inProj.weight") })
    #expect(!decay.contains { $0.contains(".kernel.") })
    let all = groups.flatMap(\.parameterNames)
    #expect(all.sorted() == model.namedParameters().map(\.name).sorted())
  }

  @Test func groupsDriveAnOptimizer() throws {
    let model = try Self.model(
      #"""
      {"dim": 8, "num_layers": 1, "max_length": 16,
       "layers": {"mixer": {"type": "ssm", "kernel": {"type": "s4d", "state_size": 4}}}}
      """#)
    let optimizer = AdamW(groups: defaultGroups(for: model, weightDecay: 0.1), learningRate: 1e-3)
    #expect(optimizer.parameters.count == model.parameters.count)
    #expect(optimizer.state.isEmpty)
  }
}
