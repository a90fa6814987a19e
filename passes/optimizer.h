// What the optimizer pass lowers: its refusals, for those who explain a config before compiling it.
//
//   if (Status s = CheckOptimizerLowerable(cfg); !s.ok()) warn(s.message());  // "optimizer.type: ..."
#pragma once

#include "ir/status.h"

namespace dsc {

struct DsConfig;

// OK when the optimizer pass can build the updates `config` asks for; otherwise the error the pass
// returns for it, naming the JSON path. Every config-only refusal of the pass belongs here.
Status CheckOptimizerLowerable(const DsConfig& config);

}  // namespace dsc
