// Plan summaries and graph exports for dsinspect.
#include "backend/plan_summary.h"

#include "backend/flops.h"
#include "backend/host_step.h"
#include "backend/precision_summary.h"
#include "frontend/config/parameter_groups.h"

#include "passes/memory_plan.h"
#include "passes/rematerialize.h"
#include "ir/host_copy_ops.h"
#include "runtime/communicator.h"  // the byte model (header only)

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "ir/dsc_ops.h"
#include "ir/swap_ops.h"
#include "ir/onnx_convert.h"
#include "ir/text.h"

namespace dsc {
namespace {

using json = nlohmann::json;

json ShapeJson(const std::optional<Shape>& shape) {
  if (!shape) return nullptr;
  json out = json::array();
  for (const Dim& d : *shape) {
    if (d.is_static()) out.push_back(d.value);
    else if (!d.symbol.empty()) out.push_back(d.symbol);
    else out.push_back(nullptr);
  }
  return out;
}

json ValueJson(const Value* v) {
  return {{"name", v->name()}, {"dtype", DTypeName(v->type.dtype)}, {"shape", ShapeJson(v->type.shape)}};
}

std::string OpKey(const Node& n) { return n.domain().empty() ? n.op_type() : n.domain() + "." + n.op_type(); }

// A JSON value that may be a number or a string ("auto" in DeepSpeed configs), or absent.
const json* Lookup(const json& obj, std::initializer_list<const char*> path) {
  const json* cur = &obj;
  for (const char* key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

bool Enabled(const json& config, const char* section) {
  const json* e = Lookup(config, {section, "enabled"});
  if (!e) return false;
  if (e->is_boolean()) return e->get<bool>();
  if (e->is_string()) return e->get<std::string>() == "true" || e->get<std::string>() == "auto";
  return false;
}

json ConfigSummary(const json& config) {
  json out = json::object();
  for (const char* key : {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"})
    if (const json* v = Lookup(config, {key})) out[key] = *v;
  if (const json* t = Lookup(config, {"optimizer", "type"})) out["optimizer"] = *t;
  if (const json* s = Lookup(config, {"zero_optimization", "stage"})) out["zero_stage"] = *s;
  // DeepSpeed accepts "bfloat16" as an alias of the "bf16" section.
  if (Enabled(config, "fp16")) out["precision"] = "fp16";
  else if (Enabled(config, "bf16") || Enabled(config, "bfloat16")) out["precision"] = "bf16";
  else out["precision"] = "fp32";
  return out;
}

int64_t StaticNumel(const Value* v) {
  int64_t e = 1;
  if (v && v->type.shape)
    for (const Dim& d : *v->type.shape) e *= std::max<int64_t>(d.value, 0);
  return e;
}

int64_t ElemSize(const Value* v) { return v ? static_cast<int64_t>(DTypeSize(v->type.dtype)) : 0; }

// The name a node goes by in the schedule: its own, or its first output's when it has none.
std::string NodeLabel(const Node& n) {
  if (!n.name().empty() || n.num_outputs() == 0) return n.name();
  return n.output(0)->name();
}

// One bucketed collective of a program: a Start node, the CollectiveWait that reads its buffer B
// (null in a graph that lacks it; plan_verify refuses such plans, but in-memory ones may get here)
// and where its members live in B.
struct Bucket {
  const Node* start = nullptr;
  const Node* wait = nullptr;
  int64_t start_index = 0, wait_index = -1;
  std::string kind;  // "AllReduce", "ReduceScatter", "AllGather", "AllGatherInPlace"
  ops::BucketLayout layout{{}, 1};
};

// The Start/Wait pairs of a graph in Start order. Member numels: the inputs, except for
// AllGatherStart, whose inputs are this rank's chunks: there the Wait's outputs give the whole
// tensors, as the kernel reads them (without a matching Wait, world chunks each).
std::vector<Bucket> FindBuckets(const Graph& g, int64_t plan_world) {
  std::unordered_map<const Node*, int64_t> index;
  for (const auto& n : g.nodes()) index.emplace(n.get(), static_cast<int64_t>(index.size()));
  std::vector<Bucket> out;
  for (const auto& n : g.nodes()) {
    if (n->domain() != kDscDomain) continue;
    const std::string kind = ops::KindOfStart(n->op_type());
    if (kind.empty()) continue;
    Bucket b;
    b.start = n.get();
    b.start_index = index.at(n.get());
    b.kind = kind;
    b.wait = ops::WaitOf(*n);
    if (b.wait) b.wait_index = index.at(b.wait);
    const int64_t world = std::max<int64_t>(n->GetInt("world", plan_world), 1);
    std::vector<int64_t> numels;
    if (kind == ops::kAllGather && b.wait && b.wait->num_outputs() == n->num_inputs()) {
      for (const Value* y : b.wait->outputs()) numels.push_back(StaticNumel(y));
    } else {
      for (const Value* x : n->inputs()) numels.push_back(StaticNumel(x) * (kind == ops::kAllGather ? world : 1));
    }
    b.layout = ops::BucketLayout(numels, world);
    out.push_back(std::move(b));
  }
  return out;
}

// Bytes one rank sends for one run of a bucket (runtime/communicator.h's ring model, padding
// included: reduce-scatter and gathers move world blocks of C elements).
int64_t BucketBytesSent(const Bucket& b, int64_t world_size) {
  const int size = static_cast<int>(world_size);
  const int64_t elem = b.start->num_inputs() ? ElemSize(b.start->input(0)) : 0;
  const int64_t gathered = b.layout.world * b.layout.block * elem;
  if (b.kind == ops::kAllReduce) return AllReduceBytesSent(b.layout.total * elem, size);
  if (b.kind == ops::kReduceScatter) return ReduceScatterBytesSent(gathered, size);
  return AllGatherBytesSent(gathered, size);
}

// The summary's collective-kind key ("all_reduce", ...) of a per-tensor collective or a Start
// node; empty for other nodes.
std::string CollectiveKey(const Node& n) {
  if (n.domain() != kDscDomain) return "";
  std::string kind = ops::KindOfStart(n.op_type());
  if (kind.empty() && !ops::StartOpOf(n.op_type()).empty()) kind = n.op_type();
  if (kind == ops::kAllReduce) return "all_reduce";
  if (kind == ops::kReduceScatter) return "reduce_scatter";
  if (kind == ops::kAllGather || kind == ops::kAllGatherInPlace) return "all_gather";
  return "";
}

// A program's schedule of bucketed collectives (plan_summary.h: "schedule").
json ScheduleJson(const Graph& g, int64_t world_size) {
  std::vector<const Node*> nodes;
  for (const auto& n : g.nodes()) nodes.push_back(n.get());
  const std::vector<Bucket> all = FindBuckets(g, world_size);
  json buckets = json::array();
  for (const Bucket& b : all) {
    json members = json::array();
    for (const Value* x : b.start->inputs()) members.push_back(x ? x->name() : "");
    json overlap = {{"nodes", 0}, {"ops", json::object()}, {"flops", 0}, {"flops_unknown", 0}};
    if (b.wait) {
      std::map<std::string, int64_t> kinds;
      int64_t flops = 0, unknown = 0;
      for (int64_t i = b.start_index + 1; i < b.wait_index; ++i) {
        ++kinds[OpKind(*nodes[i])];
        const NodeCost c = StaticNodeCost(*nodes[i]);
        if (c.flops_known) flops += c.flops;
        else ++unknown;
      }
      overlap = {{"nodes", std::max<int64_t>(b.wait_index - b.start_index - 1, 0)},
                 {"ops", kinds}, {"flops", flops}, {"flops_unknown", unknown}};
    }
    const Value* first = b.start->num_inputs() ? b.start->input(0) : nullptr;
    buckets.push_back({{"bucket", b.start->GetInt("bucket", -1)},
                       {"kind", b.kind},
                       {"op", b.start->HasAttr("op") ? json(b.start->GetString("op", "")) : json(nullptr)},
                       {"dtype", first ? DTypeName(first->type.dtype) : "undefined"},
                       {"world", b.layout.world},
                       {"num_members", members.size()},
                       {"members", members},
                       {"elements", b.layout.total},
                       {"buffer_elements", b.layout.BufferElements(b.kind)},
                       {"bytes_sent", BucketBytesSent(b, world_size)},
                       {"start", {{"index", b.start_index}, {"name", NodeLabel(*b.start)}}},
                       {"wait", b.wait ? json({{"index", b.wait_index}, {"name", NodeLabel(*b.wait)}}) : json(nullptr)},
                       {"overlap", overlap}});
    // A 1-bit optimizer's all-reduce bucket says when it stops sending.
    for (const char* attr : {"until_step", "var_update_scaler"})
      if (b.start->GetInt(attr, 0) > 0) buckets.back()[attr] = b.start->GetInt(attr, 0);
  }
  // Stage 3's live gathered parameters: an AllGatherStart brings its members' whole tensors, a
  // Release ends them; the peak is what stage3_max_live_parameters bounds.
  std::unordered_map<const Node*, int64_t> gathered;
  for (const Bucket& b : all)
    if (b.kind == ops::kAllGather) gathered[b.start] = b.layout.total;
  int64_t live = 0, peak = 0, peak_index = -1;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = *nodes[i];
    if (n.domain() != kDscDomain) continue;
    if (auto it = gathered.find(&n); it != gathered.end()) live += it->second;
    if (n.op_type() == ops::kRelease)
      for (const Value* x : n.inputs()) live -= StaticNumel(x);
    if (live > peak) {
      peak = live;
      peak_index = static_cast<int64_t>(i);
    }
  }
  return {{"buckets", buckets},
          {"gathered_peak_elements", peak},
          {"gathered_peak_at", peak_index < 0 ? json(nullptr)
                                              : json({{"index", peak_index}, {"name", NodeLabel(*nodes[peak_index])}})}};
}

// The rematerialize pass's segments (without the twin lists) and what they save; null without.
json RematSummary(const Graph& g) {
  auto meta = g.metadata.find(kRematSegmentsKey);
  if (meta == g.metadata.end()) return nullptr;
  json segments = json::parse(meta->second, nullptr, /*allow_exceptions=*/false);
  if (!segments.is_array()) return nullptr;
  // cpu_checkpointing: the bytes of each segment's values that wait in host memory (by where the
  // ToHost's input is made; a segment whose end nodes later passes renamed gets none).
  std::map<std::string, size_t> position;
  std::vector<std::pair<size_t, int64_t>> to_host;  // (producer's position, bytes)
  for (const auto& n : g.nodes()) {
    position[n->name()] = position.size();
    if (ops::IsToHost(*n) && n->input(0) && n->input(0)->producer())
      to_host.emplace_back(position.at(n->input(0)->producer()->name()), StaticNumel(n->input(0)) * ElemSize(n->input(0)));
  }
  int64_t recomputed = 0, copied = 0, dropped = 0;
  for (json& seg : segments) {
    if (!seg.is_object()) continue;
    seg.erase("twins");
    if (!to_host.empty() && seg.contains("first") && seg.contains("last")) {
      auto first = position.find(seg.value("first", "")), last = position.find(seg.value("last", ""));
      int64_t host = 0;
      if (first != position.end() && last != position.end())
        for (const auto& [at, bytes] : to_host) host += at >= first->second && at <= last->second ? bytes : 0;
      seg["host_bytes"] = host;
    }
    if (seg.value("recomputed", false)) ++recomputed;
    copied += seg.value("copied_nodes", int64_t{0});
    dropped += seg.value("dropped_bytes", int64_t{0});
  }
  json out = {{"segments", segments}, {"recomputed_segments", recomputed}, {"copied_nodes", copied},
              {"dropped_bytes", dropped}, {"arena_bytes_without", nullptr}};
  auto without = g.metadata.find(kRematArenaWithoutKey);
  if (without != g.metadata.end()) out["arena_bytes_without"] = std::stoll(without->second);
  return out;
}

// The optimizer updates the fuse pass folded casts into (passes/fuse.cc): how many read a half
// gradient uncast, and how many write their half parameter (param_copy); null when none did.
json FusedUpdates(const Graph& g) {
  int64_t updates = 0, half_grad = 0, copy = 0;
  for (const auto& n : g.nodes()) {
    if (!ops::IsOptimizerUpdate(n->domain(), n->op_type())) continue;
    ++updates;
    if (ops::ReadsAnyFloatGradient(n->domain(), n->op_type()) && n->input(1) && IsHalf(n->input(1)->type.dtype) &&
        n->input(0) && n->input(0)->type.dtype == DType::kFloat32)
      ++half_grad;
    const int c = ops::ParamCopyInput(*n);
    if (c >= 0 && static_cast<int>(n->num_inputs()) > c && n->input(static_cast<size_t>(c))) ++copy;
  }
  if (half_grad == 0 && copy == 0) return nullptr;
  return {{"updates", updates}, {"read_half_gradient", half_grad}, {"write_param_copy", copy}};
}

json ProgramSummary(const PlanProgram& p, int64_t world_size) {
  const Graph& g = *p.graph;
  json out = json::object();
  out["name"] = p.name;
  out["num_nodes"] = g.num_nodes();
  std::map<std::string, int64_t> ops;
  for (const auto& n : g.nodes()) ++ops[OpKey(*n)];
  out["ops"] = ops;
  if (json fused = FusedUpdates(g); !fused.is_null()) out["fused_updates"] = fused;
  json inputs = json::array(), outputs = json::array();
  for (const Value* v : g.inputs()) inputs.push_back(ValueJson(v));
  for (const Value* v : g.outputs()) outputs.push_back(ValueJson(v));
  out["inputs"] = inputs;
  out["outputs"] = outputs;
  out["loss"] = g.training.loss.empty() ? json(nullptr) : json(g.training.loss);

  json params = ParameterTable(g);
  int64_t numel = 0, bytes = 0;
  for (const json& row : params) {
    if (row["numel"].is_number()) numel += row["numel"].get<int64_t>();
    if (row["bytes"].is_number()) bytes += row["bytes"].get<int64_t>();
  }
  out["parameters"] = params;
  out["num_parameter_tensors"] = params.size();
  out["num_parameters"] = numel;
  out["parameter_bytes"] = bytes;

  const std::set<std::string> trainable(g.training.parameters.begin(), g.training.parameters.end());
  int64_t constants = 0, constant_bytes = 0;
  for (const Value* v : g.initializers()) {
    if (trainable.count(v->name())) continue;
    ++constants;
    constant_bytes += static_cast<int64_t>(v->initializer().nbytes());
  }
  out["num_constants"] = constants;
  out["constant_bytes"] = constant_bytes;
  out["schedule"] = ScheduleJson(g, world_size);
  auto plan_meta = g.metadata.find(kMemoryPlanKey);
  if (plan_meta != g.metadata.end()) {
    StatusOr<MemoryPlan> mp = MemoryPlanFromJson(plan_meta->second);
    if (mp.ok()) {
      // Each aliased value with the op that made it, and how many of each kind per op type.
      json aliases = json::array();
      std::map<std::string, std::map<std::string, int64_t>> by_kind;
      for (const auto& n : g.nodes())
        for (const Value* v : n->outputs()) {
          auto a = mp->aliases.find(v->name());
          if (a == mp->aliases.end()) continue;
          const char* kind = AliasKindName(a->second.kind);
          aliases.push_back({{"value", v->name()}, {"of", a->second.of}, {"kind", kind}, {"op", n->op_type()}});
          ++by_kind[kind][n->op_type()];
        }
      out["memory"] = {{"arena_bytes", mp->arena_bytes},
                       {"unaliased_arena_bytes", mp->unaliased_arena_bytes},
                       {"unshared_bytes", mp->unshared_bytes},
                       {"constant_bytes", constant_bytes},
                       {"views", by_kind["view"]},
                       {"in_place", by_kind["in-place"]},
                       {"aliases", aliases}};
      // cpu_checkpointing: the host arena, the checkpoints in it and the bytes each run moves.
      if (!mp->host_slots.empty()) {
        int64_t to_host = 0, to_device = 0, count = 0;
        for (const auto& n : g.nodes()) {
          if (ops::IsToHost(*n)) {
            to_host += StaticNumel(n->input(0)) * ElemSize(n->input(0));
            ++count;
          }
          if (ops::IsFromHost(*n)) to_device += StaticNumel(n->output(0)) * ElemSize(n->output(0));
        }
        json& m = out["memory"];
        m["host_arena_bytes"] = mp->host_arena_bytes;
        m["host_checkpoints"] = count;
        m["device_to_host_bytes"] = to_host;
        m["host_to_device_bytes"] = to_device;
        auto on_device = g.metadata.find(kHostCheckpointArenaWithoutKey);
        m["arena_bytes_checkpoints_on_device"] =
            on_device == g.metadata.end() ? json(nullptr) : json(std::stoll(on_device->second));
      }
    }
  }
  if (json remat = RematSummary(g); !remat.is_null()) out["activation_checkpointing"] = remat;
  return out;
}

// The first step a 1-bit optimizer compresses (its CompressedAllReduce's freeze_step + 1), or 0
// when the plan has none.
// The 1-bit nodes count the optimizer's calls; training step s is call s + this (an AllReduce's
// step_offset: DeepSpeed's fp16/bf16 wrapper calls step() once before training).
int64_t OnebitStepOffset(const Plan& plan) {
  for (const PlanProgram& p : plan.programs)
    if (p.graph)
      for (const auto& node : p.graph->nodes())
        if (node->domain() == kDscDomain &&
            (node->op_type() == ops::kAllReduce || node->op_type() == ops::kAllReduceStart) &&
            node->GetInt("until_step", 0) > 0)
          return node->GetInt("step_offset", 0);  // every retiring AllReduce (or bucket) has the same
  return 0;
}

int64_t FirstCompressedStep(const Plan& plan) {
  for (const PlanProgram& p : plan.programs)
    if (p.graph)
      for (const auto& node : p.graph->nodes())
        if (node->domain() == kDscDomain && node->op_type() == ops::kCompressedAllReduce)
          return node->GetInt("freeze_step", 0) + 1 - OnebitStepOffset(plan);
  return 0;
}

// 0/1 Adam's last training step before its freeze (a ZoadamPhase's last_var_step), or 0 without one.
int64_t ZoadamLastVarianceStep(const Plan& plan) {
  for (const PlanProgram& p : plan.programs)
    if (p.graph)
      for (const auto& node : p.graph->nodes())
        if (node->domain() == kDscDomain && node->op_type() == ops::kZoadamPhase)
          return node->GetInt("last_var_step", 0) - OnebitStepOffset(plan);
  return 0;
}

// Adds one CompressedAllReduce's traffic to `kinds`/`calls` (ir/dsc_ops.h): the all_to_all of the
// packed signs, the all_gather of the server signs, and two all_gathers of one float scale.
void AddCompressedAllReduce(const Node& node, int64_t world, int64_t times, std::map<std::string, int64_t>* kinds,
                            std::map<std::string, int64_t>* calls) {
  const int64_t padded = StaticNumel(node.input(0)), chunk = StaticNumel(node.input(1));
  const int size = static_cast<int>(world);
  (*kinds)["all_to_all"] += times * AllToAllBytesSent(padded / 8, size);
  (*kinds)["all_gather"] += times * (AllGatherBytesSent(world * (chunk / 8), size) + 2 * AllGatherBytesSent(world * 4, size));
  (*calls)["all_to_all"] += times;
  (*calls)["all_gather"] += 3 * times;
}

// Bytes one rank sends per optimizer step, by collective kind, under the ring model of
// runtime/communicator.h (all-reduce 2(N-1)/N of the buffer, reduce-scatter and all-gather
// (N-1)/N of the whole padded buffer), and the collective calls per step; micro_step runs
// gradient_accumulation_steps times. `compressed`: a step after a 1-bit optimizer's freeze,
// when the AllReduces and AllReduceStarts with until_step send nothing and CompressedAllReduce runs (kind
// all_to_all is then listed too).
void CommunicationPerStep(const Plan& plan, bool compressed, json* bytes_out, json* calls_out) {
  const int64_t n = plan.world_size;
  int64_t gas = 1;
  if (plan.config.is_object() && plan.config.contains("gradient_accumulation_steps") &&
      plan.config["gradient_accumulation_steps"].is_number_integer())
    gas = plan.config["gradient_accumulation_steps"].get<int64_t>();
  std::map<std::string, int64_t> kinds = {{"all_reduce", 0}, {"reduce_scatter", 0}, {"all_gather", 0}};
  if (compressed) kinds["all_to_all"] = 0;
  std::map<std::string, int64_t> calls = kinds;
  for (const PlanProgram& p : plan.programs) {
    if (!p.graph) continue;
    const int64_t times = p.name == "micro_step" ? gas : 1;
    for (const auto& node : p.graph->nodes()) {
      if (node->domain() == kDscDomain && node->op_type() == ops::kCompressedAllReduce) {
        if (compressed && n > 1) AddCompressedAllReduce(*node, n, times, &kinds, &calls);
        continue;
      }
      // With until_step an AllReduce runs before the freeze, or with when_retired only after it.
      if (node->GetInt("until_step", 0) > 0 && compressed != (node->GetInt("when_retired", 0) != 0)) continue;
      const std::string key = CollectiveKey(*node);
      // One rank sends nothing and makes no calls (its collectives are copies), as the
      // communicators count.
      if (key.empty() || n <= 1) continue;
      calls[key] += times;
      if (!ops::KindOfStart(node->op_type()).empty()) continue;
      const int64_t elem = ElemSize(node->input(0));
      const int size = static_cast<int>(n);
      const std::string& op = node->op_type();
      // Reduce-scatter and all-gather move the whole padded buffer: world x chunk elements.
      if (op == ops::kAllReduce) {
        kinds[key] += times * AllReduceBytesSent(StaticNumel(node->output(0)) * elem, size);
      } else if (op == ops::kReduceScatter) {
        kinds[key] += times * ReduceScatterBytesSent(n * StaticNumel(node->output(0)) * elem, size);
      } else if (op == ops::kAllGather) {
        kinds[key] += times * AllGatherBytesSent(n * StaticNumel(node->input(0)) * elem, size);
      } else if (op == ops::kAllGatherInPlace) {
        kinds[key] += times * AllGatherBytesSent(n * ops::ChunkSize(StaticNumel(node->input(0)), n) * elem, size);
      }
    }
    for (const Bucket& b : FindBuckets(*p.graph, n))
      if (!(compressed && b.start->GetInt("until_step", 0) > 0))
        kinds[CollectiveKey(*b.start)] += times * BucketBytesSent(b, n);
  }
  *bytes_out = kinds;
  *calls_out = calls;
  int64_t total_bytes = 0, total_calls = 0;
  for (const auto& [kind, b] : kinds) total_bytes += b;
  for (const auto& [kind, c] : calls) total_calls += c;
  (*bytes_out)["total"] = total_bytes;
  (*calls_out)["total"] = total_calls;
}

// Bytes of the values collectives make: outputs of the per-tensor collectives, the Starts'
// buffers B and the Waits' outputs (a Wait output the memory plan aliases shares bytes already
// counted).
int64_t CommunicationBufferBytes(const Graph& g) {
  std::optional<MemoryPlan> mp;
  if (auto meta = g.metadata.find(kMemoryPlanKey); meta != g.metadata.end())
    if (StatusOr<MemoryPlan> parsed = MemoryPlanFromJson(meta->second); parsed.ok()) mp = std::move(*parsed);
  int64_t bytes = 0;
  for (const auto& node : g.nodes()) {
    if (node->domain() != kDscDomain) continue;
    const std::string& op = node->op_type();
    const bool wait = op == ops::kCollectiveWait;
    if (op != ops::kAllReduce && op != ops::kReduceScatter && op != ops::kAllGather && !wait &&
        ops::KindOfStart(op).empty())
      continue;
    for (const Value* v : node->outputs()) {
      if (wait && mp && mp->aliases.count(v->name())) continue;
      bytes += StaticNumel(v) * ElemSize(v);
    }
  }
  return bytes;
}

// The bytes cpu_checkpointing's copies (ir/host_copy_ops.h) move per optimizer step:
// {device_to_host, host_to_device}.
std::pair<int64_t, int64_t> HostCopyBytesPerStep(const Plan& plan) {
  int64_t gas = 1;
  if (plan.config.is_object() && plan.config.contains("gradient_accumulation_steps") &&
      plan.config["gradient_accumulation_steps"].is_number_integer())
    gas = plan.config["gradient_accumulation_steps"].get<int64_t>();
  int64_t to_host = 0, to_device = 0;
  for (const PlanProgram& p : plan.programs) {
    if (!p.graph) continue;
    const int64_t times = p.name == "micro_step" ? gas : 1;
    for (const auto& n : p.graph->nodes()) {
      if (ops::IsToHost(*n)) to_host += times * StaticNumel(n->input(0)) * ElemSize(n->input(0));
      if (ops::IsFromHost(*n)) to_device += times * StaticNumel(n->output(0)) * ElemSize(n->output(0));
    }
  }
  return {to_host, to_device};
}

// The bytes the plan's swap ops (ir/swap_ops.h) move per optimizer step: {nvme_to_device, device_to_nvme}.
std::pair<int64_t, int64_t> SwapBytesPerStep(const Plan& plan) {
  int64_t gas = 1;
  if (plan.config.is_object() && plan.config.contains("gradient_accumulation_steps") &&
      plan.config["gradient_accumulation_steps"].is_number_integer())
    gas = plan.config["gradient_accumulation_steps"].get<int64_t>();
  int64_t in = 0, out = 0;
  for (const PlanProgram& p : plan.programs) {
    if (!p.graph) continue;
    const int64_t times = p.name == "micro_step" ? gas : 1;
    for (const auto& n : p.graph->nodes()) {
      if (n->domain() != kDscDomain) continue;
      if (n->op_type() == ops::kSwapIn) in += times * StaticNumel(n->output(0)) * ElemSize(n->output(0));
      if (n->op_type() == ops::kSwapOut) out += times * StaticNumel(n->input(0)) * ElemSize(n->input(0));
    }
  }
  return {in, out};
}

// The device of the plan's config's zero_optimization.`section` ("none" when it has none).
std::string OffloadDevice(const Plan& plan, const char* section) {
  if (!plan.config.is_object()) return "none";
  const json z = plan.config.value("zero_optimization", json::object());
  if (!z.is_object() || !z.contains(section) || !z[section].is_object()) return "none";
  return z[section].value("device", std::string("none"));
}

// What a GPU rank places in host memory and copies per step when the config offloads the
// optimizer (backend/host_step.h; the runtime copies the same states); none otherwise, and none
// when parameters are offloaded too, which dsrun refuses on a GPU.
std::optional<HostStepLayout> GpuHostStepLayout(const Plan& plan) {
  if (OffloadDevice(plan, "offload_optimizer") == "none" || OffloadDevice(plan, "offload_param") != "none")
    return std::nullopt;
  // Optimizer offload acts at ZeRO 1-3 (at stage 0 the config warns that it has no effect).
  const json z = plan.config.value("zero_optimization", json::object());
  if (!z.is_object() || z.value("stage", 0) < 1) return std::nullopt;
  StatusOr<HostStepLayout> l = HostStepLayoutOf(plan);
  if (!l.ok()) return std::nullopt;  // no micro_step/step (an explicit --passes): nothing runs
  return *std::move(l);
}

// The state table and the per-rank bytes by kind (what every rank holds for the whole run).
void AddStateAndMemory(const Plan& plan, json* out) {
  json state = json::array();
  std::map<std::string, int64_t> by_kind;
  const std::set<std::string> swapped = ops::SwappedStates(plan);
  const std::optional<HostStepLayout> host_step = GpuHostStepLayout(plan);
  int64_t on_nvme = 0, resident = 0;
  for (const StateInfo& st : plan.state) {
    StatusOr<int64_t> n = NumElements(st.dims);
    const int64_t numel = n.ok() ? *n : 0;
    const int64_t bytes = numel * static_cast<int64_t>(DTypeSize(st.dtype));
    const bool on_disk = swapped.count(st.name) > 0;
    state.push_back({{"name", st.name}, {"kind", StateKindName(st.kind)}, {"owner", st.owner},
                     {"dtype", DTypeName(st.dtype)}, {"shape", st.dims}, {"numel", numel}, {"bytes", bytes},
                     {"zero_init", st.zero_init}, {"shard_of_numel", st.shard_of_numel},
                     {"place", on_disk ? "nvme" : "device"}});
    // With the step on the host (a GPU rank's optimizer offload), a state only it uses is in host
    // memory, and one both programs use is on the device with a host mirror.
    if (host_step && host_step->place.count(st.name)) {
      const StatePlace p = host_step->place.at(st.name);
      state.back()["gpu_place"] = p == StatePlace::kHost ? "host" : p == StatePlace::kMirrored ? "mirrored" : "device";
    }
    // A swapped state costs no memory: the step brings it into the activation arena for its update.
    if (on_disk) {
      on_nvme += bytes;
    } else {
      by_kind[StateKindName(st.kind)] += bytes;
      resident += bytes;
    }
  }
  (*out)["state"] = state;
  int64_t activations = 0, host_activations = 0;
  json per_program = json::object();
  for (const json& p : (*out)["programs"])
    if (p.contains("memory")) {
      activations = std::max(activations, p["memory"]["arena_bytes"].get<int64_t>());
      host_activations = std::max(host_activations, p["memory"].value("host_arena_bytes", int64_t{0}));
      per_program[p["name"].get<std::string>()] = p["memory"]["arena_bytes"];
    }
  CommunicationPerStep(plan, false, &(*out)["communication"], &(*out)["collectives"]);
  if (const int64_t from = FirstCompressedStep(plan)) {
    json& c = (*out)["communication_compressed"];
    c["from_step"] = from;
    // 0/1 Adam compresses on some steps only (kernels/common/zoadam_math.h): those before its
    // freeze that update no variance (which send "communication"), and the sync steps after it
    // (the local steps between them send nothing).
    if (const int64_t last = ZoadamLastVarianceStep(plan)) c["last_variance_step"] = last;
    CommunicationPerStep(plan, true, &c["bytes"], &c["collectives"]);
  }
  // Values produced by collectives (gathered parameters, reduced chunks, bucket buffers): they
  // live in the activation arena, so this is a breakdown of activations_peak, not an addition to it.
  int64_t comm_buffers = 0;
  for (const PlanProgram& p : plan.programs)
    if (p.graph) comm_buffers += CommunicationBufferBytes(*p.graph);
  (*out)["memory"] = {{"parameters", by_kind["parameter"]},
                      {"gradients", by_kind["gradient"]},
                      {"optimizer_states", by_kind["optimizer"]},
                      {"master_weights", by_kind["master"]},
                      {"model_states", by_kind["parameter"] + by_kind["gradient"] + by_kind["optimizer"] + by_kind["master"]},
                      {"buffers", by_kind["buffer"]},
                      {"activations_peak", activations},
                      {"communication_buffers", comm_buffers},
                      {"arena_bytes_by_program", per_program}};
  // cpu_checkpointing: the checkpoints waiting in host memory (the executors' host arenas).
  if (host_activations > 0) (*out)["memory"]["activations_host"] = host_activations;
  // 1-bit optimizers' error feedback: listed only in the plans that have it.
  if (by_kind.count("compression_error")) (*out)["memory"]["compression_errors"] = by_kind["compression_error"];
  // Where the bytes are: "device" is the memory the rank computes in (host memory on a CPU rank,
  // which keeps everything there: "host" is 0), "host" host memory besides it, "nvme" the swap
  // file. A GPU rank whose config offloads the optimizer ("gpu_rank") runs the step program on the
  // host with the states only it uses and the step's arena, mirrors of the states both programs
  // use, and copies between them around each step.
  const auto [nvme_in, nvme_out] = SwapBytesPerStep(plan);
  const auto [ckpt_out, ckpt_in] = HostCopyBytesPerStep(plan);
  json& memory = (*out)["memory"];
  memory["places"] = {{"device", resident + activations}, {"host", host_activations}, {"nvme", on_nvme}};
  memory["moved_per_step"] = {{"nvme_to_device", nvme_in}, {"device_to_nvme", nvme_out},
                              {"host_to_device", ckpt_in}, {"device_to_host", ckpt_out}};
  if (!host_step) return;
  const int64_t micro_arena = per_program.value("micro_step", int64_t{0}),
                step_arena = per_program.value("step", int64_t{0});
  memory["gpu_rank"] = {{"places", {{"device", host_step->device_bytes + micro_arena},
                                    {"host", host_step->host_bytes + step_arena + host_activations},
                                    {"host_mirrors", host_step->mirror_bytes},
                                    {"nvme", on_nvme}}},
                        {"moved_per_step", {{"nvme_to_device", nvme_in}, {"device_to_nvme", nvme_out},
                                            {"device_to_host", host_step->to_host_bytes + ckpt_out},
                                            {"host_to_device", host_step->to_device_bytes + ckpt_in}}}};
}

// --- text rendering

std::string Grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace

std::string HumanBytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

namespace {

std::string HumanSeconds(double s) {
  char buf[32];
  if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.0f us", s * 1e6);
  else if (s < 1) std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

std::string ShapeText(const json& shape) {
  if (shape.is_null()) return "[?rank]";
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    const json& d = shape[i];
    out += d.is_number() ? std::to_string(d.get<int64_t>()) : d.is_string() ? d.get<std::string>() : "?";
  }
  return out + "]";
}

std::string Scalar(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string Pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }
std::string PadLeft(const std::string& s, size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }

// Rows of cells printed with each column as wide as its widest cell; `right` marks numeric columns.
void Table(std::ostream& os, const std::string& indent, const std::vector<std::vector<std::string>>& rows,
           const std::vector<bool>& right) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], r[c].size());
    }
  for (const auto& r : rows) {
    std::string line = indent;
    for (size_t c = 0; c < r.size(); ++c) {
      const bool last = c + 1 == r.size();
      const bool align_right = c < right.size() && right[c];
      line += align_right ? PadLeft(r[c], width[c]) : (last ? r[c] : Pad(r[c], width[c]));
      if (!last) line += "  ";
    }
    os << line << "\n";
  }
}

void RenderValues(std::ostream& os, const char* title, const json& values) {
  os << "  " << title << ":" << (values.empty() ? " none" : "") << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const json& v : values)
    rows.push_back({v["name"].get<std::string>(), v["dtype"].get<std::string>() + ShapeText(v["shape"])});
  Table(os, "    ", rows, {});
}

std::string HumanFlops(int64_t f) {
  const char* units[] = {"", "k", "M", "G", "T", "P"};
  double v = static_cast<double>(f);
  int u = 0;
  while (v >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%lld FLOP", static_cast<long long>(f));
  else std::snprintf(buf, sizeof buf, "%.1f %sFLOP", v, units[u]);
  return buf;
}

// "OpA 3, OpB 1" by count, most first; our domain's prefix dropped (the kinds are well known here).
// limit > 0: at most that many, then "...".
std::string OpCounts(const json& ops, size_t limit) {
  std::vector<std::pair<std::string, int64_t>> v;
  for (const auto& [op, count] : ops.items()) {
    std::string name = op;
    const std::string prefix = std::string(kDscDomain) + ".";
    if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
    v.emplace_back(name, count.get<int64_t>());
  }
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (limit > 0 && i == limit) return out + ", ...";
    out += StrCat(i ? ", " : "", v[i].first, " ", v[i].second);
  }
  return out;
}

// limit > 0: the first `limit` names, then "+N more".
std::string MemberNames(const json& names, size_t limit) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (limit > 0 && i == limit) return StrCat(out, ", +", names.size() - limit, " more");
    out += StrCat(i ? ", " : "", names[i].get<std::string>());
  }
  return out;
}

