// Plan verification on load: compiled plans edited behind a valid checksum are refused with a
// message naming the file and what is wrong, by ReadPlan and by dsinspect and dsrun, never a crash.
#include "backend/plan_verify.h"

#include <gtest/gtest.h>

#include "backend/plan_file.h"
#include "ir/dsc_ops.h"
#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "passes/memory_plan.h"
#include "tests/plan/test_plans.h"

namespace dsc {
namespace {

using testing::EditPlanBytes;
using testing::ShellQuote;

class PlanVerifyTest : public ::testing::Test {
 protected:
  // One runnable plan for the suite: the MLP compiled for 2 ranks with ZeRO stage 2 (sharded
  // gradients and optimizer states).
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::string plan = dir_->File("mlp.dsplan");
    testing::CommandResult r = testing::RunCommand(
        ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(DSC_SOURCE_DIR "/models/mlp/mlp.onnx") + " --config " +
        ShellQuote(DSC_SOURCE_DIR "/models/zero_configs/stage2_w2.json") + " --world-size 2 -q -o " + ShellQuote(plan));
    ASSERT_EQ(r.rc, 0) << r.output;
    *bytes_ = testing::ReadFileOrDie(plan);
  }
  static void TearDownTestSuite() { delete dir_; }

  // The plan after `edit`: its error from ParsePlan ("" when it loads).
  static std::string LoadError(const testing::PlanEdit& edit) {
    StatusOr<Plan> p = ParsePlan(EditPlanBytes(*bytes_, edit), "edited.dsplan");
    return p.ok() ? "" : p.status().message();
  }

