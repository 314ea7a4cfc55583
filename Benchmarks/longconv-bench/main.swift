// longconv-bench: speed of the toolkit's building blocks, one JSON object per line, with the
// same keys as Benchmarks/torch_baseline.py so the two can be run side by side.
//
//   longconv-bench matmul [--threads N] [--reps R]
//   longconv-bench conv   [--threads N] [--reps R]
//   longconv-bench tno    [--dim D] [--batch B] [--len L ...] [--threads N] [--reps R]
//   longconv-bench train  [--dim D] [--layers N] [--batch B] [--len L ...] [--threads N] [--reps R]
//                         [--recompute] [--no-overlap] [--config FILE]   (also under mpirun -np N)
//   longconv-bench decode  [--dim D] [--layers N] [--len C ...] [--threads N] [--reps R]
//   longconv-bench etsc    [--dim D] [--layers N] [--len N] [--context C ...] [--steps S] [--threads N]
//   longconv-bench compact [--dim D] [--layers N] [--len N] [--context C ...] [--tolerance T]
//                          [--weights float32|bfloat16] (etsc too)
//                          [--max-states S] [--steps S] [--threads N]
//
// Build in release: swift build -c release --product longconv-bench
import CFFTW
import COpenBLAS
import Foundation
import LongConvCommandLine
import LongConvDistributed
import LongConvKit

struct Options {
  var command = ""
  var threads = 0
  var reps = 5
  var dim: Int?
  var batch: Int?
  var layers: Int?
  var lengths: [Int] = []
  var contexts: [Int] = []
  var steps = 50
  var tolerance = 1e-4
  var maxStates = 64
  var recompute = false
  var noOverlap = false
  var config: String?
  var weights = DecodingWeights.float32

  static let usage = """
    usage: longconv-bench <matmul|conv|tno|train|decode|etsc|compact> [--threads N] [--reps R] [--dim D]
                          [--batch B] [--len L ...] [--layers N] [--context C ...] [--steps S]
                          [--tolerance T] [--max-states S] [--recompute] [--no-overlap] [--config FILE]
                          [--weights float32|bfloat16]

    train is one AdamW step (lr 1e-3, no weight decay) of the TNN language model below, or of
    the language model --config FILE describes (any model config, e.g. Configs/hyena_recall.json;
    --dim, --layers and --recompute then come from the file), on --batch B rows of --len L
    random tokens of its vocabulary; under
    `mpirun -np N` the batch is shared by the ranks and the gradients summed over them, with
    the sums started during the backward pass (--no-overlap: after it); --threads defaults to
    the node's processors divided by the ranks on it.

    decode, etsc and compact decode one token at a time with the TNN language model of
    Benchmarks/torch_baseline.py (byte vocabulary, GTU expand 3, RPE width 64 x 3 layers,
    gamma 0.99, GLU; default --dim 256 --layers 6), one JSON line per context:
      decode   FFT recomputation of the whole context per token, for each context --len C ...
               (default 512 2048 8192); median of max(3, R/2) forward passes
      etsc     exact (ETSC) conversion at the conversion length --len N (the first value,
               default 512), then for each --context C ... (default N): prefill C random
               tokens, time --steps S single steps (default 50, after 5 untimed), median;
               plus conversion_s (median of 3) and max_abs_logit_diff_vs_fft (64 tokens stepped
               from the empty state against the FFT forward's logits, as torch_baseline.py etsc)
      compact  the same with compact conversion at --tolerance T (default 1e-4) and at most
               --max-states S states per channel (default 64); conversion timed once
    etsc and compact decode with the fused step's weights in --weights (default float32;
    bfloat16 adds max_abs_logit_diff_vs_float32, over the same 64 tokens)
    """