std::string NodeRef(const json& at) {
  if (at.is_null()) return "-";
  const std::string name = at["name"].get<std::string>();
  return StrCat("#", at["index"].get<int64_t>(), name.empty() ? "" : " " + name);
}

std::string OverlapText(const json& o, size_t op_limit) {
  if (o["nodes"].get<int64_t>() == 0) return "none (synchronous)";
  const int64_t nodes = o["nodes"].get<int64_t>();
  std::string out = StrCat(nodes, nodes == 1 ? " node, " : " nodes, ", HumanFlops(o["flops"].get<int64_t>()));
  if (o["flops_unknown"].get<int64_t>() > 0) out += StrCat(" + ", o["flops_unknown"].get<int64_t>(), " unknown");
  return StrCat(out, " (", OpCounts(o["ops"], op_limit), ")");
}

// A program's bucketed collectives: one table row per bucket (at most kCompactBuckets), or with
// `full` every bucket with all its members and the op kinds it overlaps.
constexpr size_t kCompactBuckets = 20;

void RenderSchedule(std::ostream& os, const json& sched, bool full) {
  const json& buckets = sched["buckets"];
  const int64_t peak = sched["gathered_peak_elements"].get<int64_t>();
  if (buckets.empty() && peak == 0) return;
  int64_t sync = 0;
  for (const json& b : buckets) sync += b["overlap"]["nodes"].get<int64_t>() == 0;
  os << "  schedule: " << buckets.size() << (buckets.size() == 1 ? " bucketed collective, " : " bucketed collectives, ") << sync
     << " synchronous (no node between start and wait)\n";
  if (peak > 0)
    os << "    gathered parameters live at once: at most " << Grouped(peak) << " elements (at "
       << NodeRef(sched["gathered_peak_at"]) << ")\n";
  auto op_of = [](const json& b) { return b["op"].is_null() ? std::string("-") : b["op"].get<std::string>(); };
  if (full) {
    for (const json& b : buckets) {
      os << "    bucket " << b["bucket"].get<int64_t>() << ": " << b["kind"].get<std::string>()
         << (b["op"].is_null() ? "" : StrCat(" ", op_of(b))) << " " << b["dtype"].get<std::string>() << ", "
         << b["num_members"].get<int64_t>() << (b["num_members"].get<int64_t>() == 1 ? " member, " : " members, ")
         << Grouped(b["elements"].get<int64_t>()) << (b["elements"].get<int64_t>() == 1 ? " element" : " elements")
         << " (buffer " << Grouped(b["buffer_elements"].get<int64_t>()) << "), "
         << HumanBytes(b["bytes_sent"].get<int64_t>()) << " sent";
      if (const int64_t until = b.value("until_step", int64_t{0}); until > 0)
        os << " up to step " << until << (b.value("var_update_scaler", int64_t{0}) > 0 ? " on variance steps" : "");
      os << "\n      members: " << MemberNames(b["members"], 0) << "\n";
      os << "      start " << NodeRef(b["start"]) << ", wait " << NodeRef(b["wait"]) << "; overlaps "
         << OverlapText(b["overlap"], 0) << "\n";
    }
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"bucket", "kind", "op", "dtype", "members", "elements", "sent", "start", "wait", "overlaps"}};
  for (size_t i = 0; i < buckets.size() && i < kCompactBuckets; ++i) {
    const json& b = buckets[i];
    rows.push_back({std::to_string(b["bucket"].get<int64_t>()), b["kind"].get<std::string>(), op_of(b),
                    b["dtype"].get<std::string>(),
                    StrCat(b["num_members"].get<int64_t>(), ": ", MemberNames(b["members"], 2)),
                    Grouped(b["elements"].get<int64_t>()), HumanBytes(b["bytes_sent"].get<int64_t>()),
                    std::to_string(b["start"]["index"].get<int64_t>()),
                    b["wait"].is_null() ? "-" : std::to_string(b["wait"]["index"].get<int64_t>()),
                    OverlapText(b["overlap"], 3)});
  }
  if (!buckets.empty()) Table(os, "    ", rows, {true, false, false, false, false, true, true, true, true});
  if (buckets.size() > kCompactBuckets)
    os << "    ... " << buckets.size() - kCompactBuckets << " more (dsinspect --schedule lists every bucket)\n";
}

