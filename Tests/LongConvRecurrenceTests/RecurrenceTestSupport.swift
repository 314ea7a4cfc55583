import Foundation
import LongConv
import LongConvRecurrence
import LongConvTensors
import LongConvTestSupport
import Testing

/// A registered kernel built from a JSON config string, causal, seeded.
func makeKernel(_ json: String, channels: Int, maxLength: Int = 2048, seed: UInt64 = 1) throws
  -> any LongConvKernel
{
  var generator = SeededGenerator(seed: seed)
  let config = try ConfigReader(JSONValue.parse(Data(json.utf8), source: "test"))
  return try Registry.makeKernel(
    config, context: KernelContext(channels: channels, direction: .causal, maxLength: maxLength),
    generator: &generator)
}

/// Runs `recurrence` token by token over `x [length, channels]` from the zero state.
func runRecurrence(_ recurrence: RecurrentConvolution, _ x: [Float], length: Int) -> [Float] {
  let d = recurrence.channels
  var state = recurrence.makeState()
  var y = [Float](repeating: 0, count: length * d)
  x.withUnsafeBufferPointer { input in
    y.withUnsafeMutableBufferPointer { output in
      for i in 0..<length {
        recurrence.step(input.baseAddress! + i * d, into: output.baseAddress! + i * d, state: &state)
      }
    }
  }
  return y
}

/// Seeded uniform inputs in [-1, 1], `[length, channels]`.
func randomInputs(length: Int, channels: Int, seed: UInt64) -> [Float] {
  var generator = SeededGenerator(seed: seed)
  return Tensor.uniform([length * channels], low: -1, high: 1, generator: &generator).scalars
}
