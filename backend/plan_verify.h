// Checks a loaded plan before dsrun runs it or dsinspect prints it: a checksum only proves the
// bytes are the ones written, not that what was written (or edited and re-checksummed) is sound.
#pragma once

#include "backend/plan.h"
#include "ir/status.h"

namespace dsc {

// Every program passes VerifyGraph and VerifyBucketedCollectives (ir/verifier.h: the bucketed
// collectives' contract, with `world` the plan's), and the state table is consistent with its
// initial values.
// A runnable plan (micro_step and step programs) is held to what the runtime relies on: typed,
// static graphs; program inputs that are state (same dtype and shape), a reserved scalar, or data
// batched by the config's micro-batch size; a parseable config for the plan's world size; the loss
// and gradient-norm outputs; recorded memory plans inside their arenas; a CPU kernel per node.
// Errors name the program, node, value or state; the caller adds the file.
Status VerifyPlan(const Plan& plan);

}  // namespace dsc