// "activation checkpointing: 6 segments, 5 recomputed ..." and one line per segment.
void RenderRemat(std::ostream& os, const json& r, const json& memory) {
  const size_t n = r["segments"].size();
  os << "  activation checkpointing: " << n << " segments, " << r["recomputed_segments"].get<int64_t>()
     << " recomputed in the backward (" << r["copied_nodes"].get<int64_t>() << " nodes copied; "
     << HumanBytes(r["dropped_bytes"].get<int64_t>()) << " of activations not kept from forward to backward)\n";
  if (!r["arena_bytes_without"].is_null() && memory.is_object() && memory.contains("arena_bytes")) {
    const int64_t with = memory["arena_bytes"].get<int64_t>(), without = r["arena_bytes_without"].get<int64_t>();
    os << "    activation arena " << HumanBytes(with) << ", without checkpointing " << HumanBytes(without);
    if (without > 0) {
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "%.2f", static_cast<double>(with) / static_cast<double>(without));
      os << " (" << ratio << "x)";
    }
    os << "\n";
  }
  if (memory.is_object() && memory.contains("host_arena_bytes")) {
    os << "    cpu_checkpointing: " << memory["host_checkpoints"].get<int64_t>() << " checkpoints wait in host memory ("
       << HumanBytes(memory["host_arena_bytes"].get<int64_t>()) << " host arena; on a CPU rank host memory too), "
       << HumanBytes(memory["device_to_host_bytes"].get<int64_t>()) << " device->host and "
       << HumanBytes(memory["host_to_device_bytes"].get<int64_t>()) << " host->device per run";
    if (!memory["arena_bytes_checkpoints_on_device"].is_null())
      os << "; device arena " << HumanBytes(memory["arena_bytes"].get<int64_t>()) << ", with them on the device "
         << HumanBytes(memory["arena_bytes_checkpoints_on_device"].get<int64_t>());
    os << "\n";
  }
  for (size_t i = 0; i < n; ++i) {
    const json& seg = r["segments"][i];
    os << "    " << i + 1 << ". " << seg["first"].get<std::string>() << " .. " << seg["last"].get<std::string>() << " ("
       << seg["nodes"].get<int64_t>() << " nodes): ";
    if (seg.value("recomputed", false))
      os << "recomputed from " << seg["copied_nodes"].get<int64_t>() << " copies, "
         << HumanBytes(seg["dropped_bytes"].get<int64_t>()) << " not kept, ";
    else
      os << "not recomputed, ";
    os << HumanBytes(seg["saved_bytes"].get<int64_t>()) << " kept for the backward";
    if (seg.value("host_bytes", int64_t{0}) > 0)
      os << ", " << HumanBytes(seg["host_bytes"].get<int64_t>()) << " of its values wait in host memory";
    os << "\n";
  }
}