  /// The options of `args` (`Arguments`: a help request gives a `UsageError` without a
  /// message, which prints the usage and exits 0).
  static func parse(_ args: [String]) throws -> Options {
    let parsed = try Arguments(
      args, command: "longconv-bench",
      options: [
        "--threads", "--reps", "--dim", "--batch", "--layers", "--steps", "--max-states", "--tolerance",
        "--config", "--weights",
      ],
      listOptions: ["--len", "--context"], switches: ["--recompute", "--no-overlap"], positionals: 1)
    if parsed.wantsHelp { throw BenchUsage.help }
    var o = Options()
    o.command = parsed.positional.first ?? ""
    o.threads = try parsed.nonNegativeInteger("--threads") ?? o.threads
    o.reps = try parsed.positiveInteger("--reps") ?? o.reps
    o.dim = try parsed.positiveInteger("--dim")
    o.batch = try parsed.positiveInteger("--batch")
    o.layers = try parsed.positiveInteger("--layers")
    o.steps = try parsed.positiveInteger("--steps") ?? o.steps
    o.maxStates = try parsed.positiveInteger("--max-states") ?? o.maxStates
    o.tolerance = try parsed.number("--tolerance", in: Double.leastNonzeroMagnitude...1) ?? o.tolerance
    o.lengths = try parsed.positiveIntegers("--len")
    o.contexts = try parsed.positiveIntegers("--context")
    o.recompute = parsed.flag("--recompute")
    o.noOverlap = parsed.flag("--no-overlap")
    o.config = parsed.string("--config")
    if let name = parsed.string("--weights") {
      guard let weights = DecodingWeights(rawValue: name) else {
        throw UsageError(message: "longconv-bench: --weights must be float32 or bfloat16, got '\(name)'")
      }
      guard o.command == "etsc" || o.command == "compact" else {
        throw UsageError(message: "longconv-bench: --weights is for etsc and compact")
      }
      o.weights = weights
    }
    if o.config != nil, o.command != "train" {
      throw UsageError(message: "longconv-bench: --config is for train")
    }
    return o
  }
}

struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}

/// `--help`: the usage, exit status 0.
enum BenchUsage: Error { case help }

/// Median wall times in seconds of several workloads, run in turn within each repetition so
/// drift in the machine's load affects all alike. Two untimed rounds first.
func interleavedMedians(reps: Int, _ workloads: [() -> Void]) -> [Double] {
  var times = [[Double]](repeating: [], count: workloads.count)
  for round in 0..<(reps + 2) {
    for (i, work) in workloads.enumerated() {
      let start = DispatchTime.now().uptimeNanoseconds
      work()
      if round >= 2 { times[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }
    }
  }
  return times.map { $0.sorted()[$0.count / 2] }
}

func emit(_ fields: [(String, Any)]) {
  let body = fields.map { key, value -> String in
    switch value {
    case let s as String: return "\"\(key)\": \"\(s)\""
    case let d as Double: return "\"\(key)\": \(d.isFinite ? String(format: "%.6g", d) : "null")"
    default: return "\"\(key)\": \(value)"
    }
  }
  print("{" + body.joined(separator: ", ") + "}")
  fflush(nil)
}

/// The fields every line starts with: the CPU model, `blas_core` the kernel set OpenBLAS runs
/// (its own CPU detection, or `OPENBLAS_CORETYPE` from the environment), `gemm` the path the
/// large products take and `decode_isa` the decoding kernels' instruction set.
func header(_ threads: Int) -> [(String, Any)] {
  [
    ("impl", "longconvkit"), ("threads", threads), ("cpu", cpuModel),
    ("blas_core", openblas_get_corename().map { String(cString: $0) } ?? "unknown"),
    ("gemm", MatrixProductBackend.name), ("decode_isa", RecurrentLanguageModel.kernelInstructionSet),
  ]
}

/// The `model name` line of /proc/cpuinfo, or "unknown".
let cpuModel: String = {
  let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
  let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
  return line.flatMap { $0.split(separator: ":", maxSplits: 1).last }.map {
    $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\"", with: "'")
  } ?? "unknown"
}()

/// GFLOP/s of `Tensor.matmul` at 1024^3 beside a direct `cblas_sgemm` on preallocated buffers.
func benchMatmul(_ o: Options, threads: Int) {
  let n = o.dim ?? 1024
  var rng = SeededGenerator(seed: 1)
  let a = Tensor.normal([n, n], generator: &rng)
  let b = Tensor.normal([n, n], generator: &rng)
  let flops = 2 * Double(n) * Double(n) * Double(n)
  let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
  defer { c.deallocate() }
  let (pa, pb) = (a.storage.base, b.storage.base)
  let times = interleavedMedians(
    reps: o.reps,
    [
      { _ = Tensor.withoutRecording { a.matmul(b) } },
      {
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, pa, Int32(n), pb,
          Int32(n), 0, c,
          Int32(n))
      },
    ])
  let (ours, direct) = (times[0], times[1])
  emit(
    header(threads) + [
      ("bench", "matmul"), ("m", n), ("n", n), ("k", n), ("gflops", flops / ours / 1e9),
      ("cblas_gflops", flops / direct / 1e9), ("ratio_vs_cblas", direct / ours),
    ])
}

