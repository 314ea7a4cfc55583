import Foundation
import LongConv
import LongConvIO
import LongConvLayers
import LongConvTensors

/// SVG drawings of a kernel's coefficients: its Toeplitz matrices and its impulse responses.
public enum KernelPlots {
  /// Line colours for overlaid channels, in order.
  static let palette = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  ]

  /// The Toeplitz matrix `T[i][j] = t[i - j]` of each channel in `channels`, side by side, each
  /// averaged to at most `maxCells` cells a side (``KernelResponse/toeplitz(channel:maxCells:)``)
  /// and coloured on a diverging scale saturating at its own largest magnitude, shown on its
  /// colour bar.
  ///
  /// A panel stays small whatever the length: each cell diagonal is one `<rect>` of a strip
  /// defined once, and each row of cells is that strip shifted (`<use>`), clipped to the matrix.
  public static func toeplitz(
    _ response: KernelResponse, channels: [Int], title: String, maxCells: Int = 128
  ) -> SVGDocument {
    let side = 256.0
    let (panelWidth, panelHeight) = (side + 110, side + 64)
    let columns = Int(Double(channels.count).squareRoot().rounded(.up))
    let rows = (channels.count + columns - 1) / max(columns, 1)
    var svg = SVGDocument(
      width: max(Double(columns) * panelWidth + 20, 480), height: Double(rows) * panelHeight + 60)
    svg.define(DivergingColorScale(limit: 1).gradientDefinition(id: "diverging"))
    svg.text(title, x: 10, y: 20, size: 14)
    svg.text(
      "T[i][j] = t[i - j], rows i (output) and columns j (input) 0 ... \(response.length - 1)"
        + (response.direction == .causal ? ", zero above the diagonal" : ""), x: 10, y: 38, size: 11)
    let labels = channelLabels(response, channels)
    for (p, channel) in channels.enumerated() {
      let sample = response.toeplitz(channel: channel, maxCells: maxCells)
      let scale = DivergingColorScale(limit: sample.maxMagnitude)
      let (x, y) = (20 + Double(p % columns) * panelWidth, 52 + Double(p / columns) * panelHeight)
      svg.text(labels[p], x: x, y: y + 14, size: 11)
      let top = y + 22

      // One strip of the cell diagonals, lag d at x = -d; row I is the strip moved to x = I.
      var strip = "<g id=\"strip\(p)\">"
      for d in 1 - sample.cells..<sample.cells {
        let color = scale.color(sample.diagonals[d + sample.cells - 1])
        strip += "<rect x=\"\(-d)\" width=\"1\" height=\"1\" fill=\"\(color)\"/>"
      }
      svg.define(strip + "</g>")
      let f = SVGDocument.number
      svg.define(
        "<clipPath id=\"clip\(p)\"><rect x=\"\(f(x))\" y=\"\(f(top))\" "
          + "width=\"\(f(side))\" height=\"\(f(side))\"/></clipPath>")
      var matrix =
        "<g clip-path=\"url(#clip\(p))\"><g transform=\"translate(\(f(x)),\(f(top))) "
        + "scale(\(f(side / Double(sample.cells))))\" shape-rendering=\"crispEdges\">"
      for row in 0..<sample.cells { matrix += "<use xlink:href=\"#strip\(p)\" x=\"\(row)\" y=\"\(row)\"/>" }
      svg.append(matrix + "</g></g>")
      svg.rect(x: x, y: top, width: side, height: side, fill: "none", stroke: "#bbb")
      svg.text(
        sample.stride == 1
          ? "\(sample.cells) x \(sample.cells) cells"
          : "\(sample.cells) x \(sample.cells) cells, means of \(sample.stride) x \(sample.stride) blocks",
        x: x, y: top + side + 14, size: 10)

      // Colour bar.
      let barX = x + side + 10
      svg.rect(x: barX, y: top, width: 10, height: side, fill: "url(#diverging)", stroke: "#bbb")
      let limit = String(format: "%.3g", scale.limit)
      svg.text("+" + limit, x: barX + 14, y: top + 9, size: 10)
      svg.text("0", x: barX + 14, y: top + side / 2 + 4, size: 10)
      svg.text("-" + limit, x: barX + 14, y: top + side, size: 10)
    }
    return svg
  }

  /// The impulse responses `t[k]` of `channels` against the lag `k`, overlaid, above a second
  /// panel with `|t[k]|` on a logarithmic scale (decays show as slopes there).
  public static func impulse(_ response: KernelResponse, channels: [Int], title: String) -> SVGDocument {
    var svg = SVGDocument(width: 780, height: 580)
    svg.text(title, x: 10, y: 20, size: 14)
    let lags = Array(response.lags)
    let xRange = Double(lags.first!)...Double(lags.last!)
    let values = channels.flatMap { c in lags.map { response.coefficient(channel: c, lag: $0) } }
    let linear = PlotArea(
      x: 80, y: 66, width: 540, height: 200, xRange: xRange, yRange: (values.min() ?? 0)...(values.max() ?? 0)
    )
    linear.drawAxes(in: &svg, xLabel: "lag k", yLabel: "t[k]")

    // |t| on a log scale, floored 10 decades below the peak so that zeros stay drawable.
    let peak = values.map(abs).max() ?? 0
    let floor = peak * 1e-10
    let smallest = values.map(abs).filter { $0 > floor }.min() ?? floor
    let logarithmic = PlotArea(
      x: 80, y: 336, width: 540, height: 200, xRange: xRange,
      yRange: log10(max(smallest, floor))...log10(peak))
    let decades = Array(
      stride(from: logarithmic.yRange.lowerBound.rounded(.up), through: logarithmic.yRange.upperBound, by: 1))
    logarithmic.drawAxes(
      in: &svg, xLabel: "lag k", yLabel: "|t[k]| (log scale)",
      yLines: decades.filter { Int($0) % ((decades.count + 7) / 8) == 0 }, labelLines: true,
      format: { String(format: "%.2g", pow(10, $0)) })

    for (p, channel) in channels.enumerated() {
      let color = palette[p % palette.count]
      let t = lags.map { response.coefficient(channel: channel, lag: $0) }
      svg.polyline(zip(lags, t).map { (linear.px(Double($0)), linear.py($1)) }, stroke: color)
      if peak > 0 {
        svg.polyline(
          zip(lags, t).map { (logarithmic.px(Double($0)), logarithmic.py(log10(max(abs($1), floor)))) },
          stroke: color)
      }
      let y = 80 + Double(p) * 18
      svg.line(from: (636, y - 4), to: (656, y - 4), stroke: color, strokeWidth: 2)
      svg.text("channel \(channel)", x: 662, y: y, size: 11)
    }
    if peak == 0 { svg.text("all coefficients are 0", x: 100, y: 436) }
    return svg
  }

  /// `channel c: norm x (largest)` for each drawn channel.
  static func channelLabels(_ response: KernelResponse, _ channels: [Int]) -> [String] {
    let norms = response.norms
    return channels.map { c in
      let rank = norms.filter { $0 > norms[c] }.count
      let note =
        rank == 0 ? "largest" : rank == norms.count - 1 ? "smallest" : "rank \(rank + 1) of \(norms.count)"
      return "channel \(c): norm \(String(format: "%.3g", norms[c])) (\(note))"
    }
  }
}