void RenderProgram(std::ostream& os, const json& p, bool full_schedule) {
  os << "\nprogram " << p["name"].get<std::string>() << " (" << p["num_nodes"].get<int64_t>() << " nodes)\n";
  std::vector<std::pair<std::string, int64_t>> ops;
  for (auto it = p["ops"].begin(); it != p["ops"].end(); ++it) ops.emplace_back(it.key(), it.value().get<int64_t>());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  os << "  ops:" << (ops.empty() ? " none" : "") << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& [type, count] : ops) rows.push_back({type, std::to_string(count)});
  Table(os, "    ", rows, {false, true});
  if (p.contains("fused_updates")) {
    const json& f = p["fused_updates"];
    os << "  fused optimizer updates (fuse: cast-into-update, refresh-into-update): of "
       << f["updates"].get<int64_t>() << ", " << f["read_half_gradient"].get<int64_t>()
       << " read their half gradient without a Cast, " << f["write_param_copy"].get<int64_t>()
       << " write their half parameter (param_copy, the last input) instead of a Cast and an Assign\n";
  }
  RenderValues(os, "inputs", p["inputs"]);
  RenderValues(os, "outputs", p["outputs"]);
  os << "  loss: " << (p["loss"].is_null() ? "(not chosen)" : p["loss"].get<std::string>()) << "\n";

  // After accumulate the parameters are plan state (listed once, below), not graph initializers.
  if (p["num_parameter_tensors"].get<int64_t>() > 0)
  os << "  parameters: " << p["num_parameter_tensors"].get<int64_t>() << " tensors, "
     << Grouped(p["num_parameters"].get<int64_t>()) << " elements, " << HumanBytes(p["parameter_bytes"].get<int64_t>())
     << "\n";
  if (!p["parameters"].empty()) {
    rows = {{"name", "dtype", "shape", "numel", "bytes"}};
    for (const json& r : p["parameters"]) {
      rows.push_back({r["name"].get<std::string>(), r["dtype"].get<std::string>(), ShapeText(r["shape"]),
                      r["numel"].is_null() ? "?" : Grouped(r["numel"].get<int64_t>()),
                      r["bytes"].is_null() ? "?" : Grouped(r["bytes"].get<int64_t>())});
    }
    Table(os, "    ", rows, {false, false, false, true, true});
  }
  os << "  constants (non-trainable initializers): " << p["num_constants"].get<int64_t>() << " tensors, "
     << HumanBytes(p["constant_bytes"].get<int64_t>()) << "\n";
  if (p.contains("memory")) {
    const json& m = p["memory"];
    os << "  activation arena: " << HumanBytes(m["arena_bytes"].get<int64_t>()) << " (without aliasing: "
       << HumanBytes(m["unaliased_arena_bytes"].get<int64_t>())
       << "; one buffer per value: " << HumanBytes(m["unshared_bytes"].get<int64_t>()) << ")\n";
    if (m.contains("host_arena_bytes"))
      os << "  host arena (cpu_checkpointing): " << HumanBytes(m["host_arena_bytes"].get<int64_t>()) << "\n";
    // "views: Reshape 87, Slice 2" and "in place: Add 20, ...": which ops share their input's bytes.
    for (const auto& [key, label] : {std::pair{"views", "views (not computed)"}, std::pair{"in_place", "written in place"}}) {
      if (m[key].empty()) continue;
      int64_t total = 0;
      std::string ops;
      for (const auto& [op, count] : m[key].items()) {
        total += count.get<int64_t>();
        ops += StrCat(ops.empty() ? "" : ", ", op, " ", count.get<int64_t>());
      }
      os << "    " << label << ": " << total << " (" << ops << ")\n";
    }
  }
  if (p.contains("activation_checkpointing")) RenderRemat(os, p["activation_checkpointing"], p.value("memory", json()));
  if (p.contains("schedule")) RenderSchedule(os, p["schedule"], full_schedule);
}