  static testing::TempDir* dir_;
  static std::string* bytes_;
};
testing::TempDir* PlanVerifyTest::dir_ = nullptr;
std::string* PlanVerifyTest::bytes_ = new std::string();

onnx::ValueInfoProto* FindInput(onnx::ModelProto& m, const std::string& name) {
  for (auto& in : *m.mutable_graph()->mutable_input())
    if (in.name() == name) return &in;
  ADD_FAILURE() << "no input " << name;
  return m.mutable_graph()->add_input();
}

nlohmann::json& FindState(nlohmann::json& header, const std::string& name) {
  for (nlohmann::json& s : header["state"])
    if (s["name"] == name) return s;
  ADD_FAILURE() << "no state " << name;
  return header["state"][0];
}

TEST_F(PlanVerifyTest, AnUneditedPlanLoads) {
  EXPECT_EQ(LoadError([](nlohmann::json&, auto&) {}), "");
}

TEST_F(PlanVerifyTest, GraphsAreVerified) {
  // Found by fuzzing: an empty input name reached the kernels.
  std::string e = LoadError([](auto&, auto& programs) { programs["micro_step"].mutable_graph()->mutable_input(0)->set_name(""); });
  EXPECT_NE(e.find("edited.dsplan"), std::string::npos) << e;
  EXPECT_NE(e.find("micro_step"), std::string::npos) << e;

  e = LoadError([](auto&, auto& programs) { programs["micro_step"].mutable_graph()->clear_output(); });
  EXPECT_NE(e.find("edited.dsplan is corrupted or inconsistent: program 'micro_step'"), std::string::npos) << e;
  EXPECT_NE(e.find("'loss'"), std::string::npos) << e;

  // A node no kernel runs.
  e = LoadError([](auto&, auto& programs) {
    for (auto& n : *programs["micro_step"].mutable_graph()->mutable_node())
      if (n.op_type() == "Gemm") n.set_op_type("NoSuchOp");
  });
  EXPECT_NE(e.find("edited.dsplan is corrupted or inconsistent: program 'micro_step'"), std::string::npos) << e;
  EXPECT_NE(e.find("NoSuchOp"), std::string::npos) << e;
}

TEST_F(PlanVerifyTest, StateTableMatchesInitialValuesAndPrograms) {
  // The initial values live in PLAN.weights, checked when dsrun loads them; the table is checked
  // against its own whole shape and against the programs.
  std::string e = LoadError([](nlohmann::json& h, auto&) { FindState(h, "fc1.bias")["dims"] = nlohmann::json::array({32}); });
  EXPECT_NE(e.find("state 'fc1.bias' has a shape that does not hold its 32 elements"), std::string::npos) << e;
  e = LoadError([](nlohmann::json& h, auto&) {
    FindState(h, "fc1.bias")["dims"] = nlohmann::json::array({32});
    FindState(h, "fc1.bias")["shape"] = nlohmann::json::array({32});
  });
  EXPECT_NE(e.find("input 'fc1.bias' (float[64]) does not match its state tensor, float[32]"), std::string::npos) << e;

  e = LoadError([](nlohmann::json& h, auto&) { FindState(h, "fc1.weight::exp_avg")["dims"] = nlohmann::json::array({1023}); });
  EXPECT_NE(e.find("state 'fc1.weight::exp_avg' is a shard of 2048 elements over 2 ranks, so its shape must be [1024]"),
            std::string::npos) << e;

  e = LoadError([](nlohmann::json& h, auto&) { FindState(h, "fc1.weight::grad")["dtype"] = "int64"; });
  EXPECT_NE(e.find("program 'micro_step': input 'fc1.weight::grad' (float[1024]) does not match its state tensor, int64[1024]"),
            std::string::npos) << e;
}

TEST_F(PlanVerifyTest, ReservedScalarsDataAndConfig) {
  std::string e = LoadError([](auto&, auto& programs) {
    FindInput(programs["step"], ops::kLrInput)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  });
  EXPECT_NE(e.find("dsc::lr"), std::string::npos) << e;
  EXPECT_NE(e.find("program 'step'"), std::string::npos) << e;

  // Data inputs are batched by the config's micro-batch size: the loader fills dim 0 with it.
  e = LoadError([](nlohmann::json& h, auto&) {
    h["config"]["train_micro_batch_size_per_gpu"] = 4;
    h["config"]["gradient_accumulation_steps"] = 3;
  });
  EXPECT_NE(e.find("program 'micro_step': input 'x' (float[2,32]) is data, so its dim 0 must be the config's micro-batch size 4"),
            std::string::npos) << e;

  e = LoadError([](nlohmann::json& h, auto&) { h["config"]["train_batch_size"] = 26; });
  EXPECT_NE(e.find("train_batch_size"), std::string::npos) << e;
  e = LoadError([](nlohmann::json& h, auto&) { h["world_size"] = 3; });
  EXPECT_NE(e.find("is a shard of 2048 elements over 3 ranks, so its shape must be [683]"), std::string::npos) << e;

  e = LoadError([](auto&, auto& programs) {
    auto* out = programs["step"].mutable_graph()->mutable_output();
    for (int i = 0; i < out->size(); ++i)
      if (out->Get(i).name() == ops::kGradNormOutput) out->DeleteSubrange(i, 1);
  });
  EXPECT_NE(e.find("program 'step'"), std::string::npos) << e;
  EXPECT_NE(e.find("dsc::grad_norm"), std::string::npos) << e;
}

// Found by fuzzing: a deeply nested config in the header overflowed the stack when printed.
TEST_F(PlanVerifyTest, HeaderNestingIsLimited) {
  std::string e = LoadError([](nlohmann::json& h, auto&) {
    nlohmann::json deep = nlohmann::json::array();
    for (int i = 0; i < 100; ++i) deep = nlohmann::json::array({deep});
    h["config"]["deep"] = deep;
  });
  EXPECT_NE(e.find("edited.dsplan is corrupted: its plan header has nesting deeper than 66 objects and arrays at line "),
            std::string::npos) << e;
}

TEST_F(PlanVerifyTest, MemoryPlanStaysInsideItsArena) {
  std::string e = LoadError([](auto&, auto& programs) {
    for (auto& p : *programs["micro_step"].mutable_metadata_props()) {
      if (p.key() != kMemoryPlanKey) continue;
      nlohmann::json mp = nlohmann::json::parse(p.value());
      ASSERT_TRUE(mp.contains("slots")) << p.value();
      // Self-consistent (every [offset, bytes] slot inside the arena), but the values are larger.
      mp["arena_bytes"] = 64;
      for (auto& [name, slot] : mp["slots"].items()) slot = nlohmann::json::array({0, 64});
      p.set_value(mp.dump());
    }
  });
  EXPECT_NE(e.find("program 'micro_step': its memory plan puts"), std::string::npos) << e;
  EXPECT_NE(e.find("outside the arena"), std::string::npos) << e;
  // Inside the arena but misaligned: kernels would load floats from odd addresses (fuzz_plan).
  e = LoadError([](auto&, auto& programs) {
    for (auto& p : *programs["micro_step"].mutable_metadata_props()) {
      if (p.key() != kMemoryPlanKey) continue;
      nlohmann::json mp = nlohmann::json::parse(p.value());
      for (auto& [name, slot] : mp["slots"].items()) slot[0] = static_cast<int64_t>(slot[0]) + 1;
      mp["arena_bytes"] = static_cast<int64_t>(mp["arena_bytes"]) + 1;
      p.set_value(mp.dump());
    }
  });
  EXPECT_NE(e.find("not a multiple of 64 bytes"), std::string::npos) << e;
}

// The tools refuse such a plan with exit status 1 and the file's name (no crash: -1 or a signal).
TEST_F(PlanVerifyTest, ToolsRefuseAnEditedPlan) {
  const std::string plan = dir_->File("edited.dsplan");
  testing::WriteFileOrDie(plan, EditPlanBytes(*bytes_, [](auto&, auto& programs) {
                            programs["micro_step"].mutable_graph()->mutable_input(0)->set_name("");
                          }));
  for (const std::string& tool : {std::string(DSINSPECT_PATH), std::string(DSRUN_PATH)}) {
    testing::CommandResult r = testing::RunCommand(ShellQuote(tool) + " " + ShellQuote(plan) + " --data " +
                                                   ShellQuote(DSC_SOURCE_DIR "/models/mlp/data"));
    if (tool == DSINSPECT_PATH) r = testing::RunCommand(ShellQuote(tool) + " " + ShellQuote(plan));
    EXPECT_EQ(r.rc, 1) << tool << "\n" << r.output;
    EXPECT_NE(r.output.find(plan + " is corrupted"), std::string::npos) << tool << "\n" << r.output;
  }
}

}  // namespace
}  // namespace dsc

