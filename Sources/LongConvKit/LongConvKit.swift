// The umbrella module: `import LongConvKit` brings in every module of the toolkit.
@_exported import LongConvTensors
