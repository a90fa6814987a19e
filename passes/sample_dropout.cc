// sample-dropout: gives every training-mode Dropout a mask keyed by the sample it drops from, and
// every random op (stochastic depth's draws) numbers keyed the same way.
//
// Contract: runs after autodiff (shapes static, masks added). Each default-domain Dropout that is
// not constant inference mode becomes ai.dscompile.SampleDropout (same inputs, outputs and seed)
// with the sample layout of its data (ir/dsc_ops.h), so a sample's mask is the same at every world
// size and micro-batch x accumulation split: the DESIGN.md invariant holds with dropout. The
// layout, by the first rule that applies:
//   1. the dim specialize saw named by the batch symbol (kDropoutSampleLayoutsKey), one index a sample;
//   2. dim 0 when it is a multiple of the micro batch: blocks of dim0/micro rows a sample (a batch
//      flattened into dim 0, [batch*seq, hidden], outermost as PyTorch's reshapes keep it);
//   3. none: the mask is keyed by element, and a warning says the trajectory will depend on the split.
// ONNX's RandomUniform[Like], RandomNormal[Like] and Bernoulli become ai.dscompile.SampleRandom
// (ir/dsc_ops.h), laid out by the same rules applied to their output: torch's drop path and
// stochastic depth draw one number per sample ([batch, 1, ...]), which then stays with the sample.
// Their output must be float32, float16 or bfloat16 (a refusal names the node).
// The metadata key is consumed.
#include "passes/sample_dropout.h"

#include <cstring>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "ir/onnx_convert.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"

#include "ir/dsc_ops.h"
#include "passes/autodiff/grad_builder.h"
#include "passes/pass.h"

