import Foundation
import LongConvTensors
import Testing

@testable import LongConv

/// The README's Swift snippets, run as written (sizes as in the README).
@Suite struct ReadmeQuickStartTests {
  @Test func longConvolutionQuickStart() {
    var rng = SeededGenerator(seed: 0)
    let x = Tensor.normal([2, 1000, 64], generator: &rng)  // [B, L, D]
    let kernel = Tensor.normal([64, 1000], std: 0.05, generator: &rng).requiringGradient()
    let y = x.longConvolution(kernel: kernel, direction: .causal)  // O(B D L log L) by FFT
    y.squared().mean().backward()
    #expect(kernel.gradient!.shape == [64, 1000])

    // Inference: no graph at all, and the kernel spectrum computed once.
    let spectrum = KernelSpectrum(kernel: kernel.detached(), length: 1000)
    let z = Tensor.withoutRecording { x.longConvolution(spectrum: spectrum) }
    #expect(!z.requiresGradient)
    #expect(z.scalars == Tensor.withoutRecording { x.longConvolution(kernel: kernel.detached()) }.scalars)
  }

  @Test func modelFromTheShippedConfig() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../Configs/tnn_lm.json")
    let model = try ModelBuilder.build(contentsOf: url)
    #expect(model is CausalLanguageModel)
  }
}
