// Merged/duplicated parameter detection.
//
// Three signs, from the file's own record or from the graph:
//  - torch.export's graph signature lists parameters that have no initializer (the dynamo
//    exporter's optimizer merged initializers with equal values, e.g. LayerNorm weights of ones);
//  - one initializer is the scale or bias of several normalisation layers (the same merge, seen in
//    the graph when the file has no signature; not checked when a complete PyTorch parameter list
//    says the sharing is PyTorch's own module reuse);
//  - one 2-D initializer is exactly the transpose of another (the legacy exporter's constant
//    folding of Transpose(weight) copies a parameter that is also used untransposed);
//  - without a parameter list: one initializer is both a Gather table and a MatMul/Gemm weight
//    (PyTorch ties these in GPT-2-style models, which is fine, but an exporter can also merge them).
#include "passes/merged_parameters.h"

#include <cstring>
#include <map>
#include <set>

#include "ir/dsc_ops.h"

namespace dsc {
namespace {

constexpr const char* kDynamoAdvice =
    "re-export with torch.onnx.export(..., dynamo=True, optimize=False) or with tools/export_for_training.py, "
    "which keeps one initializer per PyTorch parameter";
constexpr const char* kLegacyAdvice =
    "re-export with torch.onnx.export(..., dynamo=False, do_constant_folding=False), with dynamo=True, or with "
    "tools/export_for_training.py";

bool IsNormalization(const std::string& op) {
  static const std::set<std::string> ops = {"LayerNormalization",    "BatchNormalization", "RMSNormalization",
                                            "GroupNormalization",    "InstanceNormalization",
                                            "SimplifiedLayerNormalization", "SkipLayerNormalization"};
  return ops.count(op) > 0;
}

// Whether b holds a's 2-D float data transposed.
bool IsTransposeOf(const Tensor& a, const Tensor& b) {
  if (a.rank() != 2 || b.rank() != 2 || a.dtype() != b.dtype() || a.dtype() != DType::kFloat32) return false;
  const int64_t r = a.dims()[0], c = a.dims()[1];
  if (b.dims()[0] != c || b.dims()[1] != r || r == c || !a.raw() || !b.raw()) return false;
  // Bytes, not floats: weights borrowed from a model file need not be aligned, and a typed read
  // would copy them (Tensor::data); most pairs differ in their first element.
  const uint8_t* x = a.raw();
  const uint8_t* y = b.raw();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j)
      if (std::memcmp(x + 4 * (i * c + j), y + 4 * (j * r + i), sizeof(float)) != 0) return false;
  return true;
}

// Follows Transpose/Identity/StopGradient/Cast chains from an initializer to the ops that really consume it.
void RealConsumers(const Value* v, std::vector<const Node*>* out, int depth = 0) {
  for (const Use& u : v->uses()) {
    const std::string& op = u.node->op_type();
    const bool pass_through = op == "Transpose" || op == "Identity" || op == "Cast" || ops::IsStopGradient(*u.node);
    if (depth < 4 && pass_through && u.node->num_outputs() == 1)
      RealConsumers(u.node->output(0), out, depth + 1);
    else
      out->push_back(u.node);
  }
}

}  // namespace

std::string QuotedNames(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += StrCat(i ? ", " : "", "'", names[i], "'");
  return s;
}

std::vector<std::string> MergedParameterWarnings(const Graph& g, const std::vector<std::string>& trainable,
                                                 const std::vector<std::string>& missing,
                                                 const std::vector<std::string>& unread, bool have_torch_list) {
  std::vector<std::string> warnings;
  if (!missing.empty())
    warnings.push_back(StrCat(missing.size(), " PyTorch parameter", missing.size() == 1 ? " has" : "s have",
                              " no initializer of their own in this file (", QuotedNames(missing),
                              "): the exporter's optimizer merged or folded them, so they cannot train as in "
                              "PyTorch; ", kDynamoAdvice));

  if (!unread.empty())
    warnings.push_back(StrCat(unread.size(), " PyTorch parameter", unread.size() == 1 ? " is" : "s are",
                              " read by no node of this file, whose exporter's optimizer ran (", QuotedNames(unread),
                              "): a parameter PyTorch ties to another (an LM head sharing its embedding table) trains "
                              "as that tensor, as in PyTorch; one whose reading computations the optimizer merged "
                              "with another parameter's does not train as in PyTorch; to be sure, ", kDynamoAdvice));

  // A PyTorch parameter list with nothing missing accounts for every parameter (the export helper
  // refuses merges; torch.export's signature names each merged one): several normalisation nodes
  // on one tensor are then PyTorch's own reuse of a module (ALBERT's shared layers).
  const bool reuse_is_pytorchs = have_torch_list && missing.empty() && unread.empty();
  for (const std::string& name : trainable) {
    if (reuse_is_pytorchs) break;
    const Value* v = g.FindValue(name);
    if (!v) continue;
    std::set<const Node*> norms;
    for (const Use& u : v->uses())
      if (u.input_index >= 1 && IsNormalization(u.node->op_type())) norms.insert(u.node);
    if (norms.size() > 1)
      warnings.push_back(StrCat("'", name, "' is the scale or bias of ", norms.size(),
                                " normalisation layers (e.g. ", (*norms.begin())->Describe(),
                                "): an exporter merged equal initial values into one tensor, which trains as one "
                                "parameter where PyTorch trains ", norms.size(),
                                have_torch_list ? "" : " (unless the model reuses one module, as ALBERT's shared "
                                                       "layers do: the file carries no PyTorch parameter list to tell)",
                                "; ", kDynamoAdvice));
  }

  // Transposed copies: compare only pairs whose dims are swapped.
  std::map<std::pair<int64_t, int64_t>, std::vector<const Value*>> by_dims;
  for (const std::string& name : trainable)
    if (const Value* v = g.FindValue(name); v && v->is_initializer() && v->initializer().rank() == 2)
      by_dims[{v->initializer().dims()[0], v->initializer().dims()[1]}].push_back(v);
  for (const auto& [dims, list] : by_dims) {
    if (dims.first >= dims.second) continue;
    auto other = by_dims.find({dims.second, dims.first});
    if (other == by_dims.end()) continue;
    for (const Value* a : list)
      for (const Value* b : other->second)
        if (IsTransposeOf(a->initializer(), b->initializer()))
          warnings.push_back(StrCat("'", b->name(), "' is exactly the transpose of '", a->name(),
                                    "': the exporter's constant folding copied one PyTorch parameter, which then "
                                    "trains as two tensors; ", kLegacyAdvice));
  }

  if (!have_torch_list)
    for (const std::string& name : trainable) {
      const Value* v = g.FindValue(name);
      if (!v) continue;
      std::vector<const Node*> consumers;
      RealConsumers(v, &consumers);
      bool gather = false, matmul = false;
      for (const Node* n : consumers) {
        gather |= n->op_type() == "Gather";
        matmul |= n->op_type() == "MatMul" || n->op_type() == "Gemm";
      }
      if (gather && matmul)
        warnings.push_back(StrCat("'", name, "' is both an embedding table (Gather) and a projection weight "
                                  "(MatMul/Gemm): fine when PyTorch ties them (GPT-2's lm_head), but if the model "
                                  "has two parameters the exporter merged them; the file carries no PyTorch "
                                  "parameter list to tell (", kDynamoAdvice, ")"));
    }
  return warnings;
}

}  // namespace dsc