namespace dsc {
namespace {

// select-loss takes any one-element float output as the loss (exporters write float[1,1] too);
// the verifier accepts the plans that makes, and dsinspect loads them (found by fuzz_onnx_import).
using testing::ShellQuote;

TEST(PlanVerifyLoss, AOneElementLossOfAnyRankLoads) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[batch,2] x) => (float[1,1] loss)
<float[2,1] w = {0.5, -1.0}>
{
  y = MatMul(x, w)
  loss = ReduceMean <keepdims = 1> (y)
}
)");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  testing::TempDir dir;
  std::string bytes;
  ASSERT_TRUE(GraphToOnnx(**g).SerializeToString(&bytes));
  testing::WriteFileOrDie(dir.File("m.onnx"), bytes);
  testing::WriteFileOrDie(dir.File("c.json"), R"({"train_batch_size": 4, "optimizer": {"type": "SGD", "params": {"lr": 0.1}}})");
  testing::CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(dir.File("m.onnx")) +
                                                 " --config " + ShellQuote(dir.File("c.json")) + " -q -o " +
                                                 ShellQuote(dir.File("m.dsplan")));
  ASSERT_EQ(c.rc, 0) << c.output;
  StatusOr<Plan> plan = ReadPlan(dir.File("m.dsplan"));
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " " + ShellQuote(dir.File("m.dsplan"))).rc, 0);
}

}  // namespace
}  // namespace dsc

