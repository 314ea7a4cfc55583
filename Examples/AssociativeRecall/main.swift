// associative-recall: safari's associative recall, learned by three long-convolution families,
// each in the mixer its paper uses.
//
// The task (HazyResearch/safari, `generate_assoc_recall`; `AssociativeRecall` here): a vocabulary
// of V tokens, 2 of them special, the rest split into keys and values (V = 10: 4 keys, 4 values).
// Each row draws a fresh key -> value map, then L/2 pairs `k v` with keys drawn with replacement,
// then the separator `=>` and a query key that occurred: `k1 v1 ... kP vP => q`. The answer is
// q's value in this row. The model is trained on every position (safari's loss) and measured on
// the answer only.
//
// Each family trains from its shipped config and recipe (`Configs/<family>_recall.json`: model
// and `training` section): `hyena` is the Hyena operator (order 2, implicit filter) in safari's
// lm_simple blocks, `s4d` the S4D kernel in its SSM block, `tnn` the TNN kernel in its GTU. The
// table prints, on held-out rows (another seed):
//   - accuracy before and after training: the fraction of queries whose highest logit is the
//     answer;
//   - shortcut: the accuracy of answering, without looking at the query, the value seen most
//     often in the row (about 0.5 for V = 10: what a model that has not learned recall plateaus
//     at);
//   - chance: 1 / values (0.25 for V = 10).
// Only an accuracy well above the shortcut means the model looks the query's key up. The numbers
// are as measured on this run; Benchmarks/RESULTS.md records runs with their wall times.
//
//   swift run -c release associative-recall [--families hyena,s4d,tnn] [--steps N] [--vocab V]
//                                           [--length L] [--seed S] [--threads N]
//
// Defaults: all three families, 400 steps each (the recipes' batch, rate and schedule), V = 10,
// L = 256 (rows of 258 tokens), 512 held-out rows. About 2 minutes per family on one core.
import Foundation
import LongConvCommandLine
import LongConvKit

struct Options {
  var families = ["hyena", "s4d", "tnn"]
  var steps: Int? = 400
  var vocabulary = 10
  var length = 256
  var seed: UInt64 = 0
  var threads = ProcessInfo.processInfo.activeProcessorCount
}

let familyNames = [
  "hyena": "Hyena operator", "s4d": "S4D in its SSM block", "tnn": "TNN in its GTU",
]

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("associative-recall: \(message)\n".utf8))
  exit(2)
}

func parse(_ arguments: [String]) -> Options {
  do {
    let a = try Arguments(
      arguments, command: "associative-recall",
      options: ["--families", "--steps", "--vocab", "--length", "--seed", "--threads"])
    if a.wantsHelp {
      print(
        "usage: associative-recall [--families hyena,s4d,tnn] [--steps N] [--vocab V] [--length L] "
          + "[--seed S] [--threads N]")
      exit(0)
    }
    var o = Options()
    if let families = a.string("--families") {
      o.families = families.split(separator: ",").map(String.init)
      for f in o.families where familyNames[f] == nil {
        throw UsageError(message: "associative-recall: --families: unknown family '\(f)' (hyena, s4d, tnn)")
      }
      if o.families.isEmpty {
        throw UsageError(message: "associative-recall: --families needs at least one family")
      }
    }
    o.steps = try a.positiveInteger("--steps") ?? o.steps
    o.vocabulary = try a.integer("--vocab", minimum: 4) ?? o.vocabulary
    o.length = try a.integer("--length", minimum: 2) ?? o.length
    o.seed = UInt64(try a.nonNegativeInteger("--seed") ?? Int(o.seed))
    o.threads = try a.positiveInteger("--threads") ?? o.threads
    return o
  } catch {
    FileHandle.standardError.write(Data("\(error) (try --help)\n".utf8))
    exit(2)
  }
}

/// `Configs/` of the package: from this file's path, else under the working directory.
func configsDirectory() -> URL {
  let fromSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../Configs").standardized
  if FileManager.default.fileExists(atPath: fromSource.path) { return fromSource }
  return URL(fileURLWithPath: "Configs")
}

