// The dsinspect binary: exit codes and outputs on a plan written by the test.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "backend/plan_file.h"
#include "ir/text.h"
#include "onnx/onnx_pb.h"
#include "tests/plan/test_plans.h"

namespace dsc {
namespace {

using testing::CommandResult;

// Runs dsinspect with `args` (already shell-quoted where needed).
CommandResult Dsinspect(const std::string& args, bool with_stderr = true) {
  return testing::RunCommand(std::string("'") + DSINSPECT_PATH + "' " + args, with_stderr);
}

using testing::ShellQuote;
const auto& Q = ShellQuote;

class DsinspectCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plan_ = dir_.File("mlp.plan");
    ASSERT_TRUE(WritePlan(testing::MakeMlpPlan(), plan_).ok());
  }
  testing::TempDir dir_;
  std::string plan_;
};

TEST_F(DsinspectCliTest, Help) {
  CommandResult r = Dsinspect("--help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("usage: dsinspect PLAN"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--format text|onnx|dot"), std::string::npos) << r.output;
}

TEST_F(DsinspectCliTest, DefaultSummary) {
  CommandResult r = Dsinspect(Q(plan_));
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("parameters: 4 tensors, 58 elements, 232 B"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("program train"), std::string::npos) << r.output;
}

TEST_F(DsinspectCliTest, Json) {
  CommandResult r = Dsinspect(Q(plan_) + " --json", /*with_stderr=*/false);
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json s = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(s.is_discarded()) << r.output;
  EXPECT_EQ(s["format_version"], kPlanFormatVersion);
  EXPECT_EQ(s["world_size"], 2);
  EXPECT_EQ(s["programs"][0]["num_parameters"], 58);
  EXPECT_EQ(s["programs"][0]["parameter_bytes"], 232);
  EXPECT_EQ(s["config"]["zero_stage"], 2);
}

TEST_F(DsinspectCliTest, BadAndMissingFiles) {
  const std::string garbage = dir_.File("garbage.plan");
  testing::WriteFileOrDie(garbage, "this is not a plan\n");
  CommandResult r = Dsinspect(Q(garbage));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find(garbage + " is not a dscompile plan"), std::string::npos) << r.output;

  std::string bytes = testing::ReadFileOrDie(plan_);
  const std::string cut = dir_.File("cut.plan");
  testing::WriteFileOrDie(cut, bytes.substr(0, bytes.size() / 2));
  r = Dsinspect(Q(cut));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;

  r = Dsinspect(Q(dir_.File("missing.plan")));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("missing.plan"), std::string::npos) << r.output;
}

TEST_F(DsinspectCliTest, UsageErrors) {
  for (const std::string& args : {std::string(""), Q(plan_) + " --bogus", Q(plan_) + " --elide", Q(plan_) + " --elide x",
                                  Q(plan_) + " --format svg", Q(plan_) + " --format onnx", Q(plan_) + " --json --graph",
                                  Q(plan_) + " " + Q(plan_), Q(plan_) + " --schedule=all"}) {
    CommandResult r = Dsinspect(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("dsinspect: "), std::string::npos) << args << "\n" << r.output;
  }
  CommandResult r = Dsinspect(Q(plan_) + " --program nope");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("dsinspect: error: " + plan_ + " has no program 'nope' (it has: train)"), std::string::npos)
      << r.output;
}

TEST_F(DsinspectCliTest, GraphExports) {
  CommandResult text = Dsinspect(Q(plan_) + " --graph --program train");
  EXPECT_EQ(text.rc, 0) << text.output;
  EXPECT_NE(text.output.find("Gemm"), std::string::npos) << text.output;

  const std::string dot = dir_.File("g.dot");
  CommandResult r = Dsinspect(Q(plan_) + " --format=dot -o " + Q(dot));
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(testing::ReadFileOrDie(dot).rfind("digraph", 0), 0u);

  const std::string model = dir_.File("g.onnx");
  r = Dsinspect(Q(plan_) + " --format onnx -o " + Q(model));
  EXPECT_EQ(r.rc, 0) << r.output;
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(testing::ReadFileOrDie(model)));
  EXPECT_EQ(m.graph().node_size(), 9);

  r = Dsinspect(Q(plan_) + " --format onnx -o " + Q(dir_.File("no/dir/g.onnx")));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("no/dir/g.onnx"), std::string::npos) << r.output;
}