namespace dsc {
namespace {

// The bucketed collectives' contract (ir/dsc_ops.h), checked on load: each broken variant of a
// sound graph is refused with the node that breaks it.
std::string Edited(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at == std::string::npos) {
    ADD_FAILURE() << "'" << from << "' is not in the graph";
    return text;
  }
  return text.replace(at, from.size(), to);
}

// The error of VerifyPlan on a 2-rank plan of one program parsed from `text` ("" when it passes).
std::string BucketError(const std::string& text) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text);
  if (!g.ok()) return "does not parse: " + g.status().message();
  Plan plan;
  plan.world_size = 2;
  plan.programs.push_back(PlanProgram{"train", std::move(*g)});
  Status s = VerifyPlan(plan);
  return s.ok() ? "" : s.message();
}

const std::string kGood = testing::kBucketedMicroStep;

TEST(PlanVerifyBuckets, ASoundScheduleLoads) { EXPECT_EQ(BucketError(kGood), ""); }

TEST(PlanVerifyBuckets, TheBufferIsReadByItsWaitAlone) {
  std::string e = BucketError(Edited(Edited(kGood, "  r = Relu(y)\n", "  r = Relu(y)\n  z = Identity(B0)\n"), "float[5] v)",
                                     "float[5] v, float[14] z)"));
  EXPECT_NE(e.find("program 'train': node producing 'B0' (ai.dscompile.ReduceScatterStart): its buffer 'B0' is read by "
                   "node producing 'z' (Identity); only its one CollectiveWait may read it"),
            std::string::npos) << e;
  e = BucketError(Edited(Edited(kGood, "  a3 = ai.dscompile.CollectiveWait <kind = \"AllReduce\", bucket = 1, world = 2> (B1)\n", ""),
                         "float16[5] a3, ", ""));
  EXPECT_NE(e.find("node producing 'B1' (ai.dscompile.AllReduceStart): its buffer 'B1' is never waited for"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "float[5] v)", "float[5] v, float16[5] B1)"));
  EXPECT_NE(e.find("node producing 'B1' (ai.dscompile.AllReduceStart): its buffer 'B1' is a graph output"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "  r = Relu(y)\n",
                         "  r = Relu(y)\n  a = ai.dscompile.CollectiveWait <kind = \"AllReduce\", bucket = 9, world = 2> (g3)\n"));
  EXPECT_NE(e.find("node producing 'a' (ai.dscompile.CollectiveWait) waits for 'g3', which no Start node made"),
            std::string::npos) << e;
}

TEST(PlanVerifyBuckets, TheWaitMatchesItsStart) {
  std::string e = BucketError(Edited(kGood, "<kind = \"ReduceScatter\", bucket = 0", "<kind = \"AllGather\", bucket = 0"));
  EXPECT_NE(e.find("node producing 's1' (ai.dscompile.CollectiveWait) has kind 'AllGather' but waits for node producing "
                   "'B0' (ai.dscompile.ReduceScatterStart)"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "<kind = \"ReduceScatter\", bucket = 0", "<kind = \"ReduceScatter\", bucket = 7"));
  EXPECT_NE(e.find("node producing 's1' (ai.dscompile.CollectiveWait) has bucket 7 but waits for bucket 0"),
            std::string::npos) << e;
  // One value per member, of the member's dtype and of the size the kind gives it.
  e = BucketError(Edited(Edited(kGood, "s1, s2 = ", "s1 = "), "float[2] s2, ", ""));
  EXPECT_NE(e.find("node producing 's1' (ai.dscompile.CollectiveWait) must read only the buffer and make one value per "
                   "member of node producing 'B0' (ai.dscompile.ReduceScatterStart) (2), not 1"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "float[5] s1", "float[6] s1"));
  EXPECT_NE(e.find("output 's1' has 6 elements, which does not fit member 'g1' (10 elements) of a ReduceScatter over 2 ranks"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "float[5] p3", "float[7] p3"));
  EXPECT_NE(e.find("output 'p3' has 7 elements, which does not fit member 'c3' (3 elements) of a AllGather over 2 ranks"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "float16[5] a3", "float[5] a3"));
  EXPECT_NE(e.find("output 'a3' is float, not float16 as member 'g3'"), std::string::npos) << e;
}

