// Pass factory and name lookup generated from passes.def.
#include "passes/pass.h"

namespace dsc {

StatusOr<bool> GraphPass::Run(Module& m, const PassContext& ctx) {
  bool changed = false;
  for (PlanProgram& p : m.programs) {
    StatusOr<bool> c = RunOnGraph(*p.graph, ctx);
    if (!c.ok()) return m.programs.size() > 1 ? c.status().WithContext(StrCat("program '", p.name, "'")) : c.status();
    changed |= *c;
  }
  return changed;
}

std::unique_ptr<Pass> CreatePass(PassId id) {
  switch (id) {
#define DSC_PASS(id, cli_name, factory) \
  case PassId::id:                      \
    return factory();
#include "passes/passes.def"
#undef DSC_PASS
  }
  return nullptr;
}

const char* PassName(PassId id) {
  switch (id) {
#define DSC_PASS(id, cli_name, factory) \
  case PassId::id:                      \
    return cli_name;
#include "passes/passes.def"
#undef DSC_PASS
  }
  return "?";
}

std::vector<PassId> AllPasses() {
  return {
#define DSC_PASS(id, cli_name, factory) PassId::id,
#include "passes/passes.def"
#undef DSC_PASS
  };
}

StatusOr<PassId> PassIdFromName(const std::string& name) {
  std::string known;
  for (PassId id : AllPasses()) {
    if (name == PassName(id)) return id;
    known += StrCat(known.empty() ? "" : ", ", PassName(id));
  }
  return InvalidArgument("unknown pass '", name, "'; passes are: ", known);
}

std::vector<PassId> DefaultPipeline() { return AllPasses(); }

}  // namespace dsc