// The groups' table, when the config made any (a plan without them has only "default").
void RenderParameterGroups(std::ostream& os, const json& groups) {
  os << "\nparameter groups (first match wins; the config's \"dscompile\" section):\n";
  std::vector<std::vector<std::string>> rows = {{"group", "weight_decay", "lr_scale", "tensors"}};
  for (const json& g : groups)
    rows.push_back({g.value("name", ""), Scalar(g.value("weight_decay", json(nullptr))), Scalar(g.value("lr_scale", json(nullptr))),
                    std::to_string(g.value("parameters", json::array()).size())});
  Table(os, "  ", rows, {false, true, true, true});
}

void RenderState(std::ostream& os, const json& s) {
  if (s["state"].empty()) return;
  const json& groups = s.contains("parameter_groups") ? s["parameter_groups"] : json::array();
  const bool grouped = std::any_of(groups.begin(), groups.end(), [](const json& g) { return g.value("name", "") != "default"; });
  std::vector<std::vector<std::string>> rows = {{"name", "dtype", "shape", "numel", "bytes"}};
  if (grouped) rows[0].push_back("group");
  int64_t count = 0, numel = 0;
  for (const json& r : s["state"]) {
    if (r["kind"] != "parameter") continue;
    ++count;
    numel += r["numel"].get<int64_t>();
    std::string shape = ShapeText(r["shape"]);
    if (r["shard_of_numel"].get<int64_t>() > 0) shape += " (chunk of " + Grouped(r["shard_of_numel"].get<int64_t>()) + ")";
    rows.push_back({r["name"].get<std::string>(), r["dtype"].get<std::string>(), shape, Grouped(r["numel"].get<int64_t>()),
                    Grouped(r["bytes"].get<int64_t>())});
    if (grouped) rows.back().push_back(r.value("group", "?"));
  }
  os << "\ntrained parameters (plan state): " << count << " tensors, " << Grouped(numel) << " elements\n";
  Table(os, "  ", rows, {false, false, false, true, true, false});
  if (grouped) RenderParameterGroups(os, groups);
  const json& m = s["memory"];
  os << "\nmemory per rank:\n";
  std::vector<std::vector<std::string>> mem = {
      {"parameters", HumanBytes(m["parameters"].get<int64_t>())},
      {"gradients", HumanBytes(m["gradients"].get<int64_t>())},
      {"optimizer states", HumanBytes(m["optimizer_states"].get<int64_t>())},
      {"master weights", HumanBytes(m["master_weights"].get<int64_t>())},
      {"model states (sum of the above)", HumanBytes(m["model_states"].get<int64_t>())},
      {"buffers", HumanBytes(m["buffers"].get<int64_t>())},
      {"activations (peak arena)", HumanBytes(m["activations_peak"].get<int64_t>())}};
  if (m.contains("compression_errors"))
    mem.insert(mem.end() - 1, {"1-bit compression errors", HumanBytes(m["compression_errors"].get<int64_t>())});
  if (m.contains("activations_host"))
    mem.push_back({"checkpoints in host memory (cpu_checkpointing)", HumanBytes(m["activations_host"].get<int64_t>())});
  Table(os, "  ", mem, {false, true});
  const json& places = m["places"];
  const json& moved = m["moved_per_step"];
  os << "\nplaces per rank (device: where the rank computes, host memory on a CPU rank):\n";
  Table(os, "  ",
        {{"device", HumanBytes(places["device"].get<int64_t>())},
         {"host", HumanBytes(places["host"].get<int64_t>())},
         {"nvme", HumanBytes(places["nvme"].get<int64_t>())},
         {"moved per step, nvme -> device", HumanBytes(moved["nvme_to_device"].get<int64_t>())},
         {"moved per step, device -> nvme", HumanBytes(moved["device_to_nvme"].get<int64_t>())},
         {"moved per step, host <-> device", HumanBytes(moved["host_to_device"].get<int64_t>() +
                                                        moved["device_to_host"].get<int64_t>())}},
        {false, true});
  if (!m.contains("gpu_rank")) return;
  const json& gp = m["gpu_rank"]["places"];
  const json& gm = m["gpu_rank"]["moved_per_step"];
  os << "on a GPU rank (optimizer offload: the step program runs on the host with the states only it uses;\n"
        "the states both programs use are on the GPU with a host mirror):\n";
  Table(os, "  ",
        {{"device", HumanBytes(gp["device"].get<int64_t>())},
         {"host", HumanBytes(gp["host"].get<int64_t>())},
         {"  of which mirrors of device state", HumanBytes(gp["host_mirrors"].get<int64_t>())},
         {"nvme", HumanBytes(gp["nvme"].get<int64_t>())},
         {"moved per step, device -> host", HumanBytes(gm["device_to_host"].get<int64_t>())},
         {"moved per step, host -> device", HumanBytes(gm["host_to_device"].get<int64_t>())}},
        {false, true});
}

