// Saving and resuming training.
#include "runtime/trainer_checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "ir/dsc_ops.h"
#include "runtime/communicator.h"

namespace dsc {
namespace {


int64_t Numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// The saved tensor state `s` loads from (see the header's rules), or null.
const CheckpointTensor* SourceFor(const Plan& plan, const StateInfo& s, const CheckpointManifest& m) {
  const CheckpointTensor* same = m.Find(s.name);
  if (s.kind == StateKind::kMaster) {
    if (same) return same;
    const std::string suffix = ops::MasterName("");
    if (s.name.size() > suffix.size() && s.name.ends_with(suffix))
      return m.Find(s.name.substr(0, s.name.size() - suffix.size()));
    return nullptr;
  }
  if (s.kind == StateKind::kParameter && (!same || same->dtype != s.dtype)) {
    const CheckpointTensor* master = m.Find(ops::MasterName(s.name));
    if (master && master->kind == TensorKind::kMaster && !plan.FindState(ops::MasterName(s.name))) return master;
  }
  return same;
}

}  // namespace

nlohmann::json TrainerPositionJson(const TrainerPosition& p) {
  return {{"step", p.step},
          {"applied_steps", p.applied_steps},
          {"skipped_steps", p.skipped_steps},
          {"lr_schedule", {{"last_batch_iteration", p.lr_last_batch_iteration}}},
          {"loss_scaler", p.loss_scaler},
          {"data",
           {{"seed", p.seed},
            {"shuffle", p.shuffle},
            {"num_samples", p.num_samples},
            {"train_batch_size", p.train_batch_size},
            {"epoch", p.train_batch_size > 0 && p.num_samples >= p.train_batch_size
                          ? p.step / (p.num_samples / p.train_batch_size)
                          : 0}}},
          {"rng", {{"seed", p.seed}, {"kind", "counter-based: dropout masks are a function of (seed, step, sample)"}}}};
}

StatusOr<TrainerPosition> TrainerPositionFromJson(const nlohmann::json& j, const std::string& what) {
  auto bad = [&](const std::string& key) {
    return DataLoss(what, ": trainer_state.", key, " is missing or malformed");
  };
  auto int_at = [&](const nlohmann::json& o, const char* key, int64_t* out) -> bool {
    if (!o.is_object() || !o.contains(key) || !o[key].is_number_integer()) return false;
    *out = o[key].get<int64_t>();
    return true;
  };
  TrainerPosition p;
  if (!int_at(j, "step", &p.step) || p.step < 0) return bad("step");
  if (!int_at(j, "applied_steps", &p.applied_steps) || p.applied_steps < 0) return bad("applied_steps");
  if (!int_at(j, "skipped_steps", &p.skipped_steps) || p.skipped_steps < 0) return bad("skipped_steps");
  if (!j.contains("lr_schedule") || !int_at(j["lr_schedule"], "last_batch_iteration", &p.lr_last_batch_iteration))
    return bad("lr_schedule.last_batch_iteration");
  if (!j.contains("loss_scaler") || !j["loss_scaler"].is_object()) return bad("loss_scaler");
  p.loss_scaler = j["loss_scaler"];
  if (!j.contains("data") || !j["data"].is_object()) return bad("data");
  const nlohmann::json& d = j["data"];
  if (!d.contains("seed") || !d["seed"].is_number_unsigned()) return bad("data.seed");
  p.seed = d["seed"].get<uint64_t>();
  if (!d.contains("shuffle") || !d["shuffle"].is_boolean()) return bad("data.shuffle");
  p.shuffle = d["shuffle"].get<bool>();
  if (!int_at(d, "num_samples", &p.num_samples) || p.num_samples < 1) return bad("data.num_samples");
  if (!int_at(d, "train_batch_size", &p.train_batch_size) || p.train_batch_size < 1) return bad("data.train_batch_size");
  return p;
}

std::string PlanHash(const Plan& plan) {
  nlohmann::json j = {{"world_size", plan.world_size}, {"config", plan.config}};
  for (const StateInfo& s : plan.state)
    j["state"].push_back({s.name, StateKindName(s.kind), DTypeName(s.dtype), s.dims, s.shard_of_numel, s.zero_init});
  const std::string bytes = j.dump();
  return Crc32cHex(Crc32c(bytes.data(), bytes.size()));
}

AgreeFn AgreeOver(Communicator* comm) {
  return [comm](bool ok_here) -> Status {
    if (!comm || comm->size() == 1) return ok_here ? Status::OK() : Internal("this rank failed");
    ASSIGN_OR_RETURN(const std::vector<double> failed, GatherOnePerRank(comm, ok_here ? 0.0 : 1.0));
    std::string ranks;
    for (int r = 0; r < comm->size(); ++r)
      if (failed[static_cast<size_t>(r)] != 0) ranks += StrCat(ranks.empty() ? "" : ", ", r);
    if (ranks.empty()) return Status::OK();
    return FailedPrecondition("rank(s) ", ranks, " failed (their own errors say why)");
  };
}

Status SaveTrainingCheckpoint(const Plan& plan, const StateStore& state, Communicator* comm, const std::string& dir,
                              const CheckpointMeta& meta) {
  const int rank = comm ? comm->rank() : 0;
  const int world = comm ? comm->size() : 1;
  CheckpointWriter writer(dir, StepTag(meta.step), rank, world);
  std::vector<Tensor> host;  // the writer references the data until Commit returns
  host.reserve(plan.state.size());
  Status local = Status::OK();
  for (const StateInfo& s : plan.state) {
    if (s.kind == StateKind::kGradient || s.kind == StateKind::kCompressionError) continue;
    // Replicated tensors are identical on every rank, except buffers each rank updates from its own
    // micro-batches: those are saved per rank.
    const bool rank_copy = s.shard_of_numel == 0 && s.kind == StateKind::kBuffer && rank != 0;
    if (s.shard_of_numel == 0 && rank != 0 && !rank_copy) continue;
    const TensorView* v = state.Describe(s.name);  // resident or swapped to NVMe
    if (!v) return Internal("state '", s.name, "' has no buffer");
    host.emplace_back(v->dtype, v->dims);
    local = state.CopyToHost(s.name, host.back().raw());
    if (!local.ok()) break;
    const std::vector<int64_t> shape = plan.FullShape(s);
    if (rank_copy) {
      local = writer.AddTensor(RankCopyName(s.name, rank), TensorKind::kRankCopy, s.dtype, shape, host.back().raw());
    } else if (s.shard_of_numel == 0) {
      local = writer.AddTensor(s.name, *TensorKindFromName(StateKindName(s.kind)), s.dtype, shape, host.back().raw());
    } else {
      const int64_t chunk = v->numel();
      const int64_t start = std::min<int64_t>(s.shard_of_numel, rank * chunk);
      const int64_t count = std::min<int64_t>(chunk, s.shard_of_numel - start);
      local = writer.AddShard(s.name, *TensorKindFromName(StateKindName(s.kind)), s.dtype, shape, start, count, host.back().raw());
    }
    if (!local.ok()) break;
  }
  if (!local.ok()) {
    // Still take part in the commit's first agreement, so the other ranks fail with this one.
    const AgreeFn agree = AgreeOver(comm);
    (void)agree(false);
    return local.WithContext(StrCat("saving checkpoint (rank ", rank, ")"));
  }
  return writer.Commit(meta, AgreeOver(comm));
}

Status ResetOnebitLambBeforeFreeze(const Plan& plan, double freeze_step, bool onebit_lamb, int64_t applied_steps,
                                   StateStore* state, std::vector<std::string>* notes) {
  if (!onebit_lamb || static_cast<double>(applied_steps) >= freeze_step) return Status::OK();
  const std::string suffix = "::lamb_state";
  int reset = 0;
  for (const StateInfo& s : plan.state) {
    if (s.kind != StateKind::kOptimizer || s.dtype != DType::kFloat64 || s.name.size() < suffix.size() ||
        s.name.compare(s.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::vector<double> zeros(static_cast<size_t>(Numel(s.dims)), 0.0);
    RETURN_IF_ERROR(state->CopyFromHost(s.name, zeros.data(), zeros.size() * sizeof(double)));
    ++reset;
  }
  if (notes && reset > 0)
    notes->push_back(StrCat("OneBitLamb resumed before its freeze (step ", applied_steps, " < freeze_step ", freeze_step,
                            "): lamb_coeff_freeze, last_factor and scaling_coeff start over, as DeepSpeed's "
                            "load_state_dict resets them"));
  return Status::OK();
}

Status LoadStateTensors(const Plan& plan, const Checkpoint& ckpt, int rank, StateStore* state,
                        std::vector<std::string>* notes, LoadMode mode) {
  const CheckpointManifest& m = ckpt.manifest();
  std::set<std::string> used;
  std::vector<std::string> missing;
  std::string converted;
  for (const StateInfo& s : plan.state) {
    if (s.kind == StateKind::kGradient || (mode == LoadMode::kInitialValues && s.zero_init)) continue;
    // Never saved (each rank's own error feedback): it stays as Allocate left it, zero, as
    // DeepSpeed's 1-bit optimizers reset it when they load a checkpoint.
    if (s.kind == StateKind::kCompressionError) continue;
    const CheckpointTensor* src = SourceFor(plan, s, m);
    if (src && s.kind == StateKind::kBuffer && s.shard_of_numel == 0 && rank != 0) {
      // This rank's own statistics when the checkpoint has them (saved on as many ranks or more);
      // else rank 0's, as DeepSpeed loads the one module state it saved.
      if (const CheckpointTensor* own = m.Find(RankCopyName(s.name, rank)); own && own->kind == TensorKind::kRankCopy)
        src = own;
    }
    if (!src) {
      missing.push_back(StrCat(s.name, " (", StateKindName(s.kind), ")"));
      continue;
    }
    used.insert(src->name);
    const int64_t full = s.shard_of_numel > 0 ? s.shard_of_numel : Numel(s.dims);
    if (src->numel != full)
      return FailedPrecondition(ckpt.dir(), ": tensor '", src->name, "' has ", src->numel, " elements but the plan's state '", s.name, "' has ", full,
                                ": the checkpoint is of another model");
    if (src->dtype != s.dtype && !(IsFloat(src->dtype) && IsFloat(s.dtype)))
      return FailedPrecondition(ckpt.dir(), ": tensor '", src->name, "' is ", DTypeName(src->dtype),
                                " but the plan's state '", s.name, "' is ", DTypeName(s.dtype));
    const TensorView* v = state->Describe(s.name);  // resident or swapped to NVMe
    if (!v) return Internal("state '", s.name, "' has no buffer");
    int64_t start = 0, count = v->numel();
    if (s.shard_of_numel > 0) {
      start = std::min<int64_t>(s.shard_of_numel, rank * v->numel());
      count = std::min<int64_t>(v->numel(), s.shard_of_numel - start);
    }
    if (count == 0) continue;
    Tensor saved(src->dtype, {count});
    RETURN_IF_ERROR(ckpt.ReadRange(src->name, start, count, saved.raw()));
    if (src->dtype != s.dtype) {
      Tensor cast(s.dtype, {count});  // through double: exact for every float dtype, then rounded once
      for (int64_t i = 0; i < count; ++i) cast.SetFromDouble(i, saved.GetAsDouble(i));
      saved = std::move(cast);
      converted += StrCat(converted.empty() ? "" : ", ", s.name, " <- ", src->name, " (", DTypeName(src->dtype),
                          " to ", DTypeName(s.dtype), ")");
    }
    RETURN_IF_ERROR(state->CopyFromHost(s.name, saved.raw(), saved.nbytes()));
  }
  if (!missing.empty()) {
    std::string list;
    for (const std::string& n : missing) list += StrCat(list.empty() ? "" : ", ", n);
    return FailedPrecondition(ckpt.dir(), ": the checkpoint has no tensor for the plan's state ", list,
                              " (saved from another model, optimizer or precision?)");
  }
  if (!notes || mode == LoadMode::kInitialValues) return Status::OK();
  if (!converted.empty() && rank == 0) notes->push_back(StrCat("converted from the checkpoint: ", converted));
  std::string unused;
  for (const CheckpointTensor& t : m.tensors)
    if (!used.count(t.name) && t.kind != TensorKind::kGradient && t.kind != TensorKind::kRankCopy) unused += StrCat(unused.empty() ? "" : ", ", t.name);
  if (!unused.empty() && rank == 0) notes->push_back(StrCat("saved tensors this plan does not use: ", unused));
  return Status::OK();
}

StatusOr<Checkpoint> OpenInitialValues(const Plan& plan) {
  const std::string& dir = plan.initial_values_dir;
  const std::string manifest = dir + "/manifest.json";
  std::ifstream in(manifest, std::ios::binary);
  if (!in)
    return NotFound("the plan's initial values ", dir, " cannot be read (", std::strerror(errno),
                    "): a plan file needs the PLAN.weights folder dscompile wrote next to it");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const uint32_t crc = Crc32c(bytes.data(), bytes.size());
  if (crc != plan.initial_values_manifest_crc)
    return FailedPrecondition("the plan's initial values ", dir, " are not the ones dscompile wrote with this plan ",
                              "(manifest crc32c ", Crc32cHex(crc), ", the plan recorded ",
                              Crc32cHex(plan.initial_values_manifest_crc), "): recompile the plan");
  return Checkpoint::Open(dir);
}

}  // namespace dsc
