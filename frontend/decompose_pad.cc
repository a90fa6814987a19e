// Pad in modes reflect, edge and wrap as Gathers along the padded axes (see decompose_pad.h).
#include "frontend/decompose_pad.h"

#include <algorithm>
#include <optional>
#include <string>

#include "frontend/proto_rewriter.h"
#include "onnx/defs/tensor_proto_util.h"

namespace dsc {
namespace {

// Longest padded axis we build an index for: far beyond any real model, short of a 2^40 pad's bytes.
constexpr int64_t kMaxPaddedLength = int64_t{1} << 31;

std::optional<std::vector<int64_t>> ConstInts(const ModelTypes& types, const std::string& name) {
  const onnx::TensorProto* t = types.Constant(name);
  if (!t || t->data_type() != onnx::TensorProto::INT64 || t->dims_size() > 1 || t->has_data_location()) return std::nullopt;
  return onnx::ParseData<int64_t>(t);
}

// Where position j (0 at the axis's first element, negative in the begin padding) reads along an axis
// of size `len`: numpy.pad's edge, wrap and reflect.
int64_t SourceIndex(const std::string& mode, int64_t j, int64_t len) {
  if (mode == "edge") return std::clamp<int64_t>(j, 0, len - 1);
  if (mode == "wrap") return ((j % len) + len) % len;
  const int64_t last = len - 1, period = std::max<int64_t>(2 * last, 1);
  const int64_t m = (j < 0 ? -j : j) % period;
  return last - std::abs(last - m);
}

// The indices along an axis of size `len` padded by `begin` and `end` (negative: cropped first).
std::vector<int64_t> PadIndices(const std::string& mode, int64_t len, int64_t begin, int64_t end) {
  const int64_t crop_begin = std::max<int64_t>(-begin, 0), kept = len - crop_begin - std::max<int64_t>(-end, 0);
  std::vector<int64_t> idx;
  for (int64_t q = -std::max<int64_t>(begin, 0); q < kept + std::max<int64_t>(end, 0); ++q)
    idx.push_back(crop_begin + SourceIndex(mode, q, kept));
  return idx;
}

// The same indices computed by ONNX ops from scalar int64 tensors `len`, `begin`, `end`.
std::string PadIndexNodes(ProtoRewriter& r, const std::string& mode, const std::string& len, const std::string& begin,
                          const std::string& end) {
  const std::string zero = r.IntScalar(0), one = r.IntScalar(1);
  const std::string crop_begin = r.Add("Max", {r.Add("Neg", {begin}), zero});
  const std::string crop_end = r.Add("Max", {r.Add("Neg", {end}), zero});
  const std::string kept = r.Add("Sub", {r.Add("Sub", {len, crop_begin}), crop_end});
  const std::string q = r.Add("Range", {r.Add("Neg", {r.Add("Max", {begin, zero})}),
                                        r.Add("Add", {kept, r.Add("Max", {end, zero})}), one});
  std::string src;
  if (mode == "wrap") {
    src = r.Add("Mod", {q, kept});  // fmod = 0: the divisor's sign, so in [0, kept)
  } else {
    const std::string last = r.Add("Sub", {kept, one});
    if (mode == "edge") {
      src = r.Add("Min", {r.Add("Max", {q, zero}), last});
    } else {
      const std::string period = r.Add("Max", {r.Add("Add", {last, last}), one});
      const std::string m = r.Add("Mod", {r.Add("Abs", {q}), period});
      src = r.Add("Sub", {last, r.Add("Abs", {r.Add("Sub", {last, m})})});
    }
  }
  return r.Add("Add", {src, crop_begin});
}

}  // namespace

bool IsIndexedPad(const onnx::NodeProto& n) {
  if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.op_type() != "Pad") return false;
  const onnx::AttributeProto* mode = FindAttr(n, "mode");
  return mode && (mode->s() == "reflect" || mode->s() == "edge" || mode->s() == "wrap");
}

