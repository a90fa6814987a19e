// The pass interface, the context passes read (never write), and the registry of passes.
//
// A pass is small, states its contract at the top of its file, and returns whether it changed
// the graph. Passes are listed once, in passes.def, which gives the enum, factory and CLI names.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/module.h"

namespace dsc {

struct DsConfig;

struct PassContext {
  // The resolved DeepSpeed config (optimizer, accumulation, clipping); null in tests of passes
  // that do not need it. Passes that need it fail with a clear error when it is null.
  const DsConfig* config = nullptr;
  // Binds dim 0 of every graph input (the batch dimension); 0 when unknown.
  int64_t micro_batch = 0;
  std::map<std::string, int64_t> dims;  // --dim NAME=VALUE
  std::string loss;                     // --loss NAME ("" = the single scalar float output)
  std::vector<std::string> freeze;      // --freeze NAME|REGEX
  std::vector<std::string> trainable;   // --trainable NAME|REGEX: overrides the model's parameter list
  std::vector<std::string> add_trainable;  // --add-trainable NAME|REGEX: trained besides the chosen ones
  int world_size = 1;
  bool memory_aliasing = true;          // memory-plan: views and in-place outputs share bytes
  std::vector<std::string> fuse_disabled;  // --disable-fuse-rewrite NAME: fuse's rows not to apply
  std::ostream* log = nullptr;          // reports for humans (parameter table); null = quiet
  std::ostream* warn = nullptr;         // warnings for humans, shown even when quiet; null = none
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const char* name() const = 0;
  // true = the module changed.
  virtual StatusOr<bool> Run(Module& m, const PassContext& ctx) = 0;
  // After this pass every value must have a static shape (checked by the verifier from then on).
  virtual bool establishes_static_shapes() const { return false; }
};

// A pass that transforms each program's graph on its own.
class GraphPass : public Pass {
 public:
  virtual StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) = 0;
  StatusOr<bool> Run(Module& m, const PassContext& ctx) override;
};

enum class PassId {
#define DSC_PASS(id, cli_name, factory) id,
#include "passes/passes.def"
#undef DSC_PASS
};

#define DSC_PASS(id, cli_name, factory) std::unique_ptr<Pass> factory();
#include "passes/passes.def"
#undef DSC_PASS

std::unique_ptr<Pass> CreatePass(PassId id);
// An error naming the first of `names` that is no row of the fuse pass's table (passes/fuse.cc).
Status CheckFuseRewriteNames(const std::vector<std::string>& names);
const char* PassName(PassId id);
StatusOr<PassId> PassIdFromName(const std::string& name);  // error lists the known names
std::vector<PassId> AllPasses();
// The pipeline dscompile runs when --passes is not given.
std::vector<PassId> DefaultPipeline();

}  // namespace dsc
