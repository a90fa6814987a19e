// What the optimizer pass lowers: its refusals, for those who explain a config before compiling it.
//
//   if (Status s = CheckOptimizerLowerable(cfg.optimizer); !s.ok()) warn(s.message());  // "optimizer.type: ..."
#pragma once

#include "frontend/config/optimizer_config.h"
#include "ir/status.h"

namespace dsc {

// OK when the optimizer pass can build the update of `optimizer`; otherwise the error the pass
// returns for it, naming the JSON path.
Status CheckOptimizerLowerable(const OptimizerConfig& optimizer);

}  // namespace dsc