TEST(PlanVerifyBuckets, StartsCarryTheirWorldAndOneDtype) {
  std::string e = BucketError(Edited(kGood, "float[3] g2", "float16[3] g2"));
  EXPECT_NE(e.find("node producing 'B0' (ai.dscompile.ReduceScatterStart): member 'g2' is float16, not float as the first "
                   "member: a bucket holds one dtype"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "<op = \"sum\", world = 2, bucket = 1>", "<op = \"sum\", world = 4, bucket = 1>"));
  EXPECT_NE(e.find("node producing 'B1' (ai.dscompile.AllReduceStart) has world = 4 in a plan for 2 ranks"),
            std::string::npos) << e;
  e = BucketError(Edited(kGood, "<op = \"sum\", world = 2, bucket = 1>", "<op = \"sum\", world = 2>"));
  EXPECT_NE(e.find("node producing 'B1' (ai.dscompile.AllReduceStart) needs the attributes bucket and world"),
            std::string::npos) << e;
  // Bucket 2 is still in flight when B3 would reuse its id (and its Wait names it, too).
  e = BucketError(Edited(Edited(kGood, "<world = 2, bucket = 3>", "<world = 2, bucket = 2>"),
                         "<kind = \"AllGather\", bucket = 3", "<kind = \"AllGather\", bucket = 2"));
  EXPECT_NE(e.find("node producing 'B3' (ai.dscompile.AllGatherStart) starts bucket 2 while node 'gather2' "
                   "(ai.dscompile.AllGatherStart) still has it in flight"),
            std::string::npos) << e;
  // After its Wait an id may come back.
  e = BucketError(Edited(Edited(kGood, "<op = \"sum\", world = 2, bucket = 1>", "<op = \"sum\", world = 2, bucket = 0>"),
                         "<kind = \"AllReduce\", bucket = 1", "<kind = \"AllReduce\", bucket = 0"));
  EXPECT_EQ(e, "");
}

TEST(PlanVerifyBuckets, GatheredParametersAreReleasedOnceAndNotReadAfter) {
  std::string e = BucketError(Edited(kGood, "  = ai.dscompile.Release(p3)\n", "  = ai.dscompile.Release(p3)\n  = ai.dscompile.Release(p3)\n"));
  EXPECT_NE(e.find("node producing '?' (ai.dscompile.Release) releases 'p3' again"), std::string::npos) << e;
  e = BucketError(Edited(kGood, "  = ai.dscompile.Release(p3)\n", ""));
  EXPECT_NE(e.find("program 'train': the gathered parameter 'p3' is never released"), std::string::npos) << e;
  e = BucketError(Edited(kGood, "Release(p3)", "Release(p3, v)"));
  EXPECT_NE(e.find("(ai.dscompile.Release) releases 'v', which is not an output of an AllGather CollectiveWait"),
            std::string::npos) << e;
  e = BucketError(Edited(Edited(kGood, "  u = Add(p1, p1)\n", ""), "  = ai.dscompile.Release(p1, p2)\n",
                         "  = ai.dscompile.Release(p1, p2)\n  u = Add(p1, p1)\n"));
  EXPECT_NE(e.find("node producing 'u' (Add) reads 'p1' after node producing '?' (ai.dscompile.Release) released it"),
            std::string::npos) << e;
}

TEST(PlanVerifyBuckets, AnInPlaceGatherWaitTakesItsStateTensors) {
  const std::string step = R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
step (float[7] q1, float[4] q2) => ()
<float[12] B4>
{
  B4 = ai.dscompile.AllGatherInPlaceStart <world = 2, bucket = 4> (q1, q2)
  = ai.dscompile.CollectiveWait <kind = "AllGatherInPlace", bucket = 4, world = 2> (B4, q1, q2)
}
)";
  EXPECT_EQ(BucketError(step), "");
  std::string e = BucketError(Edited(step, "(B4, q1, q2)", "(B4, q2, q1)"));
  EXPECT_NE(e.find("(ai.dscompile.CollectiveWait) must take the buffer and then the 2 state tensors of node producing 'B4' "
                   "(ai.dscompile.AllGatherInPlaceStart) in its order, and have no outputs"),
            std::string::npos) << e;
}

}  // namespace
}  // namespace dsc
