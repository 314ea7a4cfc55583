import CCPUDispatch
import CConvolutionKernels
import Foundation
import Testing

@testable import LongConvTensors

/// The long convolution's transposes and spectral products (CConvolutionKernels) of every
/// instruction set this CPU runs: the transposes move values exactly (checked value by value
/// against their index formulas, over every width and length around the vector sizes, with
/// strides wider than the data and guards that must stay untouched), the products against the
/// complex arithmetic in Double; the short convolution's sums against the same sums in Double.
@Suite struct ConvolutionKernelsTests {
  static let available: [lck_isa] = [LCK_ISA_PORTABLE, LCK_ISA_AVX2, LCK_ISA_AVX512].filter {
    ConvolutionKernels.functions(for: $0) != nil
  }
  static let guardValue: Float = -7

  static func values(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in 2 * generator.nextUniform() - 1 }
  }

  @Test(arguments: available)
  func gatherAndScatterMoveEveryValue(_ isa: lck_isa) throws {
    let kernels = try #require(ConvolutionKernels.functions(for: isa))
    let name = String(cString: lck_isa_name(isa))
    for width in [1, 3, 4, 7, 8, 15, 16, 17] {
      for length in [0, 1, 5, 8, 15, 16, 17, 33, 40] {
        let (ld, stride, padded) = (width + 5, length + 13, length + 9)
        let x = Self.values(length * ld, seed: UInt64(31 * width + length))
        var rows = [Float](repeating: Self.guardValue, count: width * stride)
        x.withUnsafeBufferPointer { xp in
          rows.withUnsafeMutableBufferPointer {
            kernels.gather(xp.baseAddress, ld, length, width, $0.baseAddress, stride, padded)
          }
        }
        for r in 0..<width {
          for i in 0..<stride {
            let want = i < length ? x[i * ld + r] : i < padded ? 0 : Self.guardValue
            #expect(rows[r * stride + i] == want, "\(name) gather w \(width) L \(length): [\(r), \(i)]")
          }
        }

        // Scatter back, plain and with a skip term, into positions `ld` apart (the columns
        // beyond `width` must keep their guard).
        let skip = Self.values(width, seed: 7)
        let other = Self.values(length * ld, seed: 8)
        for withSkip in [false, true] {
          var y = [Float](repeating: Self.guardValue, count: length * ld)
          rows.withUnsafeBufferPointer { rp in
            y.withUnsafeMutableBufferPointer { yp in
              skip.withUnsafeBufferPointer { sp in
                other.withUnsafeBufferPointer { op in
                  kernels.scatter(
                    rp.baseAddress, stride, length, width, yp.baseAddress, ld,
                    withSkip ? sp.baseAddress : nil, op.baseAddress)
                }
              }
            }
          }
          for i in 0..<length {
            for r in 0..<ld {
              let at = i * ld + r
              let got = Double(y[at])
              if r >= width {
                #expect(y[at] == Self.guardValue, "\(name) scatter wrote column \(r) of \(width)")
              } else if withSkip {
                let want = Double(x[at]) + Double(skip[r]) * Double(other[at])
                // One product and one sum (fused or not): within a rounding of the terms.
                let bound = 2 * Double(Float.ulpOfOne) * (Swift.abs(Double(x[at])) + Swift.abs(want))
                #expect(
                  Swift.abs(got - want) <= bound, "\(name) scatter+skip w \(width) L \(length): [\(i), \(r)]")
              } else {
                #expect(y[at] == x[at], "\(name) scatter w \(width) L \(length): [\(i), \(r)]")
              }
            }
          }
        }
      }
    }
  }

  @Test(arguments: available)
  func productsMatchComplexArithmetic(_ isa: lck_isa) throws {
    let kernels = try #require(ConvolutionKernels.functions(for: isa))
    let name = String(cString: lck_isa_name(isa))
    let scale: Float = 1.0 / 48
    for count in 0...21 {
      let a = Self.values(2 * count, seed: UInt64(count) + 100)
      let b = Self.values(2 * count, seed: UInt64(count) + 200)
      let start = Self.values(2 * count, seed: UInt64(count) + 300)
      for conjugate in [false, true] {
        var out = [Float](repeating: Self.guardValue, count: 2 * count + 4)
        kernels.product(a, b, &out, count, scale, conjugate ? 1 : 0)
        var accumulated = start + [Float](repeating: Self.guardValue, count: 4)
        if conjugate { kernels.accumulate_conjugate_product(a, b, &accumulated, count) }
        for k in 0..<count {
          let (ar, ai) = (Double(a[2 * k]), Double(a[2 * k + 1]))
          let (br, bi) = (Double(b[2 * k]), conjugate ? -Double(b[2 * k + 1]) : Double(b[2 * k + 1]))
          let (re, im) = (ar * br - ai * bi, ar * bi + ai * br)
          // Each part is two products and a sum: within a few roundings of |a| |b|.
          let bound =
            4 * Double(Float.ulpOfOne) * (Swift.abs(ar) + Swift.abs(ai)) * (Swift.abs(br) + Swift.abs(bi))
          let s = Double(scale)
          #expect(Swift.abs(Double(out[2 * k]) - s * re) <= s * bound, "\(name) product n \(count) [\(k)].re")
          #expect(
            Swift.abs(Double(out[2 * k + 1]) - s * im) <= s * bound, "\(name) product n \(count) [\(k)].im")
          if conjugate {
            let (r0, i0) = (Double(start[2 * k]), Double(start[2 * k + 1]))
            let accumulatedBound =
              bound + 2 * Double(Float.ulpOfOne) * (Swift.abs(r0) + Swift.abs(i0) + bound)
            #expect(
              Swift.abs(Double(accumulated[2 * k]) - (r0 + re)) <= accumulatedBound,
              "\(name) accumulate [\(k)].re")
            #expect(
              Swift.abs(Double(accumulated[2 * k + 1]) - (i0 + im)) <= accumulatedBound,
              "\(name) accumulate [\(k)].im")
          }
        }
        #expect(
          out[(2 * count)...].allSatisfy { $0 == Self.guardValue }, "\(name) product wrote past the end")
        #expect(
          accumulated[(2 * count)...].allSatisfy { $0 == Self.guardValue },
          "\(name) accumulate wrote past the end")
      }
    }
  }

  /// The DFT of `x` in Double: `X[k] = sum_n x[n] exp(-2 pi i k n / N)` for `k < count`.
  static func dft(_ re: [Double], _ im: [Double], count: Int) -> [(Double, Double)] {
    let n = re.count
    return (0..<count).map { k in
      var (sr, si) = (0.0, 0.0)
      for j in 0..<n {
        let angle = -2 * Double.pi * Double(k * j % n) / Double(n)
        let (c, s) = (Foundation.cos(angle), Foundation.sin(angle))
        sr += re[j] * c - im[j] * s
        si += re[j] * s + im[j] * c
      }
      return (sr, si)
    }
  }

  /// Unpacking turns the DFT of a real row read as half as many complex values into the real
  /// DFT, and packing turns the real DFT into twice that half-size DFT: both against the DFTs in
  /// Double, for every half size 1 ... 40 (the vector runs, the pairs left in the middle, and
  /// k = 0), three rows `half + 3` apart, the slots past each row untouched.
  @Test(arguments: available)
  func realSpectraUnpackAndPack(_ isa: lck_isa) throws {
    let kernels = try #require(ConvolutionKernels.functions(for: isa))
    let name = String(cString: lck_isa_name(isa))
    for half in 1...40 {
      let (n, rows, rowStride) = (2 * half, 3, half + 3)
      let twiddles = FFT.twiddles(size: n)
      var unpacked = [Float](repeating: Self.guardValue, count: 2 * rows * rowStride)
      var packed = unpacked
      var wantReal: [[(Double, Double)]] = []
      var wantHalf: [[(Double, Double)]] = []
      var scale: [Double] = []
      for r in 0..<rows {
        let x = Self.values(n, seed: UInt64(100 * half + r)).map(Double.init)
        let evens = stride(from: 0, to: n, by: 2).map { x[$0] }
        let odds = stride(from: 1, to: n, by: 2).map { x[$0] }
        let z = Self.dft(evens, odds, count: half)
        let real = Self.dft(x, [Double](repeating: 0, count: n), count: half + 1)
        for k in 0..<half {
          unpacked[2 * (r * rowStride + k)] = Float(z[k].0)
          unpacked[2 * (r * rowStride + k) + 1] = Float(z[k].1)
        }
        for k in 0...half {
          packed[2 * (r * rowStride + k)] = Float(real[k].0)
          packed[2 * (r * rowStride + k) + 1] = Float(real[k].1)
        }
        wantReal.append(real)
        wantHalf.append(z)
        scale.append(x.reduce(0) { $0 + Swift.abs($1) })
      }
      kernels.unpack_real_spectra(&unpacked, rows, rowStride, half, twiddles)
      kernels.pack_real_spectra(&packed, rows, rowStride, half, twiddles)
      for r in 0..<rows {
        // Inputs rounded to Float and a few operations per value: within a few roundings of
        // sum |x|, the size of every DFT value here.
        let bound = 8 * Double(Float.ulpOfOne) * scale[r]
        for k in 0...half {
          let (re, im) = (
            Double(unpacked[2 * (r * rowStride + k)]), Double(unpacked[2 * (r * rowStride + k) + 1])
          )
          #expect(
            Swift.abs(re - wantReal[r][k].0) <= bound, "\(name) unpack half \(half) row \(r) X[\(k)].re")
          #expect(
            Swift.abs(im - wantReal[r][k].1) <= bound, "\(name) unpack half \(half) row \(r) X[\(k)].im")
        }
        for k in 0..<half {
          let (re, im) = (
            Double(packed[2 * (r * rowStride + k)]), Double(packed[2 * (r * rowStride + k) + 1])
          )
          #expect(
            Swift.abs(re - 2 * wantHalf[r][k].0) <= 2 * bound, "\(name) pack half \(half) row \(r) Z[\(k)].re"
          )
          #expect(
            Swift.abs(im - 2 * wantHalf[r][k].1) <= 2 * bound, "\(name) pack half \(half) row \(r) Z[\(k)].im"
          )
        }
        for k in (half + 1)..<rowStride {
          for part in 0..<2 {
            #expect(
              unpacked[2 * (r * rowStride + k) + part] == Self.guardValue, "\(name) unpack wrote past X[half]"
            )
            #expect(
              packed[2 * (r * rowStride + k) + part] == Self.guardValue, "\(name) pack wrote past X[half]")
          }
        }
      }
    }
  }

  /// `tap_sums` (both directions, with and without bias and skip) and `tap_gradient_sums` over a
  /// range of rows that starts and ends inside sequences, for channel counts around the vector
  /// widths, against the sums in Double (relative `1e-5` of the sum of magnitudes); rows outside
  /// the range stay untouched.
  @Test(arguments: available)
  func shortConvolutionSums(_ isa: lck_isa) throws {
    let kernels = try #require(ConvolutionKernels.functions(for: isa))
    let name = String(cString: lck_isa_name(isa))
    let (length, sequences, lags) = (9, 3, 4)
    let rows = length * sequences
    let (row0, row1) = (5, 23)
    for channels in [1, 5, 8, 16, 19, 33] {
      let v = Self.values(rows * channels, seed: UInt64(channels))
      let g = Self.values(rows * channels, seed: UInt64(channels) + 100)
      let taps = Self.values(lags * channels, seed: 3)
      let (bias, skip) = (Self.values(channels, seed: 4), Self.values(channels, seed: 5))
      func close(_ got: Float, _ want: Double, _ magnitude: Double) -> Bool {
        abs(Double(got) - want) <= 1e-5 * magnitude
      }
      for anticausal in [false, true] {
        for (withBias, withSkip) in [(false, false), (true, true), (true, false)] {
          let combination = "bias \(withBias) skip \(withSkip)"
          var out = [Float](repeating: Self.guardValue, count: rows * channels)
          kernels.tap_sums(
            v, &out, row0, row1, length, channels, taps, lags, anticausal ? 1 : 0,
            withBias ? bias : nil, withSkip ? skip : nil)
          for row in 0..<rows {
            for c in 0..<channels {
              let got = out[row * channels + c]
              guard (row0..<row1).contains(row) else {
                #expect(got == Self.guardValue, "\(name) tap_sums wrote row \(row)")
                continue
              }
              var terms = [
                withBias ? Double(bias[c]) : 0, withSkip ? Double(skip[c] * v[row * channels + c]) : 0,
              ]
              let position = row % length
              for k in 0..<lags {
                let other = anticausal ? position + k : position - k
                if other < 0 || other >= length { continue }
                terms.append(
                  Double(taps[k * channels + c]) * Double(v[(row - position + other) * channels + c]))
              }
              let want = terms.reduce(0, +)
              #expect(
                close(got, want, terms.reduce(0) { $0 + abs($1) }),
                "\(name) tap_sums D \(channels) anticausal \(anticausal) \(combination) [\(row), \(c)]"
              )
            }
          }
        }
      }
      for withBias in [false, true] {
        var sums = [Float](repeating: .nan, count: lags * channels)
        var biasSums = [Float](repeating: .nan, count: channels)
        biasSums.withUnsafeMutableBufferPointer { bp in
          kernels.tap_gradient_sums(
            g, v, row0, row1, length, channels, lags, &sums, withBias ? bp.baseAddress : nil)
        }
        for c in 0..<channels {
          for k in 0..<lags {
            let terms = (row0..<row1).filter { $0 % length >= k }.map {
              Double(g[$0 * channels + c]) * Double(v[($0 - k) * channels + c])
            }
            #expect(
              close(sums[k * channels + c], terms.reduce(0, +), terms.reduce(0) { $0 + abs($1) }),
              "\(name) tap_gradient_sums D \(channels) [\(k), \(c)]")
          }
          if withBias {
            let terms = (row0..<row1).map { Double(g[$0 * channels + c]) }
            #expect(
              close(biasSums[c], terms.reduce(0, +), terms.reduce(0) { $0 + abs($1) }),
              "\(name) bias sums D \(channels) [\(c)]")
          } else {
            #expect(biasSums[c].isNaN, "\(name): bias sums written without being asked")
          }
        }
      }
    }
  }
}