/// The raw FFTW floor for a causal long convolution of `[B, L, D]`: one batched r2c of the
/// input, the spectral product with a precomputed kernel spectrum, one batched c2r. Buffers
/// are preallocated and laid out contiguously per channel; FFTW and the product use
/// `threads` threads.
final class FFTWFloor {
  let count: Int, dim: Int, spectrumCount: Int, threads: Int
  let real: UnsafeMutablePointer<Float>
  let spectra: UnsafeMutablePointer<fftwf_complex>
  let kernel: UnsafeMutablePointer<fftwf_complex>
  let forward: OpaquePointer, inverse: OpaquePointer

  init(batch: Int, length: Int, dim: Int, threads: Int) {
    let n = 2 * length
    (count, self.dim, spectrumCount, self.threads) = (batch * dim, dim, n / 2 + 1, threads)
    real = fftwf_alloc_real(n * count)!
    spectra = fftwf_alloc_complex(spectrumCount * count)!
    kernel = fftwf_alloc_complex(spectrumCount * dim)!
    var size = Int32(n)
    fftwf_plan_with_nthreads(Int32(threads))
    forward = fftwf_plan_many_dft_r2c(
      1, &size, Int32(count), real, nil, 1, Int32(n), spectra, nil, 1, Int32(spectrumCount),
      UInt32(FFTW_MEASURE))!
    inverse = fftwf_plan_many_dft_c2r(
      1, &size, Int32(count), spectra, nil, 1, Int32(spectrumCount), real, nil, 1, Int32(n),
      UInt32(FFTW_MEASURE))!
    fftwf_plan_with_nthreads(1)
    for i in 0..<n * count { real[i] = Float(i % 7) - 3 }
    let k = UnsafeMutableRawPointer(kernel).assumingMemoryBound(to: Float.self)
    for i in 0..<2 * spectrumCount * dim { k[i] = Float(i % 5) * 0.1 }
  }

  deinit {
    fftwf_destroy_plan(forward)
    fftwf_destroy_plan(inverse)
    fftwf_free(real)
    fftwf_free(spectra)
    fftwf_free(kernel)
  }

  func run() {
    fftwf_execute(forward)
    let buffers = UncheckedSendable(
      (
        UnsafeMutableRawPointer(spectra).assumingMemoryBound(to: Float.self),
        UnsafeMutableRawPointer(kernel).assumingMemoryBound(to: Float.self)
      ))
    let (count, dim, f, threads) = (count, dim, spectrumCount, threads)
    DispatchQueue.concurrentPerform(iterations: threads) { part in
      let (sp, kr) = buffers.value
      for row in count * part / threads..<count * (part + 1) / threads {
        let s = sp + 2 * row * f
        let k = kr + 2 * (row % dim) * f
        for j in 0..<f {
          let (ar, ai, br, bi) = (s[2 * j], s[2 * j + 1], k[2 * j], k[2 * j + 1])
          s[2 * j] = ar * br - ai * bi
          s[2 * j + 1] = ar * bi + ai * br
        }
      }
    }
    fftwf_execute(inverse)
  }
}

/// The long convolution op: forward (kernel transformed in the pass, as in training), forward
/// with a cached kernel spectrum (inference), forward+backward, and the raw FFTW floor.
func benchConv(_ o: Options, threads: Int) {
  var shapes: [(b: Int, d: Int, l: Int)] = []
  if o.dim != nil || o.batch != nil || !o.lengths.isEmpty {
    for l in (o.lengths.isEmpty ? [512] : o.lengths) { shapes.append((o.batch ?? 1, o.dim ?? 1536, l)) }
  } else {
    shapes = [(1, 1536, 512), (1, 1536, 2048), (1, 1536, 8192), (8, 768, 512)]
  }
  for (b, d, l) in shapes {
    var rng = SeededGenerator(seed: 2)
    let x = Tensor.normal([b, l, d], generator: &rng)
    let t = Tensor.normal([d, l], std: 0.05, generator: &rng)
    let spectrum = KernelSpectrum(kernel: t, length: l)
    let xp = x.requiringGradient()
    let tp = t.requiringGradient()
    let floor = FFTWFloor(batch: b, length: l, dim: d, threads: threads)
    let times = interleavedMedians(
      reps: o.reps,
      [
        { _ = Tensor.withoutRecording { x.longConvolution(kernel: t) } },
        { _ = Tensor.withoutRecording { x.longConvolution(spectrum: spectrum) } },
        {
          xp.zeroGradient()  // as an optimizer step does
          tp.zeroGradient()
          xp.longConvolution(kernel: tp).sum().backward()
        },
        floor.run,
      ])
    let (fwd, cached, fwdBwd, floorTime) = (times[0], times[1], times[2], times[3])
    emit(
      header(threads) + [
        ("bench", "conv"), ("dim", d), ("batch", b), ("len", l), ("fwd_ms", fwd * 1e3),
        ("fwd_cached_spectrum_ms", cached * 1e3), ("fwd_bwd_ms", fwdBwd * 1e3),
        ("fftw_floor_ms", floorTime * 1e3),
        ("fwd_vs_floor", fwd / floorTime), ("fwd_cached_vs_floor", cached / floorTime),
        ("fwd_bwd_vs_floor", fwdBwd / floorTime),
      ])
  }
}

