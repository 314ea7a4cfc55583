// swift-tools-version:6.0
import PackageDescription

let package = Package(
  name: "LongConvKit",
  products: [
    .library(name: "LongConvKit", targets: ["LongConvKit"]),
    .library(name: "LongConvTensors", targets: ["LongConvTensors"]),
    .library(name: "LongConvLayers", targets: ["LongConvLayers"]),
    .library(name: "LongConvIO", targets: ["LongConvIO"]),
    .library(name: "LongConv", targets: ["LongConv"]),
    .library(name: "LongConvTraining", targets: ["LongConvTraining"]),
    .library(name: "LongConvRecurrence", targets: ["LongConvRecurrence"]),
    .library(name: "LongConvInterop", targets: ["LongConvInterop"]),
    .library(name: "LongConvInspection", targets: ["LongConvInspection"]),
    .executable(name: "longconv", targets: ["longconv"]),
    .executable(name: "longconv-bench", targets: ["longconv-bench"]),
  ],
  targets: [
    // System libraries: FFTW single precision (+ its threads library) and OpenBLAS (cblas, LAPACK).
    .systemLibrary(
      name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
    .systemLibrary(
      name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    // Open MPI, for data-parallel training (`mpirun -np N longconv train`); only the longconv
    // tool links it, through LongConvDistributed.
    .systemLibrary(
      name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),

    // Vector kernels (AVX-512 / AVX2 / portable, chosen at run time) and a spinning thread team
    // for one decoding step.
    .target(name: "CDecodeKernels", dependencies: ["CCPUDispatch"]),
    // AVX-512 matrix product, for machines whose BLAS is held to narrower kernels.
    .target(name: "CMatrixKernels", dependencies: ["CCPUDispatch"]),
    // Element-wise activations with the widest vector instructions, chosen at run time.
    .target(name: "CVectorMath", dependencies: ["CCPUDispatch"]),
    // The long convolution's transposes and spectral products, with the widest vector
    // instructions, chosen at run time.
    .target(name: "CConvolutionKernels", dependencies: ["CCPUDispatch"]),
    // The one CPU feature detection every C kernel target dispatches on.
    .target(name: "CCPUDispatch"),

    // Float32 tensors, their ops and pullbacks, reverse-mode autodiff, the FFT long convolution.
    // The Float (FFTW single, cblas) and Double (FFTW double, LAPACK) backends sit side by side
    // in Backends/; the Double ones serve the conversions' math.
    .target(
      name: "LongConvTensors",
      dependencies: [
        "CFFTW", "COpenBLAS", "CMatrixKernels", "CVectorMath", "CConvolutionKernels",
      ],
      linkerSettings: [.linkedLibrary("fftw3")]),
    // Modules with parameters and buffers found by reflection: Linear, Embedding, norms, activations.
    .target(name: "LongConvLayers", dependencies: ["LongConvTensors"]),
    // Files: safetensors reading and writing, atomic writes.
    .target(name: "LongConvIO", dependencies: ["LongConvTensors"]),
    // Kernels, mixers and models as conformances, assembled from JSON configs; checkpoints.
    .target(name: "LongConv", dependencies: ["LongConvLayers", "LongConvIO"]),
    // Optimizers, parameter groups, schedules, gradient clipping, datasets and synthetic tasks.
    .target(name: "LongConvTraining", dependencies: ["LongConv", "LongConvIO", "LongConvInspection"]),
    // Conversion of kernels into diagonal state spaces (native, exact ETSC, compact) and the
    // recurrent runtime; its math runs in Double (FFTW's double-precision library, LAPACK).
    .target(
      name: "LongConvRecurrence", dependencies: ["LongConv", "LongConvIO", "CDecodeKernels"]),
    // Models from other frameworks: PyTorch TNN and safari (Hyena, S4D) state dicts.
    .target(name: "LongConvInterop", dependencies: ["LongConv", "LongConvIO"]),
    // Pictures of kernels: Toeplitz heat maps and impulse responses as SVG.
    .target(name: "LongConvInspection", dependencies: ["LongConv", "LongConvIO"]),
    // Data-parallel training over MPI: the ranks of a run as LongConvTraining's GradientReducer.
    .target(name: "LongConvDistributed", dependencies: ["LongConvTraining", "CMPI"]),
    // Umbrella module: `import LongConvKit` re-exports the modules above.
    .target(
      name: "LongConvKit",
      dependencies: [
        "LongConv", "LongConvIO", "LongConvTraining", "LongConvRecurrence", "LongConvInterop",
        "LongConvInspection",
      ]),

    // The one command-line parser of the tool, the benchmark and the examples.
    .target(name: "LongConvCommandLine"),
    .executableTarget(
      name: "longconv", dependencies: ["LongConvKit", "LongConvCommandLine", "LongConvDistributed"]),
    .executableTarget(
      name: "longconv-bench",
      dependencies: ["LongConvKit", "LongConvCommandLine", "LongConvDistributed", "CFFTW", "COpenBLAS"],
      path: "Benchmarks/longconv-bench"),

    // Examples: `swift run -c release <name>` (see Examples/README.md).
    .executableTarget(
      name: "char-lm", dependencies: ["LongConvKit", "LongConvCommandLine"], path: "Examples/CharLM"),
    .executableTarget(
      name: "associative-recall", dependencies: ["LongConvKit", "LongConvCommandLine"],
      path: "Examples/AssociativeRecall"),
    .executableTarget(
      name: "listops", dependencies: ["LongConvKit", "LongConvCommandLine"], path: "Examples/ListOps"),
    .executableTarget(
      name: "custom-kernel", dependencies: ["LongConvKit", "LongConvCommandLine"],
      path: "Examples/CustomKernel"),

    // Shared test helpers: finite differences and dense references in Double.
    .target(name: "LongConvTestSupport", dependencies: ["LongConvTensors", "LongConvLayers", "LongConv"]),
    .testTarget(
      name: "LongConvTensorsTests", dependencies: ["LongConvTensors", "LongConvTestSupport"]),
    .testTarget(
      name: "LongConvTests",
      dependencies: [
        "LongConvTensors", "LongConvLayers", "LongConvIO", "LongConv", "LongConvTraining", "LongConvInterop",
        "LongConvInspection", "LongConvTestSupport",
      ]),
    .testTarget(
      name: "LongConvRecurrenceTests",
      dependencies: [
        "LongConvTensors", "LongConvLayers", "LongConvIO", "LongConv", "LongConvRecurrence",
        "LongConvInterop",
        "CDecodeKernels", "LongConvTestSupport",
      ]),
    // The command-line tool's own logic (token sampling), through `@testable import longconv`.
    .testTarget(name: "LongConvCLITests", dependencies: ["longconv", "LongConvTestSupport"]),
    .testTarget(
      name: "LongConvTrainingTests",
      dependencies: [
        "LongConvTensors", "LongConvLayers", "LongConvIO", "LongConv", "LongConvTraining",
        "LongConvTestSupport",
      ]),

    // Command plugins (`swift package plugin --list`). Plugins cannot depend on library targets:
    // they write source text and run the built benchmark executable.
    .plugin(
      name: "NewKernel",
      capability: .command(
        intent: .custom(
          verb: "new-kernel",
          description: "Scaffold a kernel, its registration, its tests and its config reference entry"),
        permissions: [
          .writeToPackageDirectory(
            reason:
              "writes Sources/LongConv/Kernels/<Name>.swift, its tests, registration and docs/CONFIG.md entry"
          )
        ]),
      path: "Plugins/NewKernel"),
    .plugin(
      name: "Benchmark",
      capability: .command(
        intent: .custom(
          verb: "benchmark",
          description: "Run longconv-bench (release) and write Markdown tables and SVG plots"),
        permissions: [.writeToPackageDirectory(reason: "writes Benchmarks/results/latest.{md,jsonl,svg}")]),
      path: "Plugins/Benchmark"),
  ],
  swiftLanguageModes: [.v6]
)