/// The shortcut's accuracy on `batches`: answer each query with the value its row shows most
/// often (the smallest such value on ties), never looking at the query.
func shortcutAccuracy(_ batches: [MaskedSequenceBatch], vocabulary: InContextVocabulary) -> Double {
  var right = 0
  var total = 0
  for b in batches {
    for row in 0..<b.size {
      let tokens = b.inputs[row * b.length..<(row + 1) * b.length]
      var counts = [Int: Int]()
      for t in tokens where vocabulary.values.contains(t) { counts[t, default: 0] += 1 }
      let guess = counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
      if guess == b.targets[row * b.length + b.length - 1] { right += 1 }
      total += 1
    }
  }
  return Double(right) / Double(total)
}

func run(_ options: Options) throws {
  ComputeThreads.count = options.threads
  let rowLength = AssociativeRecall.rowLength(inputLength: options.length)
  let vocabulary = try InContextVocabulary(size: options.vocabulary, task: "associative recall")
  let validationSeed = options.seed &+ 1
  var held = try AssociativeRecall(vocabularySize: options.vocabulary, seed: validationSeed)
  let heldOut = try (0..<16).map { _ in try held.batch(size: 32, length: rowLength) }
  let shortcut = shortcutAccuracy(heldOut, vocabulary: vocabulary)
  let chance = 1 / Double(vocabulary.values.count)
  print(
    "associative recall: V = \(options.vocabulary) (\(vocabulary.keys.count) keys, \(vocabulary.values.count) values), "
      + "L = \(options.length) (rows of \(rowLength) tokens); 512 held-out rows")
  print(String(format: "shortcut (most frequent value) %.3f, chance %.3f\n", shortcut, chance))

  var rows: [String] = []
  for family in options.families {
    let url = configsDirectory().appendingPathComponent("\(family)_recall.json")
    guard case .object(var config) = try JSONValue.read(contentsOf: url) else {
      fail("\(url.path): not an object")
    }
    config["vocab_size"] = .number(Double(options.vocabulary))
    config["max_length"] = .number(Double(rowLength))
    config["seed"] = .number(Double(options.seed))
    var recipe = try TrainingOptions.recipe(in: .object(config), file: url.path)
    if let steps = options.steps {
      recipe.steps = steps
      recipe.warmupSteps = min(recipe.warmupSteps, steps)
    }
    recipe.logEvery = max(1, recipe.steps / 4)
    recipe.checkpointEvery = recipe.steps
    let model = try ModelBuilder.build(.object(config), file: url.path)
    let objective = try MaskedTaskObjective(
      task: AssociativeRecall(vocabularySize: options.vocabulary, seed: options.seed),
      validationTask: AssociativeRecall(vocabularySize: options.vocabulary, seed: validationSeed),
      batch: recipe.batch, length: rowLength, lossPositions: recipe.lossPositions, validationRows: 512)
    let before = try objective.validate(model)!.accuracy!
    print("\(family) (\(familyNames[family]!)): \(model.parameterCount) parameters, \(recipe.steps) steps")
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "associative-recall-\(family)-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    let trainer = try Trainer(model: model, objective: objective, options: recipe, directory: directory)
    let started = Date()
    try trainer.run(progress: false)
    let seconds = Date().timeIntervalSince(started)
    let after = try objective.validate(model)!.accuracy!
    print(String(format: "  held-out accuracy %.3f -> %.3f in %.0f s\n", before, after, seconds))
    rows.append(
      String(
        format: "%@ %10d   %6.3f   %6.3f   %8.3f   %6.3f   %7.0f",
        family.padding(toLength: 6, withPad: " ", startingAt: 0), model.parameterCount, before, after,
        shortcut,
        chance, seconds))
  }
  print("family  parameters   before    after   shortcut   chance   seconds")
  for row in rows { print(row) }
}

do {
  try run(parse(Array(CommandLine.arguments.dropFirst())))
} catch {
  FileHandle.standardError.write(Data("associative-recall: \(error)\n".utf8))
  exit(1)
}
