// Pass factory and name lookup generated from passes.def.
#include "passes/pass.h"

namespace dsc {

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