// A full disk on standard output or -o is an error, and -o never replaces a link or a FIFO.
TEST_F(DsinspectCliTest, OutputErrorsAreReported) {
  // Grouped, so that only standard output goes to /dev/full and the error message comes back.
  CommandResult r = testing::RunCommand("{ " + Q(DSINSPECT_PATH) + " " + Q(plan_) + " > /dev/full; }");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("dsinspect: error: cannot write to standard output: No space left on device"),
            std::string::npos) << r.output;

  const std::string target = dir_.File("target");
  testing::WriteFileOrDie(target, "keep");
  std::filesystem::create_symlink(target, dir_.File("link"));
  r = Dsinspect(Q(plan_) + " -o " + Q(dir_.File("link")));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find(dir_.File("link") + ": it is a symbolic link; refusing to replace anything but a regular file"),
            std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::is_symlink(dir_.File("link")));
  EXPECT_EQ(testing::ReadFileOrDie(target), "keep");

  const std::string fifo = dir_.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  r = Dsinspect(Q(plan_) + " --json -o " + Q(fifo));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find(fifo + ": it is a FIFO"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  // The plan, the target, the link and the FIFO: no temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()), std::filesystem::directory_iterator()), 4);
}

// A plan of 22 buckets, each a float[3] all-reduced and waited for after a Relu of another tensor.
TEST_F(DsinspectCliTest, Schedule) {
  std::string inputs = "float[4] x", types, body;
  for (int i = 0; i < 22; ++i) {
    const std::string id = std::to_string(i);
    inputs += StrCat(", float[3] g", id);
    types += StrCat(i ? ", " : "", "float[3] B", id, ", float[3] s", id, ", float[4] r", id);
    body += StrCat("  B", id, " = ai.dscompile.AllReduceStart <op = \"avg\", world = 2, bucket = ", id, "> (g", id, ")\n",
                   "  r", id, " = Relu(x)\n",
                   "  s", id, " = ai.dscompile.CollectiveWait <kind = \"AllReduce\", bucket = ", id, ", world = 2> (B", id, ")\n");
  }
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(StrCat(R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
train ()", inputs, ") => ()\n<", types, ">\n{\n", body, "}\n"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  Plan plan;
  plan.world_size = 2;
  plan.programs.push_back(PlanProgram{"train", std::move(*g)});
  const std::string path = dir_.File("buckets.plan");
  ASSERT_TRUE(WritePlan(plan, path).ok());

  CommandResult r = Dsinspect(Q(path));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("schedule: 22 bucketed collectives, 0 synchronous"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1: g19"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("1: g20"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("    ... 2 more (dsinspect --schedule lists every bucket)\n"), std::string::npos) << r.output;

  // Each all-reduce of 3 floats sends 2*(2-1)/2 of its 12 bytes; a Relu of 4 elements overlaps it.
  r = Dsinspect(Q(path) + " --schedule");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("    bucket 21: AllReduce avg float, 1 member, 3 elements (buffer 3), 12 B sent\n"
                          "      members: g21\n"
                          "      start #63 B21, wait #65 s21; overlaps 1 node, 4 FLOP (Relu 1)\n"),
            std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("more (dsinspect --schedule"), std::string::npos) << r.output;

  r = Dsinspect(Q(path) + " --json", /*with_stderr=*/false);
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json s = nlohmann::json::parse(r.output);
  EXPECT_EQ(s["programs"][0]["schedule"]["buckets"].size(), 22u);
  EXPECT_EQ(s["collectives"]["all_reduce"], 22);
  EXPECT_EQ(s["communication"]["all_reduce"], 22 * 12);

  for (const char* other : {" --json", " --graph", " --format dot"}) {
    r = Dsinspect(Q(path) + " --schedule" + other);
    EXPECT_EQ(r.rc, 2) << other << "\n" << r.output;
    EXPECT_NE(r.output.find("dsinspect: --schedule is for the text summary"), std::string::npos) << r.output;
  }
  r = Dsinspect("--help");
  EXPECT_NE(r.output.find("--schedule            in the summary, every bucketed collective"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dsc
