import Foundation

/// Markdown tables and hand-written SVG plots of benchmark records.
enum Report {
  static func title(_ suite: String) -> String {
    switch suite {
    case "conv": "Long convolution (causal, kernel with L lags)"
    case "tno": "TNN operator (RPE kernel + long convolution)"
    default: suite
    }
  }

  /// `fwd_bwd_ms` -> `fwd+bwd ms`.
  static func label(_ key: String) -> String {
    String(key.dropLast(3)).replacingOccurrences(of: "fwd_bwd", with: "fwd+bwd")
      .replacingOccurrences(of: "_", with: " ") + " ms"
  }

  static func format(_ ms: Double) -> String {
    ms >= 100 ? String(format: "%.1f", ms) : ms >= 1 ? String(format: "%.2f", ms) : String(format: "%.3f", ms)
  }

  static func markdown(
    records: [BenchRecord], suites: [String], plots: [String: String], command: String, machine: String
  ) -> String {
    let date = ISO8601DateFormatter().string(from: Date())
    var out = """
      # Benchmark results (latest run)

      Written by the `benchmark` plugin; medians of the timed repetitions, release build.
      The machine may be shared: compare ratios within one run, not absolute times across runs.

      - Date: \(date)
      - Machine: \(machine)
      - Command: `\(command)`

      """
    for suite in suites {
      let rows = records.filter { $0.suite == suite }
      guard let first = rows.first else { continue }
      let keys = first.times.map(\.key)
      out += "\n## \(title(suite))\n\n"
      out += "D = \(first.dim), B = \(first.batch), \(first.threads) threads.\n\n"
      out += "| L | " + keys.map(label).joined(separator: " | ") + " |\n"
      out += "|---:|" + String(repeating: "---:|", count: keys.count) + "\n"
      for row in rows {
        let cells = keys.map { key in row.times.first { $0.key == key }.map { format($0.ms) } ?? "" }
        out += "| \(row.length) | " + cells.joined(separator: " | ") + " |\n"
      }
      if let plot = plots[suite] { out += "\n![\(title(suite))](\(plot))\n" }
    }
    return out
  }

  /// A log-log line plot of each timing against the length, or `nil` with fewer than one point.
  static func svg(title: String, records: [BenchRecord]) -> String? {
    guard let first = records.first else { return nil }
    let keys = first.times.map(\.key)
    let series = keys.map { key in
      records.compactMap { r in r.times.first { $0.key == key }.map { (x: Double(r.length), y: $0.ms) } }
        .filter { $0.y > 0 }
    }
    let xs = records.map { Double($0.length) }
    let ys = series.flatMap { $0.map(\.y) }
    guard let xMin = xs.min(), let xMax = xs.max(), let yMin = ys.min(), let yMax = ys.max() else {
      return nil
    }

    let (width, height) = (720.0, 440.0)
    let (left, right, top, bottom) = (70.0, 200.0, 40.0, 50.0)
    // Decades that cover the data, so the ticks are powers of ten (or of two for x).
    let x0 = log2(xMin) - 0.25
    let x1 = log2(xMax) + 0.25
    let y0 = floor(log10(yMin))
    let y1 = max(ceil(log10(yMax)), y0 + 1)
    func px(_ x: Double) -> Double { left + (log2(x) - x0) / (x1 - x0) * (width - left - right) }
    func py(_ y: Double) -> Double { height - bottom - (log10(y) - y0) / (y1 - y0) * (height - top - bottom) }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    var s = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
      viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(f(left))" y="22" font-size="15">\(escape(title))</text>

      """
    // Grid and ticks.
    for d in Int(y0)...Int(y1) {
      let y = py(pow(10, Double(d)))
      s +=
        "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(width - right))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
      let value = pow(10, Double(d))
      let text = value >= 1 ? String(Int(value)) : String(format: "%g", value)
      s += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(text)</text>\n"
    }
    for x in Set(xs).sorted() {
      let gx = px(x)
      s +=
        "<line x1=\"\(f(gx))\" y1=\"\(f(top))\" x2=\"\(f(gx))\" y2=\"\(f(height - bottom))\" stroke=\"#eee\"/>\n"
      s += "<text x=\"\(f(gx))\" y=\"\(f(height - bottom + 16))\" text-anchor=\"middle\">\(Int(x))</text>\n"
    }
    s += """
      <rect x="\(f(left))" y="\(f(top))" width="\(f(width - left - right))" height="\(f(height - top - bottom))" \
      fill="none" stroke="#333"/>
      <text x="\(f((left + width - right) / 2))" y="\(f(height - 12))" text-anchor="middle">sequence length L</text>
      <text transform="translate(18 \(f((top + height - bottom) / 2))) rotate(-90)" text-anchor="middle">time (ms, median)</text>

      """
    // Series and legend.
    for (i, (key, points)) in zip(keys, series).enumerated() where !points.isEmpty {
      let color = colors[i % colors.count]
      let path = points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
      s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
      for p in points {
        s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(color)\"/>\n"
      }
      let ly = top + 10 + Double(i) * 20
      s +=
        "<line x1=\"\(f(width - right + 14))\" y1=\"\(f(ly))\" x2=\"\(f(width - right + 38))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
      s +=
        "<text x=\"\(f(width - right + 44))\" y=\"\(f(ly + 4))\">\(escape(String(label(key).dropLast(3))))</text>\n"
    }
    s += "</svg>\n"
    return s
  }

  static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;")
  }
}
