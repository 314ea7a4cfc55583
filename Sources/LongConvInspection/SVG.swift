import Foundation
import LongConv
import LongConvIO
import LongConvLayers
import LongConvTensors

/// A small SVG writer: elements appended in drawing order, written as one UTF-8 file.
///
/// Numbers are written with at most two decimals and text is XML-escaped, so the document
/// is well-formed XML whatever the labels hold.
///
/// ```swift
/// var svg = SVGDocument(width: 200, height: 100)
/// svg.polyline([(10, 90), (190, 10)], stroke: "#c33")
/// svg.text("rising", x: 10, y: 20)
/// try svg.write(to: url)
/// ```
public struct SVGDocument {
  /// The drawing's size in pixels, also its `viewBox` (`0 0 width height`).
  public let width: Double, height: Double
  private var definitions: [String] = []
  private var elements: [String] = []

  /// An empty drawing of `width x height` pixels on a `background` (none when `nil`).
  public init(width: Double, height: Double, background: String? = "white") {
    self.width = width
    self.height = height
    if let background { rect(x: 0, y: 0, width: width, height: height, fill: background) }
  }

  /// Appends markup as it is (the caller escapes it).
  public mutating func append(_ markup: String) { elements.append(markup) }

  /// Appends markup to `<defs>`: gradients, clip paths, elements drawn by `<use>`.
  public mutating func define(_ markup: String) { definitions.append(markup) }

  /// Appends a `<rect>` of `width x height` pixels with its top-left corner at (`x`, `y`), filled with `fill`
  /// and outlined with `stroke` when given.
  public mutating func rect(
    x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil
  ) {
    let f = Self.number
    append(
      "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(width))\" height=\"\(f(height))\" fill=\"\(fill)\""
        + (stroke.map { " stroke=\"\($0)\"" } ?? "") + "/>")
  }

  /// Appends a `<line>` from `start` to `end`, `strokeWidth` pixels wide, dashed with the `stroke-dasharray`
  /// pattern `dash` when given.
  public mutating func line(
    from start: (x: Double, y: Double), to end: (x: Double, y: Double), stroke: String,
    strokeWidth: Double = 1, dash: String? = nil
  ) {
    let f = Self.number
    append(
      "<line x1=\"\(f(start.x))\" y1=\"\(f(start.y))\" x2=\"\(f(end.x))\" y2=\"\(f(end.y))\" "
        + "stroke=\"\(stroke)\" stroke-width=\"\(f(strokeWidth))\""
        + (dash.map { " stroke-dasharray=\"\($0)\"" } ?? "") + "/>")
  }

  /// Appends an unfilled `<polyline>` through `points` (in pixels), `strokeWidth` pixels wide.
  public mutating func polyline(_ points: [(x: Double, y: Double)], stroke: String, strokeWidth: Double = 1) {
    let list = points.map { "\(Self.number($0.x)),\(Self.number($0.y))" }.joined(separator: " ")
    append(
      "<polyline fill=\"none\" stroke=\"\(stroke)\" stroke-width=\"\(Self.number(strokeWidth))\" points=\"\(list)\"/>"
    )
  }

  /// Appends a `<circle>` of `radius` pixels centred at (`x`, `y`), filled with `fill`.
  public mutating func circle(x: Double, y: Double, radius: Double, fill: String) {
    let f = Self.number
    append("<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"\(f(radius))\" fill=\"\(fill)\"/>")
  }

  /// Text with its baseline at `y`; `anchor` is `start`, `middle` or `end`.
  public mutating func text(
    _ string: String, x: Double, y: Double, anchor: String = "start", size: Double? = nil,
    fill: String? = nil
  ) {
    let f = Self.number
    append(
      "<text x=\"\(f(x))\" y=\"\(f(y))\"" + (anchor == "start" ? "" : " text-anchor=\"\(anchor)\"")
        + (size.map { " font-size=\"\(f($0))\"" } ?? "") + (fill.map { " fill=\"\($0)\"" } ?? "")
        + ">\(Self.escape(string))</text>")
  }

  /// The complete document.
  public var markup: String {
    let f = Self.number
    var lines = [
      "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" "
        + "width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" "
        + "font-family=\"sans-serif\" font-size=\"12\">"
    ]
    if !definitions.isEmpty { lines += ["<defs>"] + definitions + ["</defs>"] }
    return (lines + elements + ["</svg>", ""]).joined(separator: "\n")
  }

  /// Writes the document to `url` atomically.
  public func write(to url: URL) throws {
    try AtomicFile.write(to: url) { sink in try Data(markup.utf8).withUnsafeBytes { try sink($0) } }
  }

  /// `value` with at most two decimals and no trailing zeros (`3`, `2.5`, `-0.13`).
  public static func number(_ value: Double) -> String {
    guard value.isFinite else { return "0" }
    var text = String(format: "%.2f", value)
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text.removeLast() }
    return text == "-0" ? "0" : text
  }

  /// `text` with `&`, `<`, `>` and `"` escaped for XML.
  public static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }
}

