// The plan file: one versioned, self-describing, checksummed binary file per compiled plan.
//
//   RETURN_IF_ERROR(WritePlan(plan, "mlp.plan"));      // dscompile
//   ASSIGN_OR_RETURN(Plan plan, ReadPlan("mlp.plan"));  // dsrun, dsinspect
//
// Layout (all integers little-endian; offsets are from the start of the file):
//
//   0   8 bytes  magic "DSPLAN\0\n"          } fixed for every format version, so any reader can
//   8   u32      format version              } say "not a plan" or "wrong version" reliably
//   12  u64      header length H
//   20  H bytes  header: UTF-8 JSON object (readable with `dsinspect --json` or a hex viewer)
//                  producer, format_version, source_model, world_size, command_line,
//                  pipeline [{name, changed, seconds}], config (resolved DeepSpeed JSON),
//                  programs [{name, offset, size}], parameters [{name, dtype, shape, numel, bytes}]
//   ...          each program's graph as a serialized onnx.ModelProto (GraphToOnnx, weights as
//                raw_data) at the header's offset/size; the parameter table is informational only
//   end-8 u64    FNV-1a 64 of every byte before it: truncation and corruption fail loudly
//
// The header's state table gives every state tensor's shard shape ("dims") and whole shape
// ("shape"). Initial values are not in the file: WritePlan writes them as a step-0 checkpoint,
// PLAN.weights/global_step0 (runtime/checkpoint_format.h: one safetensors file and a manifest),
// which the header names relative to the plan ("initial_values": {"checkpoint", "manifest_crc32c"}),
// so a plan stays a few MB whatever the model's size and dsrun reads each rank's slices only.
// Weights that are still the ONNX file's bytes are not even copied there: the checkpoint refers to
// the model file (checkpoint_format.h, "sources") unless WritePlanOptions::copy_weights.
// SerializePlan (in memory, no folder) keeps them inline instead, as one more ONNX blob named
// "@initial_state".
//
// A program must serialize to less than 2 GiB (protobuf's message limit).
#pragma once

#include <string>

#include "backend/plan.h"
#include "ir/status.h"

namespace dsc {

inline constexpr char kPlanMagic[8] = {'D', 'S', 'P', 'L', 'A', 'N', '\0', '\n'};

struct WritePlanOptions {
  // Initial values that are a model file's bytes (Tensor::source) are written into the weights
  // folder too, instead of referred to there (a plan folder that moves without the model).
  bool copy_weights = false;
};
// Writes the initial values to `path`.weights (when the plan holds them), then the plan to
// `path`.tmp, renamed over `path`: on any error the previous plan stays (a new weights folder may
// be left, which the old plan's recorded checksum refuses).
Status WritePlan(const Plan& plan, const std::string& path, const WritePlanOptions& options = {});
// Reading checks the checksum, then the plan itself (backend/plan_verify.h): a plan that loads is
// safe to print and, when it has micro_step and step programs, to hand to the runtime (which
// checks the initial values when it loads them).
StatusOr<Plan> ReadPlan(const std::string& path);

// The same in memory; `name` is what error messages call the bytes (usually the file path).
StatusOr<std::string> SerializePlan(const Plan& plan);
StatusOr<Plan> ParsePlan(const std::string& bytes, const std::string& name);

}  // namespace dsc