/// The TNN operator as `torch_baseline.py tno` times it (causal, RPE width 64, 3 layers, fixed decay
/// 0.99): its kernel generated from the RPE and the long convolution, forward (no graph) and
/// forward+backward (`sum().backward()` to the input and the kernel's parameters).
func benchTNO(_ o: Options, threads: Int) throws {
  let (d, b) = (o.dim ?? 1536, o.batch ?? 1)
  var rng = SeededGenerator(seed: 3)
  let kernel = TNNKernel(
    channels: d, direction: .causal, rpeWidth: 64, rpeLayers: 3, gamma: 0.99, generator: &rng)
  for l in o.lengths.isEmpty ? [512, 2048, 8192] : o.lengths {
    let x = Tensor.normal([b, l, d], generator: &rng)
    let xp = x.requiringGradient()
    let times = interleavedMedians(
      reps: o.reps,
      [
        { _ = Tensor.withoutRecording { try! kernel.convolve(x) } },
        {
          xp.zeroGradient()  // as an optimizer step does
          kernel.zeroGradients()
          try! kernel.convolve(xp).sum().backward()
        },
      ])
    emit(
      header(threads) + [
        ("bench", "tno"), ("dim", d), ("batch", b), ("len", l), ("fwd_ms", times[0] * 1e3),
        ("fwd_bwd_ms", times[1] * 1e3),
      ])
  }
}

/// The TNN language model of `torch_baseline.py` (byte vocabulary, expand 3, RPE width 64 with 3
/// layers, gamma 0.99, GLU width = dim, tied head), randomly initialised.
func makeTNNLanguageModel(dim: Int, layers: Int, maxLength: Int, recompute: Bool = false) throws
  -> CausalLanguageModel
{
  let config = """
    {"dim": \(dim), "num_layers": \(layers), "max_length": \(maxLength),
     "layers": {"recompute_activations": \(recompute),
                "mixer": {"type": "gtu", "expand_ratio": 3,
                          "kernel": {"type": "tnn", "rpe_width": 64, "rpe_layers": 3, "gamma": 0.99}},
                "channel_mixer": {"type": "glu", "hidden_dim": \(dim)}}}
    """
  return try ModelBuilder.build(JSONValue.parse(Data(config.utf8), source: "bench")) as! CausalLanguageModel
}

/// The language model a config file describes, checked to take rows of `length` tokens.
func languageModel(configFile path: String, length: Int) throws -> CausalLanguageModel {
  let built = try ModelBuilder.build(JSONValue.read(contentsOf: URL(fileURLWithPath: path)), file: path)
  guard let model = built as? CausalLanguageModel else {
    throw UsageError(
      message: "longconv-bench: \(path): not a language model (train needs \"model\": \"causal_lm\")")
  }
  guard length <= model.maxLength else {
    throw UsageError(
      message: "longconv-bench: --len \(length) exceeds the max_length \(model.maxLength) of \(path)")
  }
  return model
}

/// The process's peak resident memory so far, in MB (`getrusage`): run one length per process
/// to read it per shape.
func peakResidentMegabytes() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_maxrss) / 1024
}

