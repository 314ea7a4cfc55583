import Foundation

/// A guard against configs that cannot fit: the memory a model and a training batch need,
/// estimated from the config's sizes before anything is allocated, against what the machine
/// has available, so that `dim: 1000000` is a clear error and not an abort inside the
/// allocator.
///
/// The estimates are deliberately generous upper bounds in Float32 bytes:
/// - parameters: `rows * dim` for the embedding, and per block `16 dim^2` (a GTU with
///   `expand_ratio` 3 and a GLU hold about `12 dim^2`; a Hyena operator with its MLP about
///   `12 dim^2`) plus `2 dim * max_length` for kernels whose size grows with the length (the
///   explicit kernel); the optimizer keeps two more copies and the gradient one, so training
///   counts four times the parameters;
/// - activations of a training step: `batch * length * dim * num_layers * 48` floats (the
///   graph keeps the inputs of every op of every block, a few dozen `d`-wide values per
///   position), plus the logits `batch * length * rows` three times.
public enum MemoryEstimate {
  /// Bytes the parameters of a model of these sizes take, about.
  public static func parameterBytes(rows: Int, dim: Int, layers: Int, maxLength: Int) -> Double {
    let (r, d, n, l) = (Double(rows), Double(dim), Double(layers), Double(maxLength))
    return 4 * (r * d + n * (16 * d * d + 2 * d * l))
  }

  /// Bytes one training step holds besides the parameters, about.
  public static func activationBytes(rows: Int, dim: Int, layers: Int, batch: Int, length: Int) -> Double {
    let (r, d, n, b, l) = (Double(rows), Double(dim), Double(layers), Double(batch), Double(length))
    return 4 * (b * l * d * max(n, 1) * 48 + 3 * b * l * r)
  }

  /// The memory the kernel says is available (`MemAvailable` of /proc/meminfo), or `nil`
  /// where it cannot be read.
  public static func availableBytes() -> Double? {
    guard let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
      let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") })
    else { return nil }
    let fields = line.split(separator: " ")
    guard fields.count >= 2, let kilobytes = Double(fields[1]) else { return nil }
    return kilobytes * 1024
  }

  /// `bytes` for people: `12.3 GB`.
  public static func describe(_ bytes: Double) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"]
    var value = bytes
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(Int(value)) bytes" : String(format: "%.1f %@", value, units[unit])
  }

  /// Throws when `needed` bytes (what `what` needs) exceed what is available.
  static func check(_ needed: Double, for what: String, available: Double?) throws -> String? {
    guard let available, needed > available else { return nil }
    return
      "\(what) needs about \(describe(needed)) (an estimate); this machine has \(describe(available)) available"
  }
}