/// Why an inspection could not be written.
public enum InspectionError: Error, CustomStringConvertible {
  /// The output path exists and is not a directory.
  case notADirectory(path: String)
  /// A file or the directory could not be written.
  case cannotWrite(path: String, reason: String)
  /// A layer's kernel could not produce its coefficients (a ``LongConv/KernelError``, usually).
  case kernel(layer: Int, error: any Error)

  /// The path or the layer, then what went wrong (`<path>: exists and is not a directory`,
  /// `layer <i>: <kernel error>`).
  public var description: String {
    switch self {
    case .notADirectory(let path): "\(path): exists and is not a directory"
    case .cannotWrite(let path, let reason): "\(path): cannot write (\(reason))"
    case .kernel(let layer, let error): "layer \(layer): \(error)"
    }
  }
}

/// Drawings of every layer's kernel of a model, written into a directory.
public enum ModelInspection {
  /// The length drawn when none is asked for: the model's `max_length`, at most `cap`.
  public static func defaultLength(of model: any SequenceModel, cap: Int = 1024) -> Int {
    min(model.maxLength, cap)
  }

  /// Writes, for each layer `i` whose mixer is a ``LongConv/LongConvMixer``, `layer-<i>-toeplitz.svg`
  /// and `layer-<i>-impulse.svg` (``KernelPlots``) for `channels` representative channels at
  /// sequence length `length`, then `index.html` showing them all. Creates `directory` when
  /// the first file is ready and replaces only those files. Calls `wrote` after each file;
  /// returns them all.
  ///
  /// - Throws: ``InspectionError``; a length a kernel cannot produce is
  ///   ``InspectionError/kernel(layer:error:)`` around the kernel's ``LongConv/KernelError``.
  @discardableResult
  public static func write(
    _ model: any SequenceModel, to directory: URL, length: Int, channels: Int = 4, maxCells: Int = 128,
    title: String, wrote: (URL) -> Void = { _ in }
  ) throws -> [URL] {
    precondition(length >= 1 && channels >= 1 && maxCells >= 1, "ModelInspection: bad sizes")
    var isDirectory: ObjCBool = false
    var exists = FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory)
    guard !exists || isDirectory.boolValue else { throw InspectionError.notADirectory(path: directory.path) }
    var written: [URL] = []
    func save(_ text: String, _ name: String) throws {
      let url = directory.appendingPathComponent(name)
      do {
        if !exists {
          try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        exists = true
        try AtomicFile.write(to: url) { sink in try Data(text.utf8).withUnsafeBytes { try sink($0) } }
      } catch {
        throw InspectionError.cannotWrite(path: url.path, reason: error.localizedDescription)
      }
      written.append(url)
      wrote(url)
    }

    let esc = SVGDocument.escape
    var html = """
      <!DOCTYPE html>
      <html><head><meta charset="utf-8"><title>\(esc(title))</title>
      <style>body{font-family:sans-serif;margin:1em 2em} img{max-width:100%;vertical-align:top;margin:4px}</style>
      </head><body>
      <h1>Kernels of \(esc(title))</h1>
      <p>\(model.blocks.count) layers, sequence length \(length). Toeplitz matrices show the kernel's
      coefficients only (a skip, if the kernel has one, adds to the diagonal and is not drawn).</p>

      """
    for (i, block) in model.blocks.enumerated() {
      let mixer = esc(String(describing: type(of: block.mixer)))
      guard let kernel = block.mixer.longConvKernel else {
        html += "<h2>Layer \(i): \(mixer)</h2>\n<p>No long-convolution kernel; not drawn.</p>\n"
        continue
      }
      let response: KernelResponse
      do {
        response = try KernelResponse(kernel: kernel, length: length)
      } catch {
        throw InspectionError.kernel(layer: i, error: error)
      }
      let picked = response.representativeChannels(count: channels)
      let heading =
        "layer \(i): \(response.kernelName) kernel, \(response.channels) channels, \(response.direction.rawValue), L = \(length)"
      let toeplitz = "layer-\(i)-toeplitz.svg"
      let impulse = "layer-\(i)-impulse.svg"
      try save(
        KernelPlots.toeplitz(response, channels: picked, title: heading, maxCells: maxCells).markup, toeplitz)
      try save(KernelPlots.impulse(response, channels: picked, title: heading).markup, impulse)
      html += """
        <h2>Layer \(i): \(mixer)</h2>
        <p>\(esc(heading))\(kernel.skip == nil ? "" : "; with a skip"). Channels \(picked.map(String.init).joined(separator: ", ")).</p>
        <p><a href="\(toeplitz)"><img src="\(toeplitz)" alt="Toeplitz matrices of layer \(i)"></a>
        <a href="\(impulse)"><img src="\(impulse)" alt="impulse responses of layer \(i)"></a></p>

        """
    }
    try save(html + "</body></html>\n", "index.html")
    return written
  }
}