// A ratio with four significant digits ("0.03134").
std::string ShortRatio(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", r);
  return buf;
}

void RenderCommunication(std::ostream& os, const json& s) {
  const json& bytes = s["communication"];
  const json& calls = s["collectives"];
  if (bytes["total"].get<int64_t>() == 0 && calls["total"].get<int64_t>() == 0) return;
  os << "\ncommunication per rank per optimizer step:\n";
  std::vector<std::vector<std::string>> rows = {{"", "sent", "collectives"}};
  for (const auto& [label, key] : {std::pair{"all-reduce", "all_reduce"}, std::pair{"reduce-scatter", "reduce_scatter"},
                                   std::pair{"all-gather", "all_gather"}, std::pair{"total", "total"}})
    rows.push_back({label, HumanBytes(bytes[key].get<int64_t>()), Grouped(calls[key].get<int64_t>())});
  Table(os, "  ", rows, {false, true, true});
  if (!s.contains("communication_compressed")) return;
  const json& c = s["communication_compressed"];
  const int64_t before = bytes["total"].get<int64_t>(), after = c["bytes"]["total"].get<int64_t>();
  if (c.contains("last_variance_step"))
    os << "\non 0/1 Adam's compressed steps (up to step " << c["last_variance_step"].get<int64_t>()
       << " those that update no variance, then the sync steps; the local steps between them send nothing):\n";
  else
    os << "\nfrom step " << c["from_step"].get<int64_t>() << " (1-bit compression; the gradient all-reduce stops):\n";
  rows = {{"", "sent", "collectives"}};
  for (const auto& [label, key] : {std::pair{"all-to-all", "all_to_all"}, std::pair{"all-gather", "all_gather"},
                                   std::pair{"total", "total"}})
    rows.push_back({label, HumanBytes(c["bytes"][key].get<int64_t>()), Grouped(c["collectives"][key].get<int64_t>())});
  Table(os, "  ", rows, {false, true, true});
  if (before > 0)
    os << "  " << HumanBytes(after) << " is " << ShortRatio(static_cast<double>(after) / static_cast<double>(before))
       << " of the " << HumanBytes(before) << " before it\n";
}