/// One AdamW training step of the TNN language model of `torch_baseline.py train` (lr 1e-3):
/// forward, cross-entropy, backward, optimizer step, on random tokens.
///
/// Under `mpirun -np N` it is a data-parallel step: `--batch` is the global batch, each rank
/// takes its rows, and the gradients are summed over the ranks by ``GradientExchange`` (buckets
/// started during the backward pass, or after it with `--no-overlap`). Rank 0 then also reports
/// the median time the sums were under way (`allreduce_ms`), the part the step waited for
/// (`allreduce_exposed_ms`), the share hidden behind the backward pass and the gradient bytes
/// each rank sends per step.
func benchTrain(_ o: Options, threads: Int, world: MPIWorld?) throws {
  let batch = o.batch ?? 8
  let ranks = world?.size ?? 1
  guard batch % ranks == 0 else {
    throw UsageError(message: "longconv-bench: --batch \(batch) cannot be shared by \(ranks) processes")
  }
  for length in o.lengths.isEmpty ? [512] : o.lengths {
    let model =
      try o.config.map { try languageModel(configFile: $0, length: length) }
      ?? makeTNNLanguageModel(
        dim: o.dim ?? 256, layers: o.layers ?? 6, maxLength: length, recompute: o.recompute)
    let (dim, layers) = (model.blocks.first?.mixer.width ?? 0, model.blocks.count)
    let optimizer = AdamW(
      groups: [ParameterGroup(name: "all", parameters: model.parameters)], learningRate: 1e-3)
    var rng = SeededGenerator(seed: 3)
    let vocabulary = UInt64(model.vocabulary)
    let inputs = (0..<batch * length).map { _ in Int(rng.next() % vocabulary) }
    let targets = (0..<batch * length).map { _ in Int(rng.next() % vocabulary) }
    // This rank's rows of the global batch.
    let rows = BatchShard(index: world?.rank ?? 0, count: ranks).rows(of: batch)
    let shard = rows.lowerBound * length..<rows.upperBound * length
    let (shardInputs, shardTargets) = (Array(inputs[shard]), Array(targets[shard]))
    var exchange: GradientExchange?
    if let world, ranks > 1 {
      try world.broadcastState(of: model)
      exchange = GradientExchange(parameters: model.parameters, reducer: world, overlap: !o.noOverlap)
    }
    var timings: [GradientExchange.Timing] = []
    let times = interleavedMedians(
      reps: o.reps,
      [
        {
          optimizer.zeroGradients()
          let loss = try! model.loss(
            inputs: shardInputs, targets: shardTargets, batch: rows.count, length: length)
          if let exchange {
            timings.append(try! exchange.backward(loss, scale: 1 / Float(ranks)))
          } else {
            loss.backward()
          }
          optimizer.step()
        }
      ])
    guard (world?.rank ?? 0) == 0 else { continue }
    var fields: [(String, Any)] =
      header(threads) + [
        ("bench", "train_step"), ("model", o.config ?? "tnn"), ("ranks", ranks), ("dim", dim),
        ("layers", layers), ("batch", batch),
        ("len", length), ("params", model.parameterCount), ("recompute", o.recompute),
        ("step_ms", times[0] * 1e3),
        ("tokens_per_s", Double(batch * length) / times[0]), ("peak_rss_mb", peakResidentMegabytes()),
      ]
    if exchange != nil {
      let timed = timings.suffix(o.reps)  // the two untimed rounds left out
      func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
      let reduction = median(timed.map(\.reductionSeconds))
      let exposed = median(timed.map(\.exposedSeconds))
      fields += [
        ("overlap", !o.noOverlap), ("backward_ms", median(timed.map(\.backwardSeconds)) * 1e3),
        ("allreduce_ms", reduction * 1e3), ("allreduce_exposed_ms", exposed * 1e3),
        ("allreduce_hidden_share", median(timed.map(\.hiddenShare))), ("gradient_bytes", timed.last!.bytes),
      ]
    }
    emit(fields)
  }
}

