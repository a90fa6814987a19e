// Saving and resuming training: every rank's state tensors plus the trainer's own position (step
// counters, LR schedule, loss scaler, data order, RNG seed) as one checkpoint folder
// (runtime/checkpoint_format.h) that loads at any world size, ZeRO stage and precision.
//
// What is saved: every state tensor except the gradient accumulators, at its full shape (a ZeRO
// chunk as its element range, padding excluded; a replicated tensor once, by rank 0, except
// buffers such as BatchNorm statistics, which each rank updates from its own micro-batches: ranks
// R > 0 add their copy as NAME@rankR, TensorKind::kRankCopy, and load it back). Saves
// happen only at optimizer-step boundaries, where the step program has zeroed the accumulators,
// so a resume starts them at zero too and continues bit for bit.
//
// Loading maps the plan's state onto the checkpoint's by name, so the same checkpoint serves
// another world size or stage (names do not depend on either). Across precisions:
//  - a parameter takes the saved tensor of its name when the dtypes agree, else the saved fp32
//    master weight when there is one, else the saved parameter converted (float to float, round
//    to nearest even);
//  - a master weight P::master takes the saved master, else the saved parameter P (widened);
//  - optimizer states and buffers take their name's tensor, converted when the dtypes differ.
// A tensor the plan needs and the checkpoint lacks, or one whose element count differs, is an
// error naming both; saved tensors the plan does not use are listed in a note.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/plan.h"
#include "runtime/checkpoint_format.h"
#include "runtime/state_store.h"

namespace dsc {

class Communicator;

// The trainer's host-side state at a step boundary (a checkpoint's trainer_state).
struct TrainerPosition {
  int64_t step = 0;           // optimizer steps run, skipped ones included: the next step is step + 1
  int64_t applied_steps = 0;  // updates applied (Adam's step count)
  int64_t skipped_steps = 0;  // overflow steps whose updates were skipped
  int64_t lr_last_batch_iteration = -1;
  nlohmann::json loss_scaler = nlohmann::json::object();  // LossScaler::SaveState()
  // The data order and dropout masks are functions of (seed, step, sample), so these place the
  // loader and the RNG exactly: batch `step` of the permutation of epoch step / steps_per_epoch.
  uint64_t seed = 0;
  bool shuffle = true;
  int64_t num_samples = 0;
  int64_t train_batch_size = 0;
};
nlohmann::json TrainerPositionJson(const TrainerPosition& p);
StatusOr<TrainerPosition> TrainerPositionFromJson(const nlohmann::json& j, const std::string& what);

// An identity for the plan a checkpoint came from (crc32c of its state table, world size and
// config): a resume with another plan is allowed, and says so.
std::string PlanHash(const Plan& plan);

// The AgreeFn of a job (null comm: one rank): an all-reduce of every rank's success; the error
// names the ranks that failed.
AgreeFn AgreeOver(Communicator* comm);

// Collective: every rank calls it after the same step. Writes DIR/StepTag(meta.step) through the
// commit protocol and moves DIR/latest; on failure every rank returns the error and the previous
// checkpoint stays the latest.
Status SaveTrainingCheckpoint(const Plan& plan, const StateStore& state, Communicator* comm, const std::string& dir,
                              const CheckpointMeta& meta);

enum class LoadMode {
  kResume,         // every state tensor but the gradient accumulators comes from the checkpoint
  kInitialValues,  // a plan's step-0 values: the zero-initialised tensors are not in it
};

// Fills this rank's part of the state tensors `mode` names from `ckpt` (the rest stay zero),
// reading only this rank's slices. `notes` receives what a user should know (conversions,
// unused saved tensors).
Status LoadStateTensors(const Plan& plan, const Checkpoint& ckpt, int rank, StateStore* state,
                        std::vector<std::string>* notes, LoadMode mode = LoadMode::kResume);

// What DeepSpeed's OnebitLamb.load_state_dict does to a run saved before its freeze (state['step']
// = `applied_steps` < freeze_step): every lamb_coeff_freeze back to 0, last_factor to 1 and
// scaling_coeff dropped (ops::kOnebitLamb*'s lamb_state = zeros); a note says so. Nothing otherwise.
Status ResetOnebitLambBeforeFreeze(const Plan& plan, double freeze_step, bool onebit_lamb, int64_t applied_steps,
                                   StateStore* state, std::vector<std::string>* notes);

// The step-0 checkpoint holding a plan's initial values (Plan::initial_values_dir), checked to be
// the one dscompile wrote with this plan.
StatusOr<Checkpoint> OpenInitialValues(const Plan& plan);

}  // namespace dsc
