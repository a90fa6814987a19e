// specialize: binds symbolic dimensions to static sizes and re-infers every shape.
//
// Contract: dim 0 of every graph input is the batch dimension and is bound to the micro batch
// size (PassContext::micro_batch) — a fixed dim 0 must equal it; any other symbolic dim must be named in PassContext::dims
// (--dim NAME=VALUE). A symbol is bound to one value everywhere it appears. Afterwards graph
// inputs are fully static and all value types are re-inferred. Unbound symbols are an error
// listing all of them. Shapes computed by shape arithmetic become static once fold-constants runs.
// Before binding, the sample layout of each Dropout's data is recorded for sample-dropout
// (passes/sample_dropout.h).
#include <set>

#include "ir/shape_inference.h"
#include "passes/pass.h"
#include "passes/sample_dropout.h"

namespace dsc {
namespace {

class SpecializePass : public GraphPass {
 public:
  const char* name() const override { return "specialize"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    std::map<std::string, int64_t> bound = ctx.dims;
    for (const auto& [sym, v] : bound)
      if (v <= 0) return InvalidArgument("--dim ", sym, "=", v, ": a dimension must be positive");
    // The batch symbol is whatever dim 0 of the inputs is called.
    for (Value* in : g.inputs()) {
      if (!in->type.shape) return InvalidArgument("graph input '", in->name(), "' has unknown rank");
      if (in->type.shape->empty()) continue;
      const Dim& d0 = in->type.shape->front();
      // A fixed batch the data loader would fill with another micro batch is refused here, before
      // any run can read or write past the input.
      if (d0.is_static() && ctx.micro_batch > 0 && d0.value != ctx.micro_batch)
        return InvalidArgument("dim 0 (the batch dimension) of input '", in->name(), "' is fixed at ", d0.value,
                               " but train_micro_batch_size_per_gpu is ", ctx.micro_batch,
                               ": export with a dynamic batch dimension (torch.onnx.export(..., dynamo=True, "
                               "dynamic_shapes=...) or dynamic_axes={name: {0: 'batch'}} with dynamo=False, or "
                               "tools/export_for_training.py) or set train_micro_batch_size_per_gpu to ", d0.value);
      if (d0.is_static() || d0.symbol.empty() || ctx.micro_batch <= 0) continue;
      auto it = bound.find(d0.symbol);
      if (it != bound.end() && it->second != ctx.micro_batch)
        return InvalidArgument("--dim ", d0.symbol, "=", it->second, " contradicts the micro batch size ",
                               ctx.micro_batch, " that binds dim 0 ('", d0.symbol, "') of input '", in->name(), "'");
      bound[d0.symbol] = ctx.micro_batch;
    }
    // Which dim of each Dropout's data moves with the batch can be seen only before it is bound.
    if (ctx.micro_batch > 0) RecordDropoutSampleLayouts(g, bound);
    // A --dim that names no dim of the inputs would be parsed and ignored: refuse it.
    std::set<std::string> symbols;
    for (const Value* in : g.inputs())
      for (const Dim& d : *in->type.shape)
        if (!d.is_static() && !d.symbol.empty()) symbols.insert(d.symbol);
    for (const auto& [sym, v] : ctx.dims)
      if (!symbols.count(sym)) {
        std::string names;
        for (const std::string& s : symbols) names += StrCat(names.empty() ? "" : ", ", "'", s, "'");
        return InvalidArgument("--dim ", sym, "=", v, ": no graph input has a dimension named '", sym, "' (",
                               names.empty() ? "the inputs have no named symbolic dimensions" : "named: " + names, ")");
      }
    bool changed = false;
    std::set<std::string> unbound;
    for (Value* in : g.inputs()) {
      Shape& shape = *in->type.shape;
      for (size_t i = 0; i < shape.size(); ++i) {
        Dim& d = shape[i];
        if (d.is_static()) continue;
        if (i == 0 && ctx.micro_batch > 0) {
          d = Dim::Static(ctx.micro_batch);
          changed = true;
          continue;
        }
        auto it = d.symbol.empty() ? bound.end() : bound.find(d.symbol);
        if (it == bound.end()) {
          unbound.insert(StrCat("'", d.symbol.empty() ? "?" : d.symbol, "' (dim ", i, " of input '", in->name(), "')"));
          continue;
        }
        d = Dim::Static(it->second);
        changed = true;
      }
    }
    if (!unbound.empty()) {
      std::string list;
      for (const auto& u : unbound) list += "\n  " + u;
      return InvalidArgument("symbolic dimensions without a value (bind them with --dim NAME=VALUE",
                             ctx.micro_batch > 0 ? "" : "; the batch dimension takes the config's micro batch size",
                             "):", list);
    }
    RETURN_IF_ERROR(InferShapes(g));
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateSpecializePass() { return std::make_unique<SpecializePass>(); }

}  // namespace dsc