Status DecomposeIndexedPad(const onnx::NodeProto& n, int64_t opset, const ModelTypes& types,
                           std::vector<onnx::NodeProto>* out) {
  const std::string mode = FindAttr(n, "mode")->s();
  const std::string what = StrCat("node '", n.name().empty() ? n.output(0) : n.name(), "' (Pad, mode '", mode, "')");
  if (n.input_size() < 1 || n.input(0).empty() || n.output_size() != 1) return InvalidArgument(what, ": needs input data and one output");
  const std::string x = n.input(0);

  // The pads (an input from opset 11; dscompile reads opsets 13 and later): a constant, or computed.
  if (n.input_size() < 2 || n.input(1).empty()) return InvalidArgument(what, ": needs the input 'pads'");
  const std::string pads_input = n.input(1);
  const std::optional<std::vector<int64_t>> pads = ConstInts(types, pads_input);

  std::optional<int64_t> rank = types.Rank(x);
  std::vector<int64_t> axes;
  if (n.input_size() > 3 && !n.input(3).empty()) {
    std::optional<std::vector<int64_t>> a = ConstInts(types, n.input(3));
    if (!a) return Unimplemented(what, ": its 'axes' input '", n.input(3), "' is not a constant int64 list");
    axes = *a;
  } else {
    if (!rank && pads) rank = static_cast<int64_t>(pads->size() / 2);
    if (!rank) return Unimplemented(what, ": the rank of '", x, "' is unknown and the pads are computed");
    for (int64_t i = 0; i < *rank; ++i) axes.push_back(i);
  }
  for (int64_t& a : axes) {
    if (a < 0 && !rank) return Unimplemented(what, ": axis ", a, " counts from the end of '", x, "', whose rank is unknown");
    if (a < 0) a += *rank;
    if (a < 0 || (rank && a >= *rank)) return InvalidArgument(what, ": axis ", a, " is out of range for '", x, "'");
  }
  const size_t count = axes.size();
  if (pads && pads->size() != 2 * count)
    return InvalidArgument(what, ": ", pads->size(), " pads for ", count, " axes (needs ", 2 * count, ")");

  ProtoRewriter r(n, opset, out);
  std::string cur = x, shape;
  bool gathered = false;
  for (size_t k = 0; k < count; ++k) {
    const int64_t axis = axes[k];
    std::string idx;
    const std::optional<int64_t> len = types.Dim(x, static_cast<int>(axis));
    if (pads && (*pads)[k] == 0 && (*pads)[k + count] == 0) continue;
    if (pads && len) {
      const int64_t begin = (*pads)[k], end = (*pads)[k + count];
      const int64_t kept = *len - std::max<int64_t>(-begin, 0) - std::max<int64_t>(-end, 0);
      if (*len + begin + end > kMaxPaddedLength || kept < 0)
        return InvalidArgument(what, ": pads ", begin, " and ", end, " on axis ", axis, " of size ", *len);
      if (kept == 0 && (begin > 0 || end > 0))
        return InvalidArgument(what, ": axis ", axis, " of '", x, "' keeps no element, so there is nothing to repeat");
      idx = r.Ints(PadIndices(mode, *len, begin, end));
    } else {
      if (shape.empty()) shape = r.Add("Shape", {x});
      const std::string size = r.Add("Gather", {shape, r.IntScalar(axis)});
      const std::string begin = pads ? r.IntScalar((*pads)[k]) : r.Add("Gather", {pads_input, r.IntScalar(static_cast<int64_t>(k))});
      const std::string end = pads ? r.IntScalar((*pads)[k + count])
                                   : r.Add("Gather", {pads_input, r.IntScalar(static_cast<int64_t>(k + count))});
      idx = PadIndexNodes(r, mode, size, begin, end);
    }
    cur = r.Add("Gather", {cur, idx});
    r.SetInt("axis", axis);
    gathered = true;
  }
  if (gathered) {
    r.last().set_output(0, n.output(0));  // the last node added is the last axis's Gather
  } else {
    r.Add("Identity", {x}, n.output(0));
  }
  return Status::OK();
}

}  // namespace dsc
