// Protobuf wire-format walk of ModelProto -> GraphProto -> TensorProto that cuts raw_data out.
#include "frontend/onnx_wire.h"

namespace dsc {
namespace {

// Field numbers in onnx.proto.
constexpr uint32_t kModelGraph = 7;
constexpr uint32_t kGraphInitializer = 5;
constexpr uint32_t kTensorRawData = 9;

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5 };

class Reader {
 public:
  Reader(const uint8_t* base, int64_t begin, int64_t end) : base_(base), pos_(begin), end_(end) {}
  bool done() const { return pos_ >= end_; }
  int64_t pos() const { return pos_; }

  Status Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= end_) return DataLoss("truncated varint at byte ", pos_);
      const uint8_t b = base_[pos_++];
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return Status::OK();
    }
    return DataLoss("varint longer than 10 bytes at byte ", pos_);
  }

  // Skips the value of a field of `type` (the tag is read); for length-delimited fields sets
  // [*vbegin, *vend) to the payload.
  Status Skip(uint32_t type, int64_t* vbegin, int64_t* vend, uint32_t field = 0, int depth = 0) {
    uint64_t n = 0;
    switch (type) {
      case kVarint: return Varint(&n);
      case kFixed64: n = 8; break;
      case kFixed32: n = 4; break;
      case kLengthDelimited:
        RETURN_IF_ERROR(Varint(&n));
        *vbegin = pos_;
        break;
      case kStartGroup: return SkipGroup(field, depth);
      default: return DataLoss("unexpected wire type ", type, " at byte ", pos_);
    }
    if (n > static_cast<uint64_t>(end_ - pos_)) return DataLoss("field of ", n, " bytes overruns its message at byte ", pos_);
    pos_ += static_cast<int64_t>(n);
    *vend = pos_;
    return Status::OK();
  }

  // A (deprecated) group: fields up to the end-group tag of the same field number.
  Status SkipGroup(uint32_t field, int depth) {
    if (depth > 64) return DataLoss("groups nested too deeply at byte ", pos_);
    while (pos_ < end_) {
      uint64_t tag = 0;
      RETURN_IF_ERROR(Varint(&tag));
      const uint32_t f = static_cast<uint32_t>(tag >> 3), t = static_cast<uint32_t>(tag & 7);
      if (t == kEndGroup) {
        if (f != field) return DataLoss("mismatched end of group at byte ", pos_);
        return Status::OK();
      }
      int64_t vb = 0, ve = 0;
      RETURN_IF_ERROR(Skip(t, &vb, &ve, f, depth + 1));
    }
    return DataLoss("unterminated group");
  }

 private:
  const uint8_t* base_;
  int64_t pos_, end_;
};

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Copies the message in [begin, end) to *out; each length-delimited field `descend` accepts is
// rewritten by it (it appends the new payload, or returns false to drop the field).
template <typename Descend>
Status Rewrite(const uint8_t* base, int64_t begin, int64_t end, std::string* out, Descend descend) {
  Reader r(base, begin, end);
  while (!r.done()) {
    const int64_t field_start = r.pos();
    uint64_t tag = 0;
    RETURN_IF_ERROR(r.Varint(&tag));
    const uint32_t field = static_cast<uint32_t>(tag >> 3), type = static_cast<uint32_t>(tag & 7);
    if (field == 0) return DataLoss("field number 0 at byte ", field_start);
    int64_t vb = 0, ve = 0;
    RETURN_IF_ERROR(r.Skip(type, &vb, &ve, field));
    std::string payload;
    bool keep = true;
    bool rewritten = false;
    if (type == kLengthDelimited) {
      ASSIGN_OR_RETURN(rewritten, descend(field, vb, ve, &payload, &keep));
    }
    if (!keep) continue;
    if (!rewritten) {
      out->append(reinterpret_cast<const char*>(base + field_start), static_cast<size_t>(r.pos() - field_start));
      continue;
    }
    PutVarint(tag, out);
    PutVarint(payload.size(), out);
    out->append(payload);
  }
  return Status::OK();
}

}  // namespace

StatusOr<StrippedModel> StripInitializerData(const uint8_t* data, int64_t size, int64_t min_bytes) {
  StrippedModel m;
  m.bytes.reserve(static_cast<size_t>(std::min<int64_t>(size, 64 << 20)));
  int initializer = 0;
  auto tensor = [&](uint32_t field, int64_t vb, int64_t ve, std::string*, bool* keep) -> StatusOr<bool> {
    if (field != kTensorRawData) return false;
    // A later raw_data field replaces an earlier one (protobuf's rule for a repeated scalar).
    if (!m.ranges.empty() && m.ranges.back().initializer == initializer) m.ranges.pop_back();
    if (ve - vb >= min_bytes) {
      m.ranges.push_back({initializer, vb, ve - vb});
      *keep = false;
    }
    return false;
  };
  auto graph = [&](uint32_t field, int64_t vb, int64_t ve, std::string* payload, bool*) -> StatusOr<bool> {
    if (field != kGraphInitializer) return false;
    RETURN_IF_ERROR(Rewrite(data, vb, ve, payload, tensor));
    ++initializer;
    return true;
  };
  auto model = [&](uint32_t field, int64_t vb, int64_t ve, std::string* payload, bool*) -> StatusOr<bool> {
    if (field != kModelGraph) return false;
    RETURN_IF_ERROR(Rewrite(data, vb, ve, payload, graph));
    return true;
  };
  RETURN_IF_ERROR(Rewrite(data, 0, size, &m.bytes, model));
  return m;
}

}  // namespace dsc
