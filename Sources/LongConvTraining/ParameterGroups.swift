import LongConv
import LongConvLayers
import LongConvTensors

/// The usual split of a model's parameters for ``AdamW`` or ``SGD``:
///
/// - `"decay"`: everything else, with `weightDecay` and learning-rate scale 1;
/// - `"no_decay"`: norms (names containing `norm`, any case), biases (names ending in `bias`),
///   the decay parameters of kernels: a learned TNN decay (`gamma` of a ``LongConv/TNNKernel``),
///   EMA's `delta` and `alpha` (``LongConv/EMAKernel``), and every parameter of a Hyena
///   filter (``LongConv/HyenaFilter``: its implicit MLP, `freq` and `bias`, as safari's
///   `HyenaFilter`, whose kernel parameters take `wd = 0` unless told otherwise); weight
///   decay 0, scale 1;
/// - `"ssm"`: the S4D state-space parameters `logDt`, `logAReal`, `aImag` (``LongConv/S4DKernel``),
///   weight decay 0 and learning-rate scale `ssmLearningRateScale`.
///
/// Kernel parameters are recognised by the kernel that owns them (found by walking the model),
/// so EMA's `gamma`, an output weight, keeps its decay while TNN's `gamma` does not. A
/// parameter of a user's kernel named `logDt`, `logAReal` or `aImag` also goes to `"ssm"`,
/// and `extraNoDecay` can send any other name to `"no_decay"`.
///
/// The default `ssmLearningRateScale` of 0.1 follows the S4 repository's `s4d.py` example,
/// where the model trains at 0.01 and the SSM parameters at 0.001 without weight decay. The S4
/// recipe uses a fixed rate (`min(0.001, lr)`) instead; for that, pass `0.001 / peak`.
/// Frozen parameters (``LongConvLayers/Module/freeze(_:)``) are left out, and so are empty
/// groups; within a group parameters keep the model's order and names.
public func defaultGroups(
  for model: any Module, weightDecay: Float, ssmLearningRateScale: Float = 0.1,
  extraNoDecay: (String) -> Bool = { _ in false }
) -> [ParameterGroup] {
  var ssmStorages = Set<ObjectIdentifier>()
  var noDecayStorages = Set<ObjectIdentifier>()
  for (_, module) in model.namedModules() {
    switch module {
    case let kernel as S4DKernel:
      for t in [kernel.logDt, kernel.logAReal, kernel.aImag] {
        ssmStorages.insert(ObjectIdentifier(t.storage))
      }
    case let kernel as TNNKernel:
      if let logit = kernel.decayLogit { noDecayStorages.insert(ObjectIdentifier(logit.storage)) }
    case let kernel as EMAKernel:
      for t in [kernel.delta, kernel.alpha] { noDecayStorages.insert(ObjectIdentifier(t.storage)) }
    case let filter as HyenaFilter:
      for (_, t) in filter.trainableParameters() { noDecayStorages.insert(ObjectIdentifier(t.storage)) }
    default: break
    }
  }
  let ssmNames: Set<String> = ["logDt", "logAReal", "aImag"]
  var decay: [(String, Tensor)] = []
  var noDecay: [(String, Tensor)] = []
  var ssm: [(String, Tensor)] = []
  for (name, tensor) in model.trainableParameters() {
    let last = name.split(separator: ".").last.map(String.init) ?? name
    let id = ObjectIdentifier(tensor.storage)
    if ssmStorages.contains(id) || ssmNames.contains(last) {
      ssm.append((name, tensor))
    } else if noDecayStorages.contains(id) || name.lowercased().contains("norm") || last.hasSuffix("bias")
      || extraNoDecay(name)
    {
      noDecay.append((name, tensor))
    } else {
      decay.append((name, tensor))
    }
  }
  var groups: [ParameterGroup] = []
  func add(_ name: String, _ members: [(String, Tensor)], scale: Float, decay: Float) {
    guard !members.isEmpty else { return }
    groups.append(
      ParameterGroup(
        name: name, parameters: members.map(\.1), parameterNames: members.map(\.0),
        learningRateScale: scale, weightDecay: decay))
  }
  add("decay", decay, scale: 1, decay: weightDecay)
  add("no_decay", noDecay, scale: 1, decay: 0)
  add("ssm", ssm, scale: ssmLearningRateScale, decay: 0)
  return groups
}