/// Decoding by FFT recomputation: the whole context through the forward pass for every token
/// (what `torch_baseline.py decode` measures).
func benchDecode(_ o: Options, threads: Int) throws {
  let (dim, layers) = (o.dim ?? 256, o.layers ?? 6)
  let contexts = o.lengths.isEmpty ? [512, 2048, 8192] : o.lengths
  let model = try makeTNNLanguageModel(dim: dim, layers: layers, maxLength: contexts.max()!)
  var rng = SeededGenerator(seed: 4)
  for n in contexts {
    let tokens = (0..<n).map { _ in Int(rng.next() % 256) }
    let reps = max(3, o.reps / 2)
    var times: [Double] = []
    for round in 0..<(reps + 1) {
      let start = DispatchTime.now().uptimeNanoseconds
      _ = try Tensor.withoutRecording {
        try model.logits(tokens, batch: 1, length: n).slice(axis: 1, n - 1..<n).scalars
      }
      if round >= 1 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }
    }
    emit(
      header(threads) + [
        ("bench", "decode_recompute"), ("dim", dim), ("layers", layers), ("context", n),
        ("ms_per_token", times.sorted()[times.count / 2] * 1e3),
      ])
  }
}

/// The floor of a memory-bound decoding step: streaming the bytes it touches, `read` bytes read
/// of which `written` are also written back, split over `threads` as the step's members split
/// their channels: a sum over the read-only part (Float) and `s = s * a + b` over the rest
/// (Double, the states). Median of 21 passes after 3 untimed; the buffers are as large as the
/// step's, so they meet the same caches.
struct StreamFloor {
  let readOnly: UnsafeMutableBufferPointer<Float>
  let updated: UnsafeMutableBufferPointer<Double>
  let threads: Int

  init(read: Int, written: Int, threads: Int) {
    readOnly = .allocate(capacity: max(1, (read - written) / 4))
    readOnly.initialize(repeating: 1)
    updated = .allocate(capacity: max(1, written / 8))
    updated.initialize(repeating: 1)
    self.threads = max(1, threads)
  }

  func seconds() -> Double {
    let (r, u) = (UncheckedSendable(readOnly), UncheckedSendable(updated))
    let sink = UncheckedSendable(UnsafeMutableBufferPointer<Float>.allocate(capacity: threads))
    defer {
      sink.value.deallocate()
      readOnly.deallocate()
      updated.deallocate()
    }
    var times: [Double] = []
    let threads = self.threads
    for round in 0..<24 {
      let start = DispatchTime.now().uptimeNanoseconds
      DispatchQueue.concurrentPerform(iterations: threads) { t in
        // 16 lanes at a time (unaligned loads of SIMD16): a sum the compiler may vectorise.
        let blocks = r.value.count / 16
        let (a, b) = (blocks * t / threads, blocks * (t + 1) / threads)
        let raw = UnsafeRawPointer(r.value.baseAddress!)
        var sum = SIMD16<Float>()
        for i in a..<b { sum += raw.loadUnaligned(fromByteOffset: i * 64, as: SIMD16<Float>.self) }
        let (c, d) = (u.value.count * t / threads, u.value.count * (t + 1) / threads)
        for i in c..<d { u.value[i] = u.value[i] * 0.999_999 + 1e-9 }
        sink.value[t] = sum.sum()
      }
      if round >= 3 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }
    }
    return times.sorted()[times.count / 2]
  }
}

