import Foundation
import LongConv
import LongConvLayers
import LongConvTensors
import LongConvTestSupport
import Testing

/// A config reader for a JSON object written as a string.
func configReader(_ json: String) throws -> ConfigReader {
  try ConfigReader(JSONValue.parse(Data(json.utf8), source: "test"), file: "test.json")
}