namespace dsc {

namespace {

// Where a Dropout's samples lie: indices [s*rows, (s+1)*rows) of dim `axis` (-1: no batch dim).
struct Layout {
  int64_t axis = -1, rows = 1;
};

bool IsOnnxDropout(const Node& n) { return n.op_type() == "Dropout" && n.domain().empty(); }

bool IsRandomOp(const Node& n) {
  static const std::set<std::string> ops = {"RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal",
                                            "Bernoulli"};
  return n.domain().empty() && ops.count(n.op_type()) > 0;
}

// The tensor whose dims the samples lie along: a Dropout's data, a random op's draws.
const Value* SampledValue(const Node& n) { return IsRandomOp(n) ? n.output(0) : n.input(0); }

// The batch's names: dim 0 of the graph inputs.
std::set<std::string> BatchSymbols(const Graph& g) {
  std::set<std::string> symbols;
  for (const Value* in : g.inputs())
    if (in->type.shape && !in->type.shape->empty() && !in->type.shape->front().symbol.empty())
      symbols.insert(in->type.shape->front().symbol);
  return symbols;
}

// Batch sizes no real dim is likely to be a multiple of both of; small enough that shapes stay
// far below the element limit.
constexpr int64_t kProbes[2] = {9973, 10007};

// The static dims ONNX infers for each Dropout's data with the batch (dim 0 of the inputs, and
// its symbol wherever it appears) set to `batch`, by output name; nullopt when inference fails.
std::optional<std::map<std::string, std::vector<int64_t>>> ProbeDropoutData(
    onnx::ModelProto& model, const Graph& g, const std::vector<const Node*>& dropouts, int64_t batch,
    const std::set<std::string>& batch_symbols, const std::map<std::string, int64_t>& dims) {
  onnx::GraphProto* graph = model.mutable_graph();
  graph->clear_value_info();
  for (auto& vo : *graph->mutable_output()) vo.clear_type();
  for (size_t i = 0; i < g.inputs().size() && static_cast<int>(i) < graph->input_size(); ++i) {
    const Value* in = g.inputs()[i];
    if (!in->type.shape) continue;
    auto* shape = graph->mutable_input(static_cast<int>(i))->mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->clear_dim();
    for (size_t k = 0; k < in->type.shape->size(); ++k) {
      const Dim& d = (*in->type.shape)[k];
      auto it = dims.find(d.symbol);
      const int64_t v = k == 0 || batch_symbols.count(d.symbol) ? batch
                        : d.is_static()                         ? d.value
                        : it != dims.end()                      ? it->second
                                                                : -1;
      auto* out = shape->add_dim();
      if (v >= 0) out->set_dim_value(v);
    }
  }
  try {
    onnx::ShapeInferenceOptions options(/*check_type=*/false, /*error_mode=*/0, /*data_prop=*/true);
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::map<std::string, const onnx::TypeProto*> types;
  for (const auto& vi : graph->value_info()) types[vi.name()] = &vi.type();
  for (const auto& vi : graph->input()) types[vi.name()] = &vi.type();
  std::map<std::string, std::vector<int64_t>> out;
  for (const Node* n : dropouts) {
    auto it = types.find(SampledValue(*n)->name());
    if (it == types.end() || !it->second->tensor_type().has_shape()) continue;
    std::vector<int64_t> d;
    for (const auto& dim : it->second->tensor_type().shape().dim()) d.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
    out[n->output(0)->name()] = d;
  }
  return out;
}

// The rows per sample of a dim named `symbol` when its size is the batch times known factors:
// "batch", or torch.export's products such as "6*batch" or "batch*seq" (seq bound by --dim).
std::optional<int64_t> RowsFromSymbol(const std::string& symbol, const std::set<std::string>& batch_symbols,
                                      const std::map<std::string, int64_t>& dims) {
  int64_t rows = 1;
  int batch_factors = 0;
  size_t start = 0;
  while (start <= symbol.size()) {
    size_t end = symbol.find('*', start);
    if (end == std::string::npos) end = symbol.size();
    std::string f = symbol.substr(start, end - start);
    f.erase(0, f.find_first_not_of(' '));
    f.erase(f.find_last_not_of(' ') + 1);
    int64_t v = 0;
    if (batch_symbols.count(f)) {
      ++batch_factors;
    } else if (auto it = dims.find(f); it != dims.end()) {
      v = it->second;
    } else if (!f.empty() && f.size() < 19 && f.find_first_not_of("0123456789") == std::string::npos) {
      v = std::stoll(f);
    } else {
      return std::nullopt;
    }
    if (v > 0) {
      if (rows > (int64_t{1} << 40) / v) return std::nullopt;
      rows *= v;
    }
    start = end + 1;
  }
  if (batch_factors != 1) return std::nullopt;
  return rows;
}

// The layout from the names of the data's dims, when exactly one dim is the batch times known factors.
std::optional<Layout> LayoutFromSymbols(const Value& data, const std::set<std::string>& batch_symbols,
                                        const std::map<std::string, int64_t>& dims) {
  if (!data.type.shape) return std::nullopt;
  std::optional<Layout> found;
  for (size_t k = 0; k < data.type.shape->size(); ++k) {
    const Dim& d = (*data.type.shape)[k];
    if (d.is_static() || d.symbol.empty()) continue;
    if (std::optional<int64_t> rows = RowsFromSymbol(d.symbol, batch_symbols, dims)) {
      if (found) return std::nullopt;
      found = Layout{static_cast<int64_t>(k), *rows};
    }
  }
  return found;
}

// The layout from the data's dims at the two probe batch sizes: the one dim that scales with
// the batch, or no dim (a finding too: {-1, 1}); nullopt for unknown or ambiguous shapes.
std::optional<Layout> LayoutFromProbes(const std::vector<int64_t>& da, const std::vector<int64_t>& db) {
  if (da.size() != db.size()) return std::nullopt;
  std::optional<Layout> scaling;
  bool unknown = false;
  for (size_t k = 0; k < da.size(); ++k) {
    unknown |= da[k] < 0 || db[k] < 0;
    if (da[k] == db[k]) continue;
    if (scaling || da[k] <= 0 || db[k] <= 0 || da[k] % kProbes[0] != 0 || db[k] % kProbes[1] != 0 ||
        da[k] / kProbes[0] != db[k] / kProbes[1])
      return std::nullopt;
    scaling = Layout{static_cast<int64_t>(k), da[k] / kProbes[0]};
  }
  if (scaling) return scaling;
  return unknown ? std::nullopt : std::optional<Layout>(Layout{});
}

}  // namespace

void RecordDropoutSampleLayouts(Graph& g, const std::map<std::string, int64_t>& dims) {
  std::vector<const Node*> dropouts;
  for (const auto& n : g.nodes())
    if ((IsOnnxDropout(*n) && n->input(0)) || (IsRandomOp(*n) && n->num_outputs() > 0)) dropouts.push_back(n.get());
  if (dropouts.empty()) return;
  const std::set<std::string> batch_symbols = BatchSymbols(g);
  nlohmann::json layouts = nlohmann::json::object();
  std::vector<const Node*> unnamed;
  for (const Node* n : dropouts) {
    if (auto l = LayoutFromSymbols(*SampledValue(*n), batch_symbols, dims)) layouts[n->output(0)->name()] = {l->axis, l->rows};
    else unnamed.push_back(n);
  }
  // The rest: ONNX's inference at two batch sizes (its data propagation reaches some reshapes
  // whose results carry no name). Unknown or ambiguous shapes are left out.
  if (!unnamed.empty()) {
    onnx::ModelProto model = GraphToOnnx(g);
    const auto a = ProbeDropoutData(model, g, unnamed, kProbes[0], batch_symbols, dims);
    const auto b = a ? ProbeDropoutData(model, g, unnamed, kProbes[1], batch_symbols, dims) : std::nullopt;
    if (a && b)
      for (const auto& [name, da] : *a)
        if (auto it = b->find(name); it != b->end())
          if (auto l = LayoutFromProbes(da, it->second)) layouts[name] = {l->axis, l->rows};
  }
  g.metadata[kDropoutSampleLayoutsKey] = layouts.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

class SampleDropoutPass : public GraphPass {
 public:
  const char* name() const override { return "sample-dropout"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    std::optional<nlohmann::json> layouts;
    if (auto it = g.metadata.find(kDropoutSampleLayoutsKey); it != g.metadata.end()) {
      layouts = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
      if (!layouts->is_object()) return DataLoss("metadata '", kDropoutSampleLayoutsKey, "' is not a JSON object");
      g.metadata.erase(it);
    }
    std::vector<Node*> todo;
    for (const auto& n : g.nodes())
      if ((IsOnnxDropout(*n) && MayTrain(*n)) || IsRandomOp(*n)) todo.push_back(n.get());
    for (Node* old : todo) {
      const Value* data = SampledValue(*old);
      if (!data || !data->type.shape || !IsStatic(*data->type.shape))
        return FailedPrecondition(old->Describe(), ": sample-dropout needs the data's static shape (run specialize)");
      const std::vector<int64_t> dims = autodiff::GradBuilder::Dims(data);
      const Layout layout = Recorded(layouts, old->output(0)->name(), dims, ctx.micro_batch);
      if (layout.axis < 0 && ctx.warn)
        *ctx.warn << "warning: " << old->Describe() << ": no dim of its " << (IsRandomOp(*old) ? "output " : "data ")
                  << TypeToString(data->type) << " holds the batch, so its "
                  << (IsRandomOp(*old) ? "numbers are" : "mask is")
                  << " keyed by element, not by sample: the trajectory will differ between micro-batch and world-size "
                     "splits\n";
      RETURN_IF_ERROR(IsRandomOp(*old) ? ReplaceRandom(g, old, layout) : Replace(g, old, layout));
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

  // specialize's finding if it has one that still fits the static shape, else dim 0 in blocks
  // of dim0/micro rows.
  static Layout Recorded(const std::optional<nlohmann::json>& layouts, const std::string& name,
                         const std::vector<int64_t>& dims, int64_t micro) {
    if (micro <= 0 || dims.empty()) return {};
    auto it = layouts ? layouts->find(name) : nlohmann::json::const_iterator{};
    if (!layouts || it == layouts->end()) {
      if (dims[0] <= 0 || dims[0] % micro != 0) return {};
      return {0, dims[0] / micro};
    }
    if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() || !(*it)[1].is_number_integer())
      return {};
    const int64_t axis = (*it)[0].get<int64_t>(), rows = (*it)[1].get<int64_t>();
    if (axis < 0 || axis >= static_cast<int64_t>(dims.size()) || rows < 1 || dims[static_cast<size_t>(axis)] != micro * rows)
      return {};
    return {axis, rows};
  }

  // RandomUniform[Like], RandomNormal[Like], Bernoulli -> SampleRandom with the same output.
  static Status ReplaceRandom(Graph& g, Node* old, const Layout& layout) {
    const DType dtype = old->output(0)->type.dtype;
    if (dtype != DType::kFloat32 && dtype != DType::kFloat16 && dtype != DType::kBFloat16)
      return Unimplemented(old->Describe(), ": draws of type ", DTypeName(dtype),
                           " (only float32, float16 and bfloat16 random numbers are supported)");
    const std::string& op = old->op_type();
    const bool bernoulli = op == "Bernoulli";
    std::vector<Value*> inputs;
    if (bernoulli) {
      if (!old->input(0) || old->input(0)->type.dtype != dtype)
        return Unimplemented(old->Describe(), ": Bernoulli with probabilities of another type than its output");
      inputs.push_back(old->input(0));
    }
    const std::string name = old->output(0)->name();
    Node* n = g.AddNode(ops::kSampleRandom, inputs, {g.UniqueName(name + "__sampled")}, kDscDomain, old->name(), old);
    if (bernoulli) {
      n->SetAttr("distribution", std::string("bernoulli"));
    } else if (op.rfind("RandomUniform", 0) == 0) {
      n->SetAttr("distribution", std::string("uniform"));
      n->SetAttr("low", old->GetFloat("low", 0.0f));
      n->SetAttr("high", old->GetFloat("high", 1.0f));
    } else {
      n->SetAttr("distribution", std::string("normal"));
      n->SetAttr("mean", old->GetFloat("mean", 0.0f));
      n->SetAttr("scale", old->GetFloat("scale", 1.0f));
    }
    // ONNX's seed is a float; its bits key the draws instead of the run's seed, as Dropout's seed does.
    if (old->HasAttr("seed")) {
      const float seed = old->GetFloat("seed", 0.0f);
      uint32_t bits = 0;
      std::memcpy(&bits, &seed, sizeof bits);
      n->SetAttr("seed", static_cast<int64_t>(bits));
    }
    n->SetAttr("batch_axis", layout.axis);
    n->SetAttr("sample_rows", layout.rows);
    n->output(0)->type = old->output(0)->type;
    g.ReplaceAllUsesWith(old->output(0), n->output(0));
    RETURN_IF_ERROR(g.RemoveNode(old));
    return g.RenameValue(n->output(0), name);
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
