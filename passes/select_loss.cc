// select-loss: chooses the loss and the trainable parameters.
//
// Contract: the loss is the single scalar float graph output, or PassContext::loss. The trainable
// parameters are exactly PyTorch's, chosen by the first rule that applies:
//  1. --trainable entries (exact name or full-match regex): the float initializers they match;
//  2. the model's PyTorch parameter list (metadata "dscompile.parameters", written by
//     tools/export_for_training.py or derived at import from torch.export's graph signature);
//  3. otherwise every float initializer with more than one element and a differentiable path to
//     the loss. A scalar there may be a buffer or a constant another tool lifted (GELU's 0.5) as
//     well as a parameter (nn.PReLU()'s slope): it is never trained by this rule, and a warning
//     names it; a learnable scalar needs rule 1 or 2, or --add-trainable.
// --add-trainable entries (exact name or full-match regex) then add the float initializers they
// match, and --freeze entries remove matches. A chosen initializer without a differentiable path to the
// loss stays fixed, as PyTorch leaves its gradient None, with a warning. Every other initializer
// (a causal-mask buffer, BatchNormalization running statistics, shape constants) is a constant.
// Writes Graph::training, prints the parameter table to PassContext::log and warnings about
// parameters an exporter merged or duplicated (passes/merged_parameters.h) to PassContext::warn.
#include <iomanip>
#include <regex>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "ir/torch_parameters.h"
#include "passes/differentiability.h"
#include "passes/merged_parameters.h"
#include "passes/pass.h"

namespace dsc {
namespace {

bool IsScalar(const Value* v) {
  if (!v->type.shape) return false;
  for (const Dim& d : *v->type.shape)
    if (!d.is_static() || d.value != 1) return false;
  return true;
}

StatusOr<Value*> ChooseLoss(const Graph& g, const std::string& requested) {
  std::string listing;
  for (Value* o : g.outputs()) listing += StrCat("\n  ", o->name(), ": ", TypeToString(o->type));
  if (!requested.empty()) {
    for (Value* o : g.outputs())
      if (o->name() == requested) {
        if (!IsFloat(o->type.dtype) || !IsScalar(o))
          return InvalidArgument("--loss ", requested, " is ", TypeToString(o->type), "; the loss must be a scalar float");
        return o;
      }
    return InvalidArgument("--loss ", requested, " is not a graph output; the outputs are:", listing);
  }
  std::vector<Value*> candidates;
  for (Value* o : g.outputs())
    if (IsFloat(o->type.dtype) && IsScalar(o)) candidates.push_back(o);
  if (candidates.size() == 1) return candidates[0];
  if (candidates.empty())
    return InvalidArgument("no graph output is a scalar float, so there is no loss to train: compute the loss inside "
                           "the exported model (e.g. return F.cross_entropy(...) from forward). The outputs are:", listing);
  return InvalidArgument("several graph outputs are scalar floats; choose the loss with --loss NAME. The outputs are:", listing);
}

// Values from which a differentiable path leads to `loss`.
std::unordered_set<const Value*> DifferentiableToLoss(Value* loss) {
  std::unordered_set<const Value*> seen{loss};
  std::vector<Value*> work{loss};
  while (!work.empty()) {
    Value* v = work.back();
    work.pop_back();
    Node* n = v->producer();
    if (!n || !IsDifferentiableOutput(*n, static_cast<size_t>(v->producer_output()))) continue;
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      Value* in = n->input(i);
      if (in && IsDifferentiableInput(*n, i) && seen.insert(in).second) work.push_back(in);
    }
  }
  return seen;
}

// Command-line entries that each match an initializer name exactly or as a full-match regex.
class NameMatcher {
 public:
  static StatusOr<NameMatcher> Make(const char* flag, const std::vector<std::string>& entries) {
    NameMatcher m;
    m.flag_ = flag;
    m.entries_ = entries;
    m.used_.assign(entries.size(), false);
    for (const std::string& e : entries) {
      try {
        m.patterns_.emplace_back(e);
      } catch (const std::regex_error& err) {
        return InvalidArgument(flag, " '", e, "' is not a valid regular expression: ", err.what());
      }
    }
    return m;
  }
  bool Matches(const std::string& name) {
    bool hit = false;
    for (size_t i = 0; i < entries_.size(); ++i)
      if (name == entries_[i] || std::regex_match(name, patterns_[i])) hit = used_[i] = true;
    return hit;
  }
  Status CheckAllUsed(const char* what) const {
    for (size_t i = 0; i < entries_.size(); ++i)
      if (!used_[i]) return InvalidArgument(flag_, " '", entries_[i], "' matches no ", what);
    return Status::OK();
  }