// --- dot

std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': break;
      default: out += c;
    }
  }
  return out + "\"";
}

// A label with line breaks: each part quoted-escaped, joined by Graphviz's centred newline.
std::string DotLabel(const std::vector<std::string>& lines) {
  std::string joined;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string q = DotQuote(lines[i]);
    joined += (i ? "\\n" : "") + q.substr(1, q.size() - 2);
  }
  return "\"" + joined + "\"";
}

std::string TypeLabel(const TensorType& t) { return TypeToString(t); }

}  // namespace

json ParameterTable(const Graph& g) {
  json rows = json::array();
  for (const std::string& name : g.training.parameters) {
    const Value* v = g.FindValue(name);
    json row = {{"name", name}, {"dtype", "undefined"}, {"shape", nullptr}, {"numel", nullptr}, {"bytes", nullptr}};
    if (v && v->is_initializer()) {
      const Tensor& t = v->initializer();
      row["dtype"] = DTypeName(t.dtype());
      row["shape"] = t.dims();
      row["numel"] = t.numel();
      row["bytes"] = t.nbytes();
    } else if (v) {
      // A parameter that is not (or no longer) an initializer, e.g. fed as an input: use its type.
      row["dtype"] = DTypeName(v->type.dtype);
      row["shape"] = ShapeJson(v->type.shape);
      if (v->type.shape && IsStatic(*v->type.shape)) {
        std::vector<int64_t> dims;
        for (const Dim& d : *v->type.shape) dims.push_back(d.value);
        StatusOr<int64_t> n = NumElements(dims);
        if (n.ok()) {
          row["numel"] = *n;
          row["bytes"] = *n * static_cast<int64_t>(DTypeSize(v->type.dtype));
        }
      }
    }
    rows.push_back(row);
  }
  return rows;
}

// Each parameter's group: what the optimizer pass recorded in the step program
// (kParameterGroupsMetadata), or, for plans compiled without groups, one "default" group with the
// optimizer section's weight decay. Also sets "group" on the state table's parameter rows.
void AddParameterGroups(const Plan& plan, json* out) {
  json groups = json::array();
  const PlanProgram* step = plan.FindProgram("step");
  if (step && step->graph) {
    const Graph& g = *step->graph;
    auto meta = g.metadata.find(kParameterGroupsMetadata);
    if (meta != g.metadata.end()) {
      groups = json::parse(meta->second, nullptr, /*allow_exceptions=*/false);
      if (!groups.is_array()) groups = json::array();
    } else if (std::any_of(g.nodes().begin(), g.nodes().end(),
                           [](const auto& n) { return ops::IsOptimizerUpdate(n->domain(), n->op_type()); })) {
      const json wd = plan.config.is_object() && plan.config.contains("optimizer")
                          ? plan.config["optimizer"].value("params", json::object()).value("weight_decay", json(nullptr))
                          : json(nullptr);
      json params = json::array();
      for (const StateInfo& st : plan.state)
        if (st.kind == StateKind::kParameter) params.push_back(st.name);
      groups.push_back({{"name", "default"}, {"weight_decay", wd}, {"lr_scale", 1.0}, {"parameters", params}});
    }
  }
  std::map<std::string, std::string> group_of;
  for (const json& gr : groups)
    for (const json& p : gr.value("parameters", json::array())) group_of[p.get<std::string>()] = gr.value("name", "");
  for (json& row : (*out)["state"])
    if (row["kind"] == "parameter" && group_of.count(row["name"].get<std::string>()))
      row["group"] = group_of[row["name"].get<std::string>()];
  (*out)["parameter_groups"] = groups;
}

