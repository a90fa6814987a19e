// The remaining DeepSpeed sections: checkpoint, monitors (tensorboard, csv_monitor; dsrun writes them), comms_logger, activation
// checkpointing, aio, the flops profiler, and every section dscompile recognises but does not implement (pipeline,
// sparse attention, compression, ...), recorded as unsupported when it is switched on (compiling refuses it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/config/section_reader.h"

namespace dsc {

struct CheckpointConfig {
  std::string tag_validation = "WARN";  // WARN | IGNORE | FAIL
  bool load_universal = false;
  bool use_node_local_storage = false;
  nlohmann::json parallel_write_pipeline_stage = false;  // DeepSpeed keeps 0/1 as given
  bool checkpoint_serialization = true;
  nlohmann::json writer = nullptr;  // null or the resolved writer object
  bool tag_validation_enabled() const { return tag_validation != "IGNORE"; }
  bool tag_validation_fail() const { return tag_validation == "FAIL"; }
};

struct MonitorConfig {
  bool enabled = false;
  std::string output_path;
  std::string job_name = "DeepSpeedJobName";
};

// comms_logger (deepspeed/comm/config.py CommsLoggerConfig): dsrun's communicator times every
// collective it finishes and rank 0 prints DeepSpeed's table at the end of the run
// (runtime/comms_logger.h). prof_all logs every kind; otherwise only the kinds in prof_ops
// (dscompile's names all_reduce, reduce_scatter, all_gather, broadcast, or DeepSpeed's log names
// all_gather_into_tensor and reduce_scatter_tensor for the last two). verbose prints each
// collective as it finishes. debug (the Python caller in each record's name) is refused: the
// communicator is not told which plan node issued a collective.
struct CommsLoggerConfig {
  bool enabled = false;
  bool prof_all = true;
  std::vector<std::string> prof_ops;
  bool verbose = false;
  bool debug = false;
};

struct ActivationCheckpointingConfig {
  bool present = false;  // the section is given: the rematerialize pass checkpoints the forward
  bool partition_activations = false;
  bool contiguous_memory_optimization = false;
  bool cpu_checkpointing = false;  // the recomputed segments' checkpoints wait in host memory (ToHost/FromHost)
  std::optional<int64_t> number_checkpoints;
  bool synchronize_checkpoint_boundary = false;
  bool profile = false;
};

struct AioConfig {
  int64_t block_size = 1048576;
  int64_t queue_depth = 8;
  int64_t intra_op_parallelism = 1;
  bool single_submit = false;
  bool overlap_events = true;
  bool use_gds = false;
};

// flops_profiler: dsrun prints the per-op FLOPs and latency profile of optimizer step
// profile_step (runtime/profiler.h). A plan has nodes, not modules: top_modules is how many of the
// slowest nodes are listed, detailed adds that list to the op-kind table, and module_depth can only
// be -1 (the whole model), recompute_fwd_factor only 0 (plans recompute nothing): other values,
// like profile_step or top_modules < 1, are recorded as unsupported and refused when compiling.
struct FlopsProfilerConfig {
  bool enabled = false;
  double recompute_fwd_factor = 0.0;
  int64_t profile_step = 1;
  int64_t module_depth = -1;
  int64_t top_modules = 1;
  bool detailed = true;
  std::optional<std::string> output_file;
};

Status ParseCheckpointSection(ParseContext& ctx, const nlohmann::json& section, CheckpointConfig* out);
Status ParseMonitorSection(ParseContext& ctx, const std::string& name, const nlohmann::json& section,
                           MonitorConfig* out);
Status ParseCommsLoggerSection(ParseContext& ctx, const nlohmann::json& section, CommsLoggerConfig* out);
Status ParseActivationCheckpointingSection(ParseContext& ctx, const nlohmann::json& section,
                                           ActivationCheckpointingConfig* out);
Status ParseAioSection(ParseContext& ctx, const nlohmann::json& section, AioConfig* out);
Status ParseFlopsProfilerSection(ParseContext& ctx, const nlohmann::json& section, FlopsProfilerConfig* out);

// Sections dscompile only recognises: checks their shape, records in ctx.unsupported the ones that
// are switched on, and returns false for keys that are not such a section.
bool IsRecognisedOnlySection(const std::string& key);
Status CheckRecognisedOnlySection(ParseContext& ctx, const std::string& key, const nlohmann::json& section);

nlohmann::json CheckpointToJson(const CheckpointConfig& c);
nlohmann::json MonitorToJson(const MonitorConfig& m);
nlohmann::json CommsLoggerToJson(const CommsLoggerConfig& c);
nlohmann::json ActivationCheckpointingToJson(const ActivationCheckpointingConfig& a);
nlohmann::json AioToJson(const AioConfig& a);
nlohmann::json FlopsProfilerToJson(const FlopsProfilerConfig& f);

}  // namespace dsc