 private:
  const char* flag_ = "";
  std::vector<std::string> entries_;
  std::vector<std::regex> patterns_;
  std::vector<bool> used_;
};

class SelectLossPass : public GraphPass {
 public:
  const char* name() const override { return "select-loss"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    ASSIGN_OR_RETURN(Value* loss, ChooseLoss(g, ctx.loss));
    ASSIGN_OR_RETURN(NameMatcher freeze, NameMatcher::Make("--freeze", ctx.freeze));
    ASSIGN_OR_RETURN(NameMatcher trainable, NameMatcher::Make("--trainable", ctx.trainable));
    ASSIGN_OR_RETURN(NameMatcher added, NameMatcher::Make("--add-trainable", ctx.add_trainable));
    TorchParameters torch_list;
    if (auto it = g.metadata.find(kTorchParametersKey); it != g.metadata.end()) {
      ASSIGN_OR_RETURN(torch_list, ParseTorchParameters(it->second));
    }
    const std::set<std::string> listed(torch_list.trainable.begin(), torch_list.trainable.end());
    const bool by_option = !ctx.trainable.empty(), by_list = !by_option && torch_list.present;

    auto reach = DifferentiableToLoss(loss);
    TrainingInfo info;
    info.loss = loss->name();
    std::vector<Value*> frozen_params, constants;
    std::vector<std::string> unreached, scalars_kept;
    for (Value* v : g.initializers()) {
      const bool is_float = IsFloat(v->type.dtype);
      bool chosen;
      if (by_option) chosen = is_float && trainable.Matches(v->name());
      else if (by_list) chosen = listed.count(v->name()) > 0;
      else chosen = is_float && reach.count(v) && v->initializer().numel() > 1;
      if (is_float && added.Matches(v->name())) chosen = true;
      else if (!chosen && !by_option && !by_list && is_float && reach.count(v) && v->initializer().numel() == 1)
        scalars_kept.push_back(v->name());
      if (chosen && !is_float)
        return InvalidArgument("'", v->name(), "' is listed as a PyTorch parameter but is ", TypeToString(v->type),
                               "; only float initializers train");
      if (chosen && !reach.count(v)) {
        unreached.push_back(v->name());
        chosen = false;
      }
      if (chosen && freeze.Matches(v->name())) frozen_params.push_back(v);
      else if (chosen) info.parameters.push_back(v->name());
      else constants.push_back(v);
    }
    // Kernels compute float32 and the half types; a double model would fail node by node later.
    for (const std::string& name : info.parameters)
      if (const Value* v = g.FindValue(name); v && v->type.dtype == DType::kFloat64)
        return Unimplemented("parameter '", name, "' is ", TypeToString(v->type), ": dscompile trains float32, "
                             "bfloat16 and float16 models; export the model after model.float()");
    RETURN_IF_ERROR(trainable.CheckAllUsed("float initializer"));
    RETURN_IF_ERROR(added.CheckAllUsed("float initializer"));
    RETURN_IF_ERROR(freeze.CheckAllUsed("trainable initializer"));
    if (info.parameters.empty())
      return InvalidArgument("no trainable initializer has a differentiable path to the loss '", loss->name(),
                             "': nothing to train");
    if (ctx.warn) {
      if (!unreached.empty())
        *ctx.warn << "dscompile: warning: " << unreached.size() << " chosen parameter"
                  << (unreached.size() == 1 ? " has" : "s have") << " no differentiable path to the loss and stay"
                  << (unreached.size() == 1 ? "s" : "") << " fixed (PyTorch leaves their gradient None): "
                  << QuotedNames(unreached) << "\n";
      // A legacy torch.onnx.export file holds only the module's state as initializers: there a
      // scalar on a gradient path is as likely an nn.Parameter (nn.PReLU(), a learnable
      // temperature) as a buffer, and only the user knows which.
      if (!scalars_kept.empty())
        *ctx.warn << "dscompile: warning: " << scalars_kept.size() << " single-element initializer"
                  << (scalars_kept.size() == 1 ? " on a gradient path stays" : "s on a gradient path stay")
                  << " constant: " << QuotedNames(scalars_kept)
                  << ". This file has no PyTorch parameter list, so scalars are taken for constants or buffers; if "
                  << (scalars_kept.size() == 1 ? "it is a parameter" : "any is a parameter")
                  << " (nn.PReLU()'s slope, a learnable temperature), add it with --add-trainable NAME, or export "
                     "with tools/export_for_training.py or torch.onnx.export(..., dynamo=True), which record the "
                     "list\n";
      for (const std::string& w : MergedParameterWarnings(g, info.parameters, torch_list.missing, torch_list.unread, by_list))
        *ctx.warn << "dscompile: warning: " << w << "\n";
      // What the import could not restore from the exporter's metadata (frontend/torch_detach.h).
      if (auto it = g.metadata.find(kImportWarningsKey); it != g.metadata.end()) {
        const nlohmann::json list = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
        if (list.is_array())
          for (const auto& w : list)
            if (w.is_string()) *ctx.warn << "dscompile: warning: " << w.get<std::string>() << "\n";
      }
      // nn.Embedding's padding_idx is not in ONNX: without the helper's or dynamo's record of it
      // (kEmbeddingPaddingKey), an embedding table trains every row.
      if (!by_list && !g.metadata.count(kEmbeddingPaddingKey)) {
        std::vector<std::string> tables;
        for (const std::string& name : info.parameters)
          if (const Value* v = g.FindValue(name))
            for (const Use& u : v->uses())
              if (u.node->op_type() == "Gather" && u.input_index == 0 && u.node->GetInt("axis", 0) == 0) {
                tables.push_back(name);
                break;
              }
        if (!tables.empty())
          *ctx.warn << "dscompile: note: " << QuotedNames(tables)
                    << (tables.size() == 1 ? " is an embedding table" : " are embedding tables")
                    << " and this file does not say whether PyTorch's nn.Embedding has a padding_idx (a row "
                       "PyTorch never trains); if it has, export with tools/export_for_training.py or "
                       "torch.onnx.export(..., dynamo=True), which record it\n";
      }
    }
    std::string rule = by_option ? "--trainable"
                       : by_list ? "the model's PyTorch parameter list"
                                 : "float initializers with more than one element and a gradient path to the loss";
    if (!ctx.add_trainable.empty()) rule += " and --add-trainable";
    if (ctx.log)
      PrintTable(g, info, frozen_params, constants, rule.c_str(), by_list ? torch_list.source : "", torch_list, *ctx.log);
    bool changed = info.loss != g.training.loss || info.parameters != g.training.parameters;
    g.training = std::move(info);
    return changed;
  }

