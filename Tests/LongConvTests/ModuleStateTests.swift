import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import LongConvTraining
import Testing

/// Keyed parameters and buffers, and freezing, as the module reflection lists them.
@Suite struct ModuleStateTests {
  func ssmBlock() -> SSMBlock<S4DKernel> {
    var generator = SeededGenerator(seed: 3)
    return SSMBlock(
      kernel: S4DKernel(channels: 4, stateSize: 4, generator: &generator), generator: &generator)
  }

  @Test func keysReplacePropertyNames() {
    let block = ssmBlock()
    // `skipWeight` is stored under s4d.py's `D`.
    #expect(block.namedParameters().map(\.name).contains("kernel.D"))
    #expect(!block.namedParameters().map(\.name).contains { $0.contains("skipWeight") })
    #expect(block.namedBuffers().isEmpty)
  }

  @Test func frozenParametersTakeNoGradientAndLeaveTraining() throws {
    let block = ssmBlock()
    try block.freeze(["kernel.logDt", "output.bias"])
    #expect(block.trainableParameters().count == block.namedParameters().count - 2)
    #expect(!block.trainableParameters().map(\.name).contains("kernel.logDt"))
    let x = uniformTensor([1, 6, 4], seed: 9)
    try block(x).squared().sum().backward()
    let gradients = Dictionary(
      uniqueKeysWithValues: block.namedParameters().map { ($0.name, $0.tensor.gradient) })
    #expect(gradients["kernel.logDt"]! == nil && gradients["output.bias"]! == nil)
    #expect(gradients["kernel.logAReal"]! != nil && gradients["output.weight"]! != nil)
    // Optimizer groups are built from the trainable parameters only.
    let grouped = defaultGroups(for: block, weightDecay: 0.1).flatMap(\.parameterNames)
    #expect(Set(grouped) == Set(block.trainableParameters().map(\.name)))
    try block.unfreeze()
    #expect(block.trainableParameters().count == block.namedParameters().count)
    #expect(throws: ModuleError.unknownParameter("kernel.nope")) { try block.freeze(["kernel.nope"]) }
  }
}
