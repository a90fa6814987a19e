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
