// ONNX's type constraints checked node by node, with half precision admitted wherever float is.
#include "ir/type_constraints.h"

#include <algorithm>
#include <map>

#include "onnx/defs/data_type_utils.h"
#include "onnx/defs/schema.h"
#include "ir/onnx_convert.h"

namespace dsc {
namespace {

using Formal = onnx::OpSchema::FormalParameter;

// The formal parameter of input/output i: variadic tails repeat the last one (ONNX's rule).
const Formal* FormalAt(const std::vector<Formal>& params, size_t i) {
  if (params.empty()) return nullptr;
  return i < params.size() ? &params[i] : &params.back();
}

onnx::DataType TensorTypeString(DType t) {
  onnx::TypeProto proto;
  TypeToOnnx(TensorType{t, std::nullopt}, &proto);
  return onnx::Utils::DataTypeUtils::ToType(proto);
}

std::string AdmittedList(const Formal& f) {
  std::vector<std::string> names;
  for (onnx::DataType d : f.GetTypes()) names.push_back(*d);
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

bool AdmitsDType(const onnx::DataTypeSet& admitted, DType t) {
  if (admitted.empty() || admitted.count(TensorTypeString(t))) return true;
  return IsHalf(t) && admitted.count(TensorTypeString(DType::kFloat32));
}

Status CheckTypeConstraints(const Graph& g, const std::function<DType(const Value*)>& type_of) {
  auto opset = g.opsets.find("");
  if (opset == g.opsets.end()) return Status::OK();
  for (const auto& n : g.nodes()) {
    if (!n->domain().empty() && n->domain() != "ai.onnx") continue;
    const onnx::OpSchema* s = onnx::OpSchemaRegistry::Schema(n->op_type(), static_cast<int>(opset->second), "");
    if (!s) continue;
    std::map<std::string, std::pair<onnx::DataType, std::string>> bound;  // type parameter -> (type, who bound it)
    auto check = [&](const Value* v, const Formal* f, const char* kind, size_t i) -> Status {
      if (!v || !f) return Status::OK();
      const DType t = type_of(v);
      if (t == DType::kUndefined) return Status::OK();
      const onnx::DataType actual = TensorTypeString(t);
      const std::string who = StrCat(kind, " ", i, " ('", f->GetName(), "', value '", v->name(), "')");
      if (!AdmitsDType(f->GetTypes(), t))
        return InvalidArgument(n->Describe(), ": ", who, " is ", *actual, ", which ", n->op_type(), "-",
                               s->since_version(), " does not take (", f->GetTypeStr(), " is one of ",
                               AdmittedList(*f), ")");
      if (!f->GetIsHomogeneous()) return Status::OK();
      auto [it, fresh] = bound.emplace(f->GetTypeStr(), std::make_pair(actual, who));
      if (!fresh && it->second.first != actual)
        return InvalidArgument(n->Describe(), ": ", who, " is ", *actual, " but ", it->second.second, " is ",
                               *it->second.first, ", and both are of type ", f->GetTypeStr());
      return Status::OK();
    };
    for (size_t i = 0; i < n->num_inputs(); ++i)
      RETURN_IF_ERROR(check(n->input(i), FormalAt(s->inputs(), i), "input", i));
    for (size_t i = 0; i < n->num_outputs(); ++i)
      RETURN_IF_ERROR(check(n->output(i), FormalAt(s->outputs(), i), "output", i));
  }
  return Status::OK();
}

}  // namespace dsc
