// sample-dropout: gives every training-mode Dropout a mask keyed by the sample it drops from.
//
// Contract: runs after autodiff (shapes static, masks added). Each default-domain Dropout that is
// not constant inference mode becomes ai.dscompile.SampleDropout (same inputs, outputs and seed)
// with the sample layout of its data (ir/dsc_ops.h), so a sample's mask is the same at every world
// size and micro-batch x accumulation split: the DESIGN.md invariant holds with dropout. The
// layout, by the first rule that applies:
//   1. the dim specialize saw named by the batch symbol (kDropoutBatchAxesKey), one index a sample;
//   2. dim 0 when it is a multiple of the micro batch: blocks of dim0/micro rows a sample (a batch
//      flattened into dim 0, [batch*seq, hidden], outermost as PyTorch's reshapes keep it);
//   3. none: the mask is keyed by element, and a warning says the trajectory will depend on the split.
// The metadata key is consumed.
#include "passes/sample_dropout.h"

#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "passes/autodiff/grad_builder.h"
#include "passes/pass.h"

namespace dsc {

void RecordDropoutBatchAxes(Graph& g, const std::string& batch_symbol) {
  nlohmann::json axes = nlohmann::json::object();
  for (const auto& n : g.nodes()) {
    if (n->op_type() != "Dropout" || !n->domain().empty() || !n->input(0) || !n->input(0)->type.shape) continue;
    const Shape& shape = *n->input(0)->type.shape;
    int64_t axis = -1;
    for (size_t i = 0; i < shape.size() && axis < 0; ++i)
      if (!batch_symbol.empty() && !shape[i].is_static() && shape[i].symbol == batch_symbol)
        axis = static_cast<int64_t>(i);
    axes[n->output(0)->name()] = axis;
  }
  if (axes.empty()) return;
  g.metadata[kDropoutBatchAxesKey] = axes.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

struct Layout {
  int64_t axis = -1, rows = 1;
};

class SampleDropoutPass : public GraphPass {
 public:
  const char* name() const override { return "sample-dropout"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    nlohmann::json axes = nlohmann::json::object();
    if (auto it = g.metadata.find(kDropoutBatchAxesKey); it != g.metadata.end()) {
      axes = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
      if (!axes.is_object()) return DataLoss("metadata '", kDropoutBatchAxesKey, "' is not a JSON object");
      g.metadata.erase(it);
    }
    std::vector<Node*> todo;
    for (const auto& n : g.nodes())
      if (n->op_type() == "Dropout" && n->domain().empty() && MayTrain(*n)) todo.push_back(n.get());
    for (Node* old : todo) {
      const Value* data = old->input(0);
      if (!data || !data->type.shape || !IsStatic(*data->type.shape))
        return FailedPrecondition(old->Describe(), ": sample-dropout needs the data's static shape (run specialize)");
      const auto found = axes.find(old->output(0)->name());
      const int64_t named = found != axes.end() && found->is_number_integer() ? found->get<int64_t>() : -1;
      const Layout layout = LayoutOf(autodiff::GradBuilder::Dims(data), named, ctx.micro_batch);
      if (layout.axis < 0 && ctx.warn)
        *ctx.warn << "warning: " << old->Describe() << ": no dim of its data " << TypeToString(data->type)
                  << " holds the batch, so its mask is keyed by element, not by sample: the trajectory will "
                     "differ between micro-batch and world-size splits\n";
      RETURN_IF_ERROR(Replace(g, old, layout));
    }
    if (!todo.empty()) g.opsets[kDscDomain] = 1;
    return !todo.empty();
  }

 private:
  // False only for a Dropout that is constantly in inference mode (an identity).
  static bool MayTrain(const Node& n) {
    StatusOr<bool> training = autodiff::DropoutIsTraining(n);
    return !training.ok() || *training;
  }

  static Layout LayoutOf(const std::vector<int64_t>& dims, int64_t named, int64_t micro) {
    if (micro <= 0 || dims.empty()) return {};
    if (named >= 0 && named < static_cast<int64_t>(dims.size()) && dims[static_cast<size_t>(named)] == micro)
      return {named, 1};
    if (dims[0] > 0 && dims[0] % micro == 0) return {0, dims[0] / micro};
    return {};
  }

  static Status Replace(Graph& g, Node* old, const Layout& layout) {
    std::vector<std::string> names;
    for (const Value* v : old->outputs()) names.push_back(g.UniqueName(v->name() + "__sampled"));
    Node* n = g.AddNode(ops::kSampleDropout, old->inputs(), names, kDscDomain, old->name(), old);
    if (old->HasAttr("seed")) n->SetAttr("seed", old->GetInt("seed", 0));
    n->SetAttr("batch_axis", layout.axis);
    n->SetAttr("sample_rows", layout.rows);
    std::vector<std::string> old_names;
    for (size_t i = 0; i < old->num_outputs(); ++i) {
      n->output(i)->type = old->output(i)->type;
      old_names.push_back(old->output(i)->name());
      g.ReplaceAllUsesWith(old->output(i), n->output(i));
    }
    RETURN_IF_ERROR(g.RemoveNode(old));
    for (size_t i = 0; i < n->num_outputs(); ++i) RETURN_IF_ERROR(g.RenameValue(n->output(i), old_names[i]));
    return Status::OK();
  }
};

}  // namespace

std::unique_ptr<Pass> CreateSampleDropoutPass() { return std::make_unique<SampleDropoutPass>(); }

}  // namespace dsc
