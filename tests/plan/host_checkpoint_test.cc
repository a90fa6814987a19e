// cpu_checkpointing in compiled plans (passes/rematerialize.cc, passes/memory_plan.cc): on the
// bundled gpt and a 12-layer GPT the ToHost/FromHost pairs move the recomputed segments'
// checkpoints and nothing else, the readers on the backward side read the copy back, the ToHost
// outputs are in the host arena, and the device arena falls. Without the key the plan is the one
// rematerialize made before (no host nodes, memory plan version 2).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "backend/plan_file.h"
#include "backend/plan_summary.h"
#include "ir/host_copy_ops.h"
#include "passes/memory_plan.h"
#include "passes/rematerialize.h"
#include "tests/plan/test_plans.h"

namespace dsc {
namespace {

using json = nlohmann::json;
using testing::ShellQuote;

int64_t BytesOf(const Value* v) {
  StatusOr<int64_t> b = NumBytes(DimValues(*v->type.shape), v->type.dtype);
  return b.ok() ? *b : -1;
}

bool IsCopy(const Node& n) { return n.name().find("@remat") != std::string::npos; }

// Compiles `model` (under models/) with `config`; returns the plan's micro_step program.
StatusOr<Plan> Compile(const testing::TempDir& dir, const std::string& name, const std::string& model, const json& config) {
  const std::string cfg = dir.File(name + ".json"), out = dir.File(name + ".dsplan");
  std::ofstream(cfg) << config.dump();
  testing::CommandResult r = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                                 ShellQuote(std::string(DSC_SOURCE_DIR) + "/models/" + model) +
                                                 " --config " + ShellQuote(cfg) + " -q -o " + ShellQuote(out));
  if (r.rc != 0) return Internal("dscompile failed: ", r.output);
  return ReadPlan(out);
}

const Graph* MicroStep(const Plan& p) {
  for (const PlanProgram& prog : p.programs)
    if (prog.name == "micro_step") return prog.graph.get();
  return nullptr;
}

struct Case {
  std::string name, model;
  json config;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class HostCheckpoints : public ::testing::TestWithParam<Case> {};

TEST_P(HostCheckpoints, MoveTheRecomputedSegmentsCheckpointsAndLowerTheDeviceArena) {
  const Case& c = GetParam();
  testing::TempDir dir;
  json config = c.config;
  config["activation_checkpointing"] = {{"cpu_checkpointing", false}};
  StatusOr<Plan> remat = Compile(dir, "remat", c.model, config);
  ASSERT_TRUE(remat.ok()) << remat.status().ToString();
  config["activation_checkpointing"]["cpu_checkpointing"] = true;
  StatusOr<Plan> host = Compile(dir, "host", c.model, config);
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  const Graph* g = MicroStep(*host);
  const Graph* r = MicroStep(*remat);
  ASSERT_TRUE(g && r);

  // Without the key: no host nodes, a version 2 memory plan.
  for (const auto& n : r->nodes()) EXPECT_FALSE(ops::IsToHost(*n) || ops::IsFromHost(*n)) << n->Describe();
  EXPECT_NE(r->metadata.at(kMemoryPlanKey).find("\"version\":2"), std::string::npos);

  StatusOr<MemoryPlan> mp = MemoryPlanFromJson(g->metadata.at(kMemoryPlanKey));
  StatusOr<MemoryPlan> rp = MemoryPlanFromJson(r->metadata.at(kMemoryPlanKey));
  ASSERT_TRUE(mp.ok() && rp.ok());
  std::unordered_map<const Node*, size_t> pos;
  std::unordered_map<std::string, size_t> pos_of_name;
  size_t first_copy = g->num_nodes();
  for (const auto& n : g->nodes()) {
    pos_of_name[n->name()] = pos.size();
    if (IsCopy(*n)) first_copy = std::min(first_copy, pos.size());
    pos[n.get()] = pos.size();
  }
  // The recomputed segments' node ranges (names recorded by rematerialize).
  std::vector<std::pair<size_t, size_t>> recomputed;
  for (const json& seg : json::parse(g->metadata.at(kRematSegmentsKey)))
    if (seg.value("recomputed", false))
      recomputed.emplace_back(pos_of_name.at(seg["first"]), pos_of_name.at(seg["last"]));
  ASSERT_FALSE(recomputed.empty());

  int64_t moved = 0, count = 0;
  for (const auto& n : g->nodes()) {
    if (!ops::IsToHost(*n)) continue;
    ++count;
    const Value* v = n->input(0);
    const Value* h = n->output(0);
    SCOPED_TRACE(v->name());
    moved += BytesOf(v);
    EXPECT_GE(BytesOf(v), kHostCheckpointMinBytes);
    // In the host arena only.
    EXPECT_FALSE(mp->slots.count(h->name()));
    ASSERT_TRUE(mp->host_slots.count(h->name()));
    EXPECT_GE(mp->host_slots.at(h->name()).bytes, BytesOf(v));
    // One FromHost reads it back later; on the device v is read by nothing after the ToHost.
    ASSERT_EQ(h->uses().size(), 1u);
    const Node* back = h->uses()[0].node;
    ASSERT_TRUE(ops::IsFromHost(*back));
    EXPECT_GT(pos.at(back), pos.at(n.get()));
    for (const Use& u : v->uses()) {
      EXPECT_LE(pos.at(u.node), pos.at(n.get())) << u.node->Describe() << " reads the device copy after the ToHost";
      EXPECT_FALSE(IsCopy(*u.node)) << u.node->Describe();
    }
    ASSERT_FALSE(back->output(0)->uses().empty());
    // A checkpoint of a recomputed segment: made in one, or read by a recomputation.
    bool recompute_reads = false;
    for (const Use& u : back->output(0)->uses()) recompute_reads = recompute_reads || IsCopy(*u.node);
    const size_t p = pos.at(v->producer());
    bool in_recomputed = false;
    for (const auto& [first, last] : recomputed) in_recomputed = in_recomputed || (p >= first && p <= last);
    EXPECT_TRUE(recompute_reads || in_recomputed) << v->producer()->Describe();
  }
  EXPECT_GT(count, 0);
  // Every forward value a recomputation reads is moved when it is large enough.
  for (const auto& n : g->nodes()) {
    if (!IsCopy(*n)) continue;
    for (const Value* x : n->inputs()) {
      if (!x || !x->producer() || IsCopy(*x->producer()) || ops::IsFromHost(*x->producer())) continue;
      if (pos.at(x->producer()) < first_copy && BytesOf(x) >= kHostCheckpointMinBytes)
        ADD_FAILURE() << n->Describe() << " reads the forward's '" << x->name() << "' on the device";
    }
  }

  // The host arena holds them; the device arena falls by at least half of it, and what the plan
  // records for "checkpoints on the device" is the plan compiled without the key.
  EXPECT_GT(mp->host_arena_bytes, 0);
  EXPECT_LE(mp->host_arena_bytes, moved);
  EXPECT_EQ(std::stoll(g->metadata.at(kHostCheckpointArenaWithoutKey)), rp->arena_bytes);
  EXPECT_LE(mp->arena_bytes + mp->host_arena_bytes / 2, rp->arena_bytes)
      << "device arena " << mp->arena_bytes << " against " << rp->arena_bytes << ", host arena " << mp->host_arena_bytes;
  // dsinspect: the bytes each segment's values keep in host memory add up to what goes to the host.
  const json summary = SummarizePlan(*host);
  for (const json& prog : summary["programs"]) {
    if (prog["name"] != "micro_step") continue;
    EXPECT_EQ(prog["memory"]["device_to_host_bytes"], moved);
    EXPECT_EQ(prog["memory"]["host_checkpoints"], count);
    int64_t by_segment = 0;
    for (const json& seg : prog["activation_checkpointing"]["segments"]) by_segment += seg.value("host_bytes", int64_t{0});
    EXPECT_EQ(by_segment, moved);
  }
  std::cout << c.name << ": " << count << " checkpoints, " << moved << " bytes to host; host arena "
            << mp->host_arena_bytes << ", device arena " << mp->arena_bytes << " (checkpoints on the device: "
            << rp->arena_bytes << ")\n";
}

// Checkpoints under kHostCheckpointMinBytes stay on the device, and a config whose checkpoints are
// all that small is told so (the bundled gpt in bf16 with 2 samples: [2,16,32] is 2 KiB).
TEST(HostCheckpointsSmall, StayOnTheDeviceAndTheCompileSaysSo) {
  testing::TempDir dir;
  const std::string cfg = dir.File("tiny.json"), out = dir.File("tiny.dsplan");
  std::ofstream(cfg) << R"({"train_batch_size": 2, "bf16": {"enabled": true},
                           "optimizer": {"type": "AdamW", "params": {"lr": 0.001}},
                           "activation_checkpointing": {"cpu_checkpointing": true}})";
  testing::CommandResult r = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                                 ShellQuote(std::string(DSC_SOURCE_DIR) + "/models/gpt/gpt.onnx") +
                                                 " --config " + ShellQuote(cfg) + " -q -o " + ShellQuote(out));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("activation_checkpointing.cpu_checkpointing: none of the 4 checkpoints of the recomputed "
                          "segments has 4096 bytes or more"),
            std::string::npos)
      << r.output;
  StatusOr<Plan> plan = ReadPlan(out);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  for (const auto& n : MicroStep(*plan)->nodes()) EXPECT_FALSE(ops::IsToHost(*n)) << n->Describe();
}

INSTANTIATE_TEST_SUITE_P(
    Models, HostCheckpoints,
    ::testing::Values(
        Case{"gpt", "gpt/gpt.onnx",
             {{"train_batch_size", 16}, {"gradient_accumulation_steps", 2},
              {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.001}}}}}}},
        Case{"gpt2_l12", "gpt2_sized/l12/gpt2.onnx",
             {{"train_batch_size", 4}, {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.0001}}}}}}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace dsc
