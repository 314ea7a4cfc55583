// The umbrella module: `import LongConvKit` brings in every module of the toolkit.
@_exported import LongConv
@_exported import LongConvIO
@_exported import LongConvInspection
@_exported import LongConvInterop
@_exported import LongConvLayers
@_exported import LongConvRecurrence
@_exported import LongConvTensors
@_exported import LongConvTraining
