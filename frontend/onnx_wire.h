// Parsing an ONNX model without copying its weights: the initializers' raw_data bytes are cut out
// of the serialized ModelProto before protobuf parses it (protobuf would copy them into strings),
// and are found again as byte ranges of the file, which the import maps.
//
//   ASSIGN_OR_RETURN(StrippedModel s, StripInitializerData(file->data(), file->size(), 1024));
//   model.ParseFromString(s.bytes);   // initializer s.ranges[k].initializer has no raw_data now
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/status.h"

namespace dsc {

struct RawDataRange {
  int initializer = 0;  // index into graph.initializer, in parse order
  int64_t offset = 0;   // of the raw_data bytes in the serialized model
  int64_t length = 0;
};

struct StrippedModel {
  std::string bytes;  // the ModelProto without the cut raw_data fields
  std::vector<RawDataRange> ranges;
};

// Cuts every initializer raw_data field of at least `min_bytes` bytes out of the ModelProto in
// data[0, size). Follows protobuf's wire format (a repeated graph field merges, a repeated
// raw_data field keeps the last: an earlier, small one before a cut one stays in the bytes, for the
// caller to clear); everything else is copied unchanged. DataLoss when the bytes are
// not a well-formed protobuf message.
StatusOr<StrippedModel> StripInitializerData(const uint8_t* data, int64_t size, int64_t min_bytes);

}  // namespace dsc
