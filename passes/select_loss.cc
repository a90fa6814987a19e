// select-loss: chooses the loss and the trainable parameters.
//
// Contract: the loss is the single scalar float graph output, or PassContext::loss. Every float
// initializer with a differentiable path to the loss is a trainable parameter unless a
// PassContext::freeze entry (exact name or full-match regex) freezes it; every other initializer
// (a causal-mask buffer, BatchNormalization running statistics, shape constants) is a constant.
// Writes Graph::training and prints the parameter table to PassContext::log.
#include <iomanip>
#include <regex>
#include <unordered_set>

#include "passes/differentiability.h"
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

class SelectLossPass : public GraphPass {
 public:
  const char* name() const override { return "select-loss"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    ASSIGN_OR_RETURN(Value* loss, ChooseLoss(g, ctx.loss));
    std::vector<std::regex> patterns;
    for (const std::string& f : ctx.freeze) {
      try {
        patterns.emplace_back(f);
      } catch (const std::regex_error& e) {
        return InvalidArgument("--freeze '", f, "' is not a valid regular expression: ", e.what());
      }
    }
    std::vector<bool> pattern_used(ctx.freeze.size(), false);
    auto frozen = [&](const std::string& name) {
      bool hit = false;
      for (size_t i = 0; i < patterns.size(); ++i)
        if (name == ctx.freeze[i] || std::regex_match(name, patterns[i])) hit = pattern_used[i] = true;
      return hit;
    };
    auto reach = DifferentiableToLoss(loss);
    TrainingInfo info;
    info.loss = loss->name();
    std::vector<Value*> frozen_params, constants;
    for (Value* v : g.initializers()) {
      bool candidate = IsFloat(v->type.dtype) && reach.count(v);
      if (candidate && frozen(v->name())) frozen_params.push_back(v);
      else if (candidate) info.parameters.push_back(v->name());
      else constants.push_back(v);
    }
    for (size_t i = 0; i < ctx.freeze.size(); ++i)
      if (!pattern_used[i]) return InvalidArgument("--freeze '", ctx.freeze[i], "' matches no trainable initializer");
    if (info.parameters.empty())
      return InvalidArgument("no initializer has a differentiable path to the loss '", loss->name(), "': nothing to train");
    if (ctx.log) PrintTable(g, info, frozen_params, constants, *ctx.log);
    bool changed = info.loss != g.training.loss || info.parameters != g.training.parameters;
    g.training = std::move(info);
    return changed;
  }

 private:
  static void PrintTable(const Graph& g, const TrainingInfo& info, const std::vector<Value*>& frozen,
                         const std::vector<Value*>& constants, std::ostream& os) {
    int64_t total = 0;
    size_t width = 4;
    for (const auto& p : info.parameters) width = std::max(width, p.size());
    os << "loss: " << info.loss << "\n"
       << "trainable parameters (" << info.parameters.size() << "):\n";
    for (const auto& p : info.parameters) {
      const Tensor& t = g.FindValue(p)->initializer();
      total += t.numel();
      os << "  " << std::left << std::setw(static_cast<int>(width)) << p << std::right << "  " << std::setw(16)
         << TypeToString(g.FindValue(p)->type) << std::setw(12) << t.numel() << "\n";
    }
    os << "  total " << total << " elements\n";
    for (Value* v : frozen) os << "frozen: " << v->name() << " " << TypeToString(v->type) << "\n";
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