 private:
  static void PrintTable(const Graph& g, const TrainingInfo& info, const std::vector<Value*>& frozen,
                         const std::vector<Value*>& constants, const char* rule, const std::string& source,
                         const TorchParameters& torch_list, std::ostream& os) {
    int64_t total = 0;
    size_t width = 4;
    for (const auto& p : info.parameters) width = std::max(width, p.size());
    os << "loss: " << info.loss << "\n"
       << "parameters chosen by " << rule << (source.empty() ? "" : " (" + source + ")") << "\n"
       << "trainable parameters (" << info.parameters.size() << "):\n";
    for (const auto& p : info.parameters) {
      const Tensor& t = g.FindValue(p)->initializer();
      total += t.numel();
      os << "  " << std::left << std::setw(static_cast<int>(width)) << p << std::right << "  " << std::setw(16)
         << TypeToString(g.FindValue(p)->type) << std::setw(12) << t.numel() << "\n";
    }
    os << "  total " << total << " elements\n";
    for (Value* v : frozen) os << "frozen: " << v->name() << " " << TypeToString(v->type) << "\n";
    for (const std::string& t : torch_list.tied) os << "tied in PyTorch (trains as the tensor it shares): " << t << "\n";
    for (const std::string& t : torch_list.unread) os << "read by no node (tied in PyTorch, or merged away): " << t << "\n";
    if (!constants.empty()) {
      int64_t n = 0;
      for (Value* v : constants) n += v->initializer().numel();
      os << "constants: " << constants.size() << " non-trainable initializers, " << n << " elements\n";
    }
  }
};

}  // namespace

std::unique_ptr<Pass> CreateSelectLossPass() { return std::make_unique<SelectLossPass>(); }

}  // namespace dsc