/// A rectangle of a drawing that maps data coordinates (`x` to the right, `y` up) to pixels,
/// with a frame and the ends of both ranges as labels.
public struct PlotArea {
  /// The rectangle in pixels.
  public let x: Double, y: Double, width: Double, height: Double
  /// The data shown; an empty range is widened so that the mapping stays finite.
  public let xRange: ClosedRange<Double>, yRange: ClosedRange<Double>

  /// An area of `width x height` pixels with its top-left corner at (`x`, `y`) showing `xRange` by `yRange`;
  /// a single-value range is widened by `±max(1e-3 |value|, 1e-9)` and a non-finite one becomes `0...1`.
  public init(
    x: Double, y: Double, width: Double, height: Double, xRange: ClosedRange<Double>,
    yRange: ClosedRange<Double>
  ) {
    (self.x, self.y, self.width, self.height) = (x, y, width, height)
    self.xRange = Self.widened(xRange)
    self.yRange = Self.widened(yRange)
  }

  /// The pixel column of data `x`.
  public func px(_ value: Double) -> Double {
    x + (value - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * width
  }

  /// The pixel row of data `y`.
  public func py(_ value: Double) -> Double {
    y + height - (value - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound) * height
  }

  /// Draws the frame, dashed lines at `yLines` inside the range (`y = 0` by default), the
  /// range ends as labels (`format`ted; `yLines` too when `labelLines`), `xLabel` below the
  /// frame and `yLabel` above it.
  public func drawAxes(
    in svg: inout SVGDocument, xLabel: String, yLabel: String, yLines: [Double] = [0],
    labelLines: Bool = false, format: (Double) -> String = { String(format: "%.3g", $0) },
    xFormat: (Double) -> String = { String(format: "%.0f", $0) }
  ) {
    svg.rect(x: x, y: y, width: width, height: height, fill: "none", stroke: "#bbb")
    for line in yLines where yRange.lowerBound < line && line < yRange.upperBound {
      svg.line(from: (x, py(line)), to: (x + width, py(line)), stroke: "#ccc", dash: "4 3")
      if labelLines && min(py(line) - y, y + height - py(line)) > 12 {
        svg.text(format(line), x: x - 4, y: py(line) + 4, anchor: "end", size: 10, fill: "#777")
      }
    }
    svg.text(format(yRange.upperBound), x: x - 4, y: y + 10, anchor: "end", size: 10)
    svg.text(format(yRange.lowerBound), x: x - 4, y: y + height, anchor: "end", size: 10)
    svg.text(xFormat(xRange.lowerBound), x: x, y: y + height + 14, size: 10)
    svg.text(xFormat(xRange.upperBound), x: x + width, y: y + height + 14, anchor: "end", size: 10)
    if !xLabel.isEmpty { svg.text(xLabel, x: x + width / 2, y: y + height + 14, anchor: "middle", size: 11) }
    if !yLabel.isEmpty { svg.text(yLabel, x: x, y: y - 6, size: 11) }
  }

  private static func widened(_ range: ClosedRange<Double>) -> ClosedRange<Double> {
    guard range.lowerBound.isFinite && range.upperBound.isFinite else { return 0...1 }
    if range.upperBound > range.lowerBound { return range }
    let pad = max(abs(range.lowerBound) * 1e-3, 1e-9)
    return (range.lowerBound - pad)...(range.upperBound + pad)
  }
}

/// A diverging colour scale symmetric around 0: blue for negative values, near-white at 0,
/// red for positive ones, saturating at `±limit`.
public struct DivergingColorScale: Sendable {
  /// The magnitude drawn at full colour (positive).
  public let limit: Double

  /// A scale saturating at `±limit`; a limit that is not positive and finite becomes 1.
  public init(limit: Double) { self.limit = limit > 0 && limit.isFinite ? limit : 1 }

  static let negative = (33.0, 102.0, 172.0), middle = (247.0, 247.0, 247.0), positive = (178.0, 24.0, 43.0)

  /// The colour of `value` as `#rrggbb`.
  public func color(_ value: Double) -> String {
    let s = value.isFinite ? min(max(value / limit, -1), 1) : 0
    let end = s < 0 ? Self.negative : Self.positive
    let a = abs(s)
    func channel(_ m: Double, _ e: Double) -> Int { Int((m + (e - m) * a).rounded()) }
    return String(
      format: "#%02x%02x%02x", channel(Self.middle.0, end.0), channel(Self.middle.1, end.1),
      channel(Self.middle.2, end.2))
  }

  /// A `<linearGradient>` with id `id`, for `<defs>`: `+limit` at the top, `-limit` at the bottom.
  public func gradientDefinition(id: String) -> String {
    """
    <linearGradient id="\(id)" x1="0" y1="0" x2="0" y2="1">\
    <stop offset="0" stop-color="\(color(limit))"/><stop offset="0.5" stop-color="\(color(0))"/>\
    <stop offset="1" stop-color="\(color(-limit))"/></linearGradient>
    """
  }
}