/// Decoding with a converted model (`etsc`: exact; `compact`: compact at a tolerance): the
/// conversion time, the per-token time after prefilling each context, and the largest logit
/// difference against the FFT forward over 64 tokens stepped from the empty state.
func benchRecurrent(_ o: Options, threads: Int, compact: Bool) throws {
  let (dim, layers) = (o.dim ?? 256, o.layers ?? 6)
  let length = o.lengths.first ?? 512
  let contexts = o.contexts.isEmpty ? [length] : o.contexts
  let model = try makeTNNLanguageModel(dim: dim, layers: layers, maxLength: max(length, contexts.max()!))
  let converter: any KernelConverter =
    compact ? try CompactConverter(tolerance: o.tolerance, maxStates: o.maxStates) : ExactConverter()
  var conversionTimes: [Double] = []
  var recurrent: RecurrentLanguageModel!
  for _ in 0..<(compact ? 1 : 3) {
    let start = DispatchTime.now().uptimeNanoseconds
    recurrent = try RecurrentLanguageModel(model: model, converter: converter, length: length)
      .usingWeights(o.weights)
    conversionTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
  }
  let conversionSeconds = conversionTimes.sorted()[conversionTimes.count / 2]

  // Logits of 64 tokens stepped from the empty state against the FFT forward.
  var rng = SeededGenerator(seed: 5)
  let probe = (0..<64).map { _ in Int(rng.next() % 256) }
  let full = try Tensor.withoutRecording { try model.logits(probe, batch: 1, length: probe.count).scalars }
  var state = recurrent.makeState()
  var difference: Float = 0
  for (i, token) in probe.enumerated() {
    let logits = recurrent.step(token, state: &state)
    for v in 0..<logits.count { difference = max(difference, abs(logits[v] - full[i * logits.count + v])) }
  }

  let maxStates = recurrent.reports.map(\.maxStates).max() ?? 0
  for context in contexts {
    let tokens = (0..<context).map { _ in Int(rng.next() % 256) }
    var state = recurrent.makeState()
    let prefillStart = DispatchTime.now().uptimeNanoseconds
    var logits = try recurrent.prefill(tokens, state: &state)
    let prefillSeconds = Double(DispatchTime.now().uptimeNanoseconds - prefillStart) * 1e-9
    var times: [Double] = []
    for round in 0..<(o.steps + 5) {
      let token = logits.indices.max { logits[$0] < logits[$1] }!
      let start = DispatchTime.now().uptimeNanoseconds
      logits = recurrent.step(token, state: &state)
      if round >= 5 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }
    }
    let bytes = recurrent.fusedStepBytes
    let floorSeconds = bytes.map {
      StreamFloor(read: $0.read, written: $0.written, threads: threads).seconds()
    }
    var fields: [(String, Any)] =
      header(threads) + [
        ("bench", compact ? "decode_compact" : "decode_etsc"), ("dim", dim), ("layers", layers),
        ("state", compact ? maxStates : length),
      ]
    if compact { fields.append(("tolerance", o.tolerance)) }
    fields += [
      ("context", context), ("ms_per_token", times.sorted()[times.count / 2] * 1e3),
      ("max_abs_logit_diff_vs_fft", Double(difference)), ("conversion_length", length),
      ("states_per_channel_max", maxStates), ("states_total", recurrent.stateCount),
      ("exact_fallback_channels", recurrent.reports.reduce(0) { $0 + ($1.exactChannels ?? 0) }),
      ("conversion_s", conversionSeconds), ("prefill_s", prefillSeconds), ("weights", o.weights.rawValue),
    ]
    if o.weights != .float32 {
      fields.append(
        (
          "max_abs_logit_diff_vs_float32",
          Double(recurrent.weightRoundingReport(tokens: probe).maxLogitDifference)
        ))
    }
    if let bytes, let floorSeconds {
      let perToken = times.sorted()[times.count / 2]
      fields += [
        ("step_mb", Double(bytes.read) / 1e6), ("stream_floor_ms", floorSeconds * 1e3),
        ("vs_stream_floor", perToken / floorSeconds),
      ]
    }
    emit(fields)
  }
}

// MPI only under a launcher (for `train`): a process started on its own never calls into it.
let world = MPIWorld.initializeIfLaunched()
do {
  let o = try Options.parse(Array(CommandLine.arguments.dropFirst()))
  let threads =
    o.threads > 0 ? o.threads : world?.defaultThreads() ?? ProcessInfo.processInfo.activeProcessorCount
  ComputeThreads.count = threads
  guard fftwf_init_threads() != 0 else { fatalError("fftwf_init_threads failed") }
  switch o.command {
  case "matmul": benchMatmul(o, threads: threads)
  case "conv": benchConv(o, threads: threads)
  case "tno": try benchTNO(o, threads: threads)
  case "train": try benchTrain(o, threads: threads, world: world)
  case "decode": try benchDecode(o, threads: threads)
  case "etsc": try benchRecurrent(o, threads: threads, compact: false)
  case "compact": try benchRecurrent(o, threads: threads, compact: true)
  case "": throw UsageError(message: "longconv-bench: a subcommand is required")
  default: throw UsageError(message: "longconv-bench: unknown subcommand \(o.command)")
  }
  world?.finalize()
} catch BenchUsage.help {
  FileHandle.standardError.write(Data((Options.usage + "\n").utf8))
  exit(0)
} catch let e as UsageError {
  // Every rank refuses the same arguments: say it once.
  if (world?.rank ?? 0) == 0 {
    FileHandle.standardError.write(Data("\(e.message)\n".utf8))
    FileHandle.standardError.write(Data((Options.usage + "\n").utf8))
  }
  world?.finalize()
  exit(2)
} catch {
  FileHandle.standardError.write(
    Data("longconv-bench: \(world.map { "rank \($0.rank): " } ?? "")\(error)\n".utf8))
  world?.abort(status: 1)
  exit(1)
}