json SummarizePlan(const Plan& plan, const std::string& only_program) {
  json out = json::object();
  out["producer"] = plan.producer;
  out["format_version"] = plan.format_version;
  out["source_model"] = plan.source_model;
  out["world_size"] = plan.world_size;
  out["command_line"] = plan.command_line;
  json pipeline = json::array();
  for (const PassRecord& r : plan.pipeline)
    pipeline.push_back({{"name", r.name}, {"changed", r.changed}, {"seconds", r.seconds}});
  out["pipeline"] = pipeline;
  out["config"] = ConfigSummary(plan.config);
  json programs = json::array();
  for (const PlanProgram& p : plan.programs)
    if (p.graph && (only_program.empty() || p.name == only_program)) programs.push_back(ProgramSummary(p, plan.world_size));
  out["programs"] = programs;
  AddStateAndMemory(plan, &out);
  AddParameterGroups(plan, &out);
  out["precision"] = PrecisionSummary(plan);
  return out;
}

std::string RenderSummaryText(const json& s, const std::string& plan_path, const SummaryTextOptions& opts) {
  std::ostringstream os;
  os << "plan " << plan_path << ": format version " << s["format_version"].get<int64_t>() << ", produced by "
     << s["producer"].get<std::string>() << "\n";
  os << "source model: " << (s["source_model"].get<std::string>().empty() ? "(unknown)" : s["source_model"].get<std::string>())
     << "\n";
  os << "world size: " << s["world_size"].get<int64_t>() << "\n";
  if (!s["command_line"].empty()) {
    os << "command line:";
    for (const json& a : s["command_line"]) os << " " << a.get<std::string>();
    os << "\n";
  }

  const json& c = s["config"];
  os << "config:";
  auto item = [&](const char* label, const char* key) {
    if (c.contains(key)) os << " " << label << "=" << Scalar(c[key]);
  };
  item("train_batch_size", "train_batch_size");
  item("micro_batch_per_gpu", "train_micro_batch_size_per_gpu");
  item("grad_accum", "gradient_accumulation_steps");
  item("optimizer", "optimizer");
  item("zero_stage", "zero_stage");
  item("precision", "precision");
  os << "\n";

  const json& pipeline = s["pipeline"];
  double total = 0;
  for (const json& r : pipeline) total += r["seconds"].get<double>();
  os << "\npipeline: " << pipeline.size() << " passes, " << HumanSeconds(total) << "\n";
  std::vector<std::vector<std::string>> rows;
  if (!pipeline.empty()) rows.push_back({"#", "pass", "changed", "time"});
  int i = 0;
  for (const json& r : pipeline)
    rows.push_back({std::to_string(++i), r["name"].get<std::string>(), r["changed"].get<bool>() ? "yes" : "no",
                    HumanSeconds(r["seconds"].get<double>())});
  Table(os, "  ", rows, {true, false, false, true});

  for (const json& p : s["programs"]) RenderProgram(os, p, opts.full_schedule);
  RenderState(os, s);
  RenderCommunication(os, s);
  if (s.contains("precision")) RenderPrecisionText(os, s["precision"]);
  return os.str();
}

StatusOr<GraphFormat> ParseGraphFormat(const std::string& name) {
  if (name == "text") return GraphFormat::kText;
  if (name == "onnx") return GraphFormat::kOnnx;
  if (name == "dot") return GraphFormat::kDot;
  return InvalidArgument("unknown graph format '", name, "' (expected text, onnx or dot)");
}

StatusOr<std::string> ExportGraph(const Graph& g, GraphFormat format, int64_t elide_above) {
  switch (format) {
    case GraphFormat::kText: {
      PrintOptions opts;
      opts.elide_above = elide_above;
      return PrintGraph(g, opts);
    }
    case GraphFormat::kOnnx: {
      onnx::ModelProto m = GraphToOnnx(g);
      if (m.ByteSizeLong() > static_cast<size_t>(std::numeric_limits<int>::max()))
        return Unimplemented("graph '", g.name, "' is over 2 GiB as ONNX (protobuf's limit)");
      std::string bytes;
      if (!m.SerializeToString(&bytes)) return Internal("cannot serialize graph '", g.name, "' as ONNX");
      return bytes;
    }
    case GraphFormat::kDot: return GraphToDot(g);
  }
  return Internal("unhandled graph format");
}

std::string GraphToDot(const Graph& g) {
  std::ostringstream os;
  os << "digraph " << DotQuote(g.name) << " {\n";
  os << "  rankdir=TB;\n";
  os << "  node [fontname=\"Helvetica\", fontsize=11];\n";
  os << "  edge [fontname=\"Helvetica\", fontsize=9];\n";

  // Ids are synthetic (in0, w0, n0, out0) so that only labels need escaping.
  std::unordered_map<const Value*, std::string> source;  // value -> id of the dot node that defines it
  int k = 0;
  for (const Value* v : g.inputs()) {
    std::string id = StrCat("in", k++);
    source[v] = id;
    os << "  " << id << " [shape=ellipse, style=filled, fillcolor=\"#cfe2ff\", label="
       << DotLabel({v->name(), TypeLabel(v->type)}) << "];\n";
  }
  k = 0;
  for (const Value* v : g.initializers()) {
    std::string id = StrCat("w", k++);
    source[v] = id;
    os << "  " << id << " [shape=box, fontsize=8, height=0.2, style=filled, fillcolor=\"#eeeeee\", label="
       << DotLabel({v->name(), TypeLabel(v->type)}) << "];\n";
  }
  k = 0;
  std::vector<std::pair<const Node*, std::string>> node_ids;
  for (const auto& n : g.nodes()) {
    std::string id = StrCat("n", k++);
    node_ids.emplace_back(n.get(), id);
    for (const Value* o : n->outputs()) source[o] = id;
    std::vector<std::string> label = {OpKey(*n)};
    if (!n->name().empty()) label.push_back(n->name());
    os << "  " << id << " [shape=box, style=\"rounded,filled\", fillcolor=\"#fff3cd\", label=" << DotLabel(label) << "];\n";
  }
  k = 0;
  std::vector<std::string> out_ids;
  for (const Value* v : g.outputs()) {
    std::string id = StrCat("out", k++);
    out_ids.push_back(id);
    os << "  " << id << " [shape=ellipse, style=filled, fillcolor=\"#d1e7dd\", label="
       << DotLabel({v->name(), TypeLabel(v->type)}) << "];\n";
  }

  // A value with no definition (malformed graph) still gets a declared endpoint.
  int undefined = 0;
  auto source_of = [&](const Value* v) -> std::string {
    auto it = source.find(v);
    if (it != source.end()) return it->second;
    std::string id = StrCat("undef", undefined++);
    os << "  " << id << " [shape=plaintext, fontcolor=red, label=" << DotLabel({v->name(), "(undefined)"}) << "];\n";
    source[v] = id;
    return id;
  };
  auto edge_label = [](const Value* v) {
    return DotLabel({v->name(), v->type.shape ? ShapeToString(*v->type.shape) : "?"});
  };
  for (const auto& [n, id] : node_ids)
    for (const Value* in : n->inputs())
      if (in) {
        const std::string src = source_of(in);
        os << "  " << src << " -> " << id << " [label=" << edge_label(in) << "];\n";
      }
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const Value* v = g.outputs()[i];
    const std::string src = source_of(v);
    os << "  " << src << " -> " << out_ids[i] << " [label=" << edge_label(v) << "];\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace dsc
