// Plan summaries (JSON and text) and graph exports (text, ONNX, dot).
#include "backend/plan_summary.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>

#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "tests/plan/test_plans.h"

namespace dsc {
namespace {

using json = nlohmann::json;

TEST(PlanSummaryTest, JsonHasCountsComputedFromShapes) {
  Plan plan = testing::MakeMlpPlan();
  json s = SummarizePlan(plan);
  EXPECT_EQ(s["format_version"], kPlanFormatVersion);
  EXPECT_EQ(s["producer"], "dscompile");
  EXPECT_EQ(s["source_model"], "models/mlp.onnx");
  EXPECT_EQ(s["world_size"], 2);
  ASSERT_EQ(s["pipeline"].size(), 3u);
  EXPECT_EQ(s["pipeline"][0], json({{"name", "specialize-shapes"}, {"changed", true}, {"seconds", 0.0012}}));
  EXPECT_EQ(s["config"], json({{"train_batch_size", 32},
                               {"train_micro_batch_size_per_gpu", 8},
                               {"gradient_accumulation_steps", 2},
                               {"optimizer", "AdamW"},
                               {"zero_stage", 2},
                               {"precision", "bf16"}}));
  ASSERT_EQ(s["programs"].size(), 1u);
  const json& p = s["programs"][0];
  EXPECT_EQ(p["name"], "train");
  EXPECT_EQ(p["num_nodes"], 9);
  EXPECT_EQ(p["ops"], json({{"Gemm", 2}, {"Relu", 1}, {"Sub", 1}, {"Mul", 3}, {"Constant", 1}, {"ReduceMean", 1}}));
  EXPECT_EQ(p["inputs"], json::parse(R"([{"name":"x","dtype":"float","shape":["batch",4]},
                                         {"name":"y","dtype":"float","shape":["batch",2]}])"));
  EXPECT_EQ(p["outputs"], json::parse(R"([{"name":"loss","dtype":"float","shape":[]}])"));
  EXPECT_EQ(p["loss"], "loss");
  EXPECT_EQ(p["parameters"], json::parse(R"([
    {"name":"fc1.weight","dtype":"float","shape":[8,4],"numel":32,"bytes":128},
    {"name":"fc1.bias","dtype":"float","shape":[8],"numel":8,"bytes":32},
    {"name":"fc2.weight","dtype":"float","shape":[2,8],"numel":16,"bytes":64},
    {"name":"fc2.bias","dtype":"float","shape":[2],"numel":2,"bytes":8}])"));
  EXPECT_EQ(p["num_parameter_tensors"], 4);
  EXPECT_EQ(p["num_parameters"], 32 + 8 + 16 + 2);
  EXPECT_EQ(p["parameter_bytes"], 4 * (32 + 8 + 16 + 2));
  EXPECT_EQ(p["num_constants"], 2);              // scale, pads
  EXPECT_EQ(p["constant_bytes"], 4 + 3 * 8);
}

TEST(PlanSummaryTest, ToleratesMissingAndOddConfig) {
  Plan plan = testing::MakeMlpPlan();
  for (const char* cfg : {"null", "{}", "[1,2]", R"({"optimizer": "Adam", "fp16": {"enabled": "auto"},
                                                   "zero_optimization": 3, "train_batch_size": "auto"})"}) {
    plan.config = json::parse(cfg);
    json c = SummarizePlan(plan)["config"];
    EXPECT_TRUE(c.contains("precision")) << cfg;
    EXPECT_FALSE(c.contains("zero_stage")) << cfg;
    EXPECT_FALSE(c.contains("optimizer")) << cfg;
  }
  EXPECT_EQ(SummarizePlan(plan)["config"]["train_batch_size"], "auto");
  EXPECT_EQ(SummarizePlan(plan)["config"]["precision"], "fp16");
  plan.config = json::parse(R"({"bfloat16": {"enabled": true}})");
  EXPECT_EQ(SummarizePlan(plan)["config"]["precision"], "bf16");
  plan.config = json::parse(R"({"fp16": {"enabled": false}})");
  EXPECT_EQ(SummarizePlan(plan)["config"]["precision"], "fp32");
}

TEST(PlanSummaryTest, NoLossNoParametersAndProgramFilter) {
  Plan plan = testing::MakeMlpPlan();
  plan.programs[0].graph->training = TrainingInfo{};
  plan.programs.push_back(PlanProgram{"step", std::make_unique<Graph>()});
  json s = SummarizePlan(plan);
  ASSERT_EQ(s["programs"].size(), 2u);
  EXPECT_TRUE(s["programs"][0]["loss"].is_null());
  EXPECT_EQ(s["programs"][0]["num_parameters"], 0);
  EXPECT_EQ(s["programs"][0]["num_constants"], 6);  // every initializer is a constant now
  json only = SummarizePlan(plan, "step");
  ASSERT_EQ(only["programs"].size(), 1u);
  EXPECT_EQ(only["programs"][0]["name"], "step");
  EXPECT_EQ(only["programs"][0]["ops"], json::object());
}

TEST(PlanSummaryTest, ParameterThatIsAnInputUsesItsType) {
  auto g = testing::MakeMlpGraph();
  g->ConvertInitializerToInput(g->FindValue("fc2.bias"));
  g->FindValue("fc2.weight")->type.dtype = DType::kFloat32;
  g->training.parameters.push_back("missing");
  json rows = ParameterTable(*g);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[3], json::parse(R"({"name":"fc2.bias","dtype":"float","shape":[2],"numel":2,"bytes":8})"));
  EXPECT_TRUE(rows[4]["numel"].is_null());
}

TEST(PlanSummaryTest, TextShowsEverySection) {
  Plan plan = testing::MakeMlpPlan();
  const std::string text = RenderSummaryText(SummarizePlan(plan), "mlp.plan");
  for (const char* want : {"plan mlp.plan: format version 2, produced by dscompile", "source model: models/mlp.onnx",
                           "world size: 2", "train_batch_size=32", "optimizer=AdamW", "zero_stage=2", "precision=bf16",
                           "pipeline: 3 passes", "autodiff", "program train (9 nodes)", "loss: loss",
                           "parameters: 4 tensors, 58 elements, 232 B", "fc1.weight", "[8,4]",
                           "constants (non-trainable initializers): 2 tensors, 28 B", "float[batch,4]"})
    EXPECT_NE(text.find(want), std::string::npos) << "missing '" << want << "' in\n" << text;
  // Ops are listed by count, most frequent first.
  EXPECT_LT(text.find("Mul"), text.find("Gemm"));
  EXPECT_LT(text.find("Gemm"), text.find("Relu"));
}

// Walks the dot text like Graphviz's lexer: braces count only outside quoted strings.
void ExpectWellFormedDot(const std::string& dot) {
  int depth = 0;
  bool in_quote = false;
  for (size_t i = 0; i < dot.size(); ++i) {
    const char c = dot[i];
    if (in_quote) {
      if (c == '\\') ++i;
      else if (c == '"') in_quote = false;
      ASSERT_NE(c, '\n') << "newline inside a quoted string";
      continue;
    }
    if (c == '"') in_quote = true;
    else if (c == '{') ++depth;
    else if (c == '}') {
      ASSERT_GE(--depth, 0);
    }
  }
  EXPECT_FALSE(in_quote);
  EXPECT_EQ(depth, 0);

  std::set<std::string> declared;
  std::vector<std::pair<std::string, std::string>> edges;
  std::istringstream lines(dot);
  std::string line;
  const std::regex decl(R"(^\s*(\w+) \[)"), edge(R"(^\s*(\w+) -> (\w+) \[)");
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, m, edge)) edges.emplace_back(m[1], m[2]);
    else if (std::regex_search(line, m, decl) && m[1] != "node" && m[1] != "edge") declared.insert(m[1]);
  }
  EXPECT_FALSE(edges.empty());
  for (const auto& [from, to] : edges) {
    EXPECT_TRUE(declared.count(from)) << from << " is not declared";
    EXPECT_TRUE(declared.count(to)) << to << " is not declared";
  }
}

TEST(PlanSummaryTest, DotIsWellFormed) {
  auto g = testing::MakeMlpGraph();
  const std::string dot = GraphToDot(*g);
  ExpectWellFormedDot(dot);
  EXPECT_EQ(dot.rfind("digraph \"mlp\" {", 0), 0u) << dot;
  EXPECT_NE(dot.find("label=\"Gemm\\nfc1/Gemm\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"fc1.weight\\nfloat[8,4]\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"h\\n[batch,8]\""), std::string::npos) << dot;  // an edge
  // 9 nodes' inputs (3+1+3+2+2+0+2+2+1) plus one graph output.
  size_t arrows = 0;
  for (size_t at = dot.find("->"); at != std::string::npos; at = dot.find("->", at + 2)) ++arrows;
  EXPECT_EQ(arrows, 17u);
}

TEST(PlanSummaryTest, DotEscapesAwkwardNames) {
  Graph g;
  g.name = "a \"quoted\" {graph}";
  Value* x = g.AddInput("x\"}{\\", TensorType{DType::kFloat32, Shape{Dim::Static(2)}});
  Value* w = g.AddInitializer("w\nnewline", Tensor(DType::kFloat32, {2}));
  Node* n = g.AddNode("Add", {x, w}, {"y->z"}, "", "node \"1\" }");
  Node* c = g.AddNode("AllReduce", {n->output(0)}, {"out"}, kDscDomain);
  g.AddOutput(c->output(0));
  g.AddOutput(x);  // an input that is also an output
  const std::string dot = GraphToDot(g);
  ExpectWellFormedDot(dot);
  EXPECT_NE(dot.find("ai.dscompile.AllReduce"), std::string::npos);
  EXPECT_NE(dot.find("x\\\"}{\\\\"), std::string::npos) << dot;
}

TEST(PlanSummaryTest, ExportFormats) {
  auto g = testing::MakeMlpGraph();
  EXPECT_TRUE(ParseGraphFormat("text").ok());
  EXPECT_FALSE(ParseGraphFormat("svg").ok());

  StatusOr<std::string> onnx_bytes = ExportGraph(*g, GraphFormat::kOnnx);
  ASSERT_TRUE(onnx_bytes.ok());
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(*onnx_bytes));
  EXPECT_EQ(m.graph().node_size(), 9);

  StatusOr<std::string> elided = ExportGraph(*g, GraphFormat::kText, 4);
  StatusOr<std::string> full = ExportGraph(*g, GraphFormat::kText, -1);
  ASSERT_TRUE(elided.ok() && full.ok());
  EXPECT_NE(elided->find("Gemm"), std::string::npos) << *elided;
  EXPECT_NE(elided->find("..."), std::string::npos) << *elided;  // fc1.weight has 32 > 4 elements
  EXPECT_EQ(full->find("= ..."), std::string::npos) << *full;
  EXPECT_GT(full->size(), elided->size());
}

// Bucketed collectives (ir/dsc_ops.h) on 2 ranks (testing::kBucketedMicroStep). The expected
// figures follow the ring model of runtime/communicator.h: an all-reduce sends 2(N-1)/N of its
// buffer, a reduce-scatter or all-gather (N-1)/N of its world*C padded elements.
using testing::kBucketedMicroStep;

// A step program with a per-tensor all-reduce (as plans before bucketing have) and a bucketed
// in-place gather of two parameters of 7 and 4 elements.
constexpr const char* kBucketedStep = R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
step (float[7] q1, float[4] q2, float[] n2) => (float[] n)
<float[12] B4>
{
  n = ai.dscompile.AllReduce <op = "sum"> (n2)
  B4 = ai.dscompile.AllGatherInPlaceStart <world = 2, bucket = 4> (q1, q2)
  = ai.dscompile.CollectiveWait <kind = "AllGatherInPlace", bucket = 4, world = 2> (B4, q1, q2)
}
)";

std::unique_ptr<Graph> Parse(const std::string& text) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text);
  if (!g.ok()) {
    ADD_FAILURE() << g.status().ToString();
    return std::make_unique<Graph>();
  }
  return std::move(*g);
}

Plan BucketedPlan() {
  Plan plan;
  plan.world_size = 2;
  plan.config = json::parse(R"({"train_batch_size": 12, "gradient_accumulation_steps": 3})");
  plan.programs.push_back(PlanProgram{"micro_step", Parse(kBucketedMicroStep)});
  plan.programs.push_back(PlanProgram{"step", Parse(kBucketedStep)});
  return plan;
}

TEST(PlanSummaryBuckets, ScheduleListsEveryBucketWithItsLayoutAndOverlap) {
  const json s = SummarizePlan(BucketedPlan());
  const json& sched = s["programs"][0]["schedule"];
  ASSERT_EQ(sched["buckets"].size(), 4u) << sched.dump(1);
  // Reduce-scatter of 10 + 3 floats: chunks 5 + 2, C = 7, B = 2*7; it sends (2-1)/2 of 2*7*4
  // bytes. Between its start (#0) and wait (#3): MatMul [4,8]x[8,6] (2*4*6*8 FLOPs) and Relu (24).
  EXPECT_EQ(sched["buckets"][0], json::parse(R"({
    "bucket": 0, "kind": "ReduceScatter", "op": "avg", "dtype": "float", "world": 2,
    "num_members": 2, "members": ["g1", "g2"], "elements": 13, "buffer_elements": 14, "bytes_sent": 28,
    "start": {"index": 0, "name": "B0"}, "wait": {"index": 3, "name": "s1"},
    "overlap": {"nodes": 2, "ops": {"MatMul": 1, "Relu": 1}, "flops": 408, "flops_unknown": 0}})"));
  // A float16 all-reduce of 5 elements: 2*(2-1)/2 of 10 bytes; its wait follows at once.
  const json& ar = sched["buckets"][1];
  EXPECT_EQ(ar["dtype"], "float16");
  EXPECT_EQ(ar["op"], "sum");
  EXPECT_EQ(ar["buffer_elements"], 5);
  EXPECT_EQ(ar["bytes_sent"], 10);
  EXPECT_EQ(ar["overlap"]["nodes"], 0);
  // Gathers: the members' whole sizes come from the wait's outputs (10 and 3: C = 5 + 2), so B
  // holds 2*7 elements and a rank sends half of them. Another bucket's start runs in between, a
  // data movement of no FLOPs.
  const json& ag = sched["buckets"][2];
  const json& ag3 = sched["buckets"][3];
  EXPECT_EQ(ag["op"], nullptr);
  EXPECT_EQ(ag["start"], json({{"index", 6}, {"name", "gather2"}}));
  EXPECT_EQ(ag["elements"], 13);
  EXPECT_EQ(ag["buffer_elements"], 14);
  EXPECT_EQ(ag["bytes_sent"], 28);
  EXPECT_EQ(ag["overlap"], json::parse(R"({"nodes": 1, "ops": {"ai.dscompile.AllGatherStart": 1}, "flops": 0,
                                           "flops_unknown": 0})"));
  EXPECT_EQ(ag3["overlap"]["flops_unknown"], 0);
  // 5 elements in chunks of 3: B = 2*3, 12 of its 24 bytes sent; it overlaps the other bucket's
  // wait, the Add of 10 elements and the release.
  EXPECT_EQ(ag3["buffer_elements"], 6);
  EXPECT_EQ(ag3["bytes_sent"], 12);
  EXPECT_EQ(ag3["wait"]["index"], 11);
  EXPECT_EQ(ag3["overlap"]["nodes"], 3);
  EXPECT_EQ(ag3["overlap"]["flops"], 10);
  // Live gathered elements: +13 (#6), +5 (#7) = 18, -13 at the first release, -5 at the second.
  EXPECT_EQ(sched["gathered_peak_elements"], 18);
  EXPECT_EQ(sched["gathered_peak_at"], json({{"index", 7}, {"name", "B3"}}));

  const json& step = s["programs"][1]["schedule"];
  ASSERT_EQ(step["buckets"].size(), 1u);
  EXPECT_EQ(step["buckets"][0]["kind"], "AllGatherInPlace");
  EXPECT_EQ(step["buckets"][0]["members"], json({"q1", "q2"}));
  EXPECT_EQ(step["buckets"][0]["buffer_elements"], 12);  // chunks 4 + 2
  EXPECT_EQ(step["buckets"][0]["wait"]["name"], "");     // unnamed and without outputs
  EXPECT_EQ(step["gathered_peak_elements"], 0);
  EXPECT_EQ(step["gathered_peak_at"], nullptr);
}

TEST(PlanSummaryBuckets, BytesAndCallsPerOptimizerStep) {
  const json s = SummarizePlan(BucketedPlan());
  // micro_step runs 3 times a step (gradient_accumulation_steps), step once.
  const int64_t all_reduce = 3 * (2 * 1 * 10 / 2) + 2 * 1 * 4 / 2;       // float16 bucket; per-tensor float[]
  const int64_t reduce_scatter = 3 * (1 * 2 * 7 * 4 / 2);
  const int64_t all_gather = 3 * (1 * 2 * 7 * 4 / 2 + 1 * 2 * 3 * 4 / 2) + 1 * 2 * 6 * 4 / 2;
  EXPECT_EQ(s["communication"], json({{"all_reduce", all_reduce}, {"reduce_scatter", reduce_scatter},
                                      {"all_gather", all_gather}, {"total", all_reduce + reduce_scatter + all_gather}}));
  EXPECT_EQ(s["collectives"], json({{"all_reduce", 3 + 1}, {"reduce_scatter", 3}, {"all_gather", 3 * 2 + 1},
                                    {"total", 14}}));
  // The buffers and what the waits unpack (bytes), with the per-tensor all-reduce's output.
  const int64_t micro = 4 * 14 + 4 * 5 + 4 * 2 + 2 * 5 + 2 * 5 + 4 * 14 + 4 * 6 + 4 * 10 + 4 * 3 + 4 * 5;
  EXPECT_EQ(s["memory"]["communication_buffers"], micro + 4 + 4 * 12);
}

// One rank: the collectives are copies, sending nothing and counted as no call (as Communicator::calls).
TEST(PlanSummaryBuckets, OneRankMakesNoCalls) {
  Plan plan = BucketedPlan();
  plan.world_size = 1;
  const json s = SummarizePlan(plan);
  const json zeros = {{"all_reduce", 0}, {"reduce_scatter", 0}, {"all_gather", 0}, {"total", 0}};
  EXPECT_EQ(s["communication"], zeros);
  EXPECT_EQ(s["collectives"], zeros);
  EXPECT_EQ(s["programs"][0]["schedule"]["buckets"][0]["bytes_sent"], 0);
}

// Plans compiled before bucketing: one synchronous collective per tensor, no schedule.
TEST(PlanSummaryBuckets, PerTensorCollectivesKeepTheirCounts) {
  Plan plan;
  plan.world_size = 4;
  plan.config = json::parse(R"({"gradient_accumulation_steps": 2})");
  plan.programs.push_back(PlanProgram{"micro_step", Parse(R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
micro_step (float[10] g, float[3] c, float[6] h) => (float[3] s, float[10] p, float[6] a)
{
  s = ai.dscompile.ReduceScatter <op = "avg"> (g)
  p = ai.dscompile.AllGather(c)
  a = ai.dscompile.AllReduce <op = "avg"> (h)
}
)")});
  plan.programs.push_back(PlanProgram{"step", Parse(R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
step (float[9] q) => ()
{
  = ai.dscompile.AllGatherInPlace(q)
}
)")});
  const json s = SummarizePlan(plan);
  // Chunks of ceil(n/4): the reduce-scatter of 10 moves 4*3 elements, the in-place gather of 9 4*3.
  EXPECT_EQ(s["communication"], json({{"all_reduce", 2 * (2 * 3 * 24 / 4)},
                                      {"reduce_scatter", 2 * (3 * 48 / 4)},
                                      {"all_gather", 2 * (3 * 48 / 4) + 3 * 48 / 4},
                                      {"total", 72 + 72 + 108}}));
  EXPECT_EQ(s["collectives"], json({{"all_reduce", 2}, {"reduce_scatter", 2}, {"all_gather", 3}, {"total", 7}}));
  EXPECT_EQ(s["memory"]["communication_buffers"], 4 * (3 + 10 + 6));
  for (const json& p : s["programs"]) {
    EXPECT_EQ(p["schedule"]["buckets"], json::array());
    EXPECT_EQ(p["schedule"]["gathered_peak_elements"], 0);
  }
  const std::string text = RenderSummaryText(s, "old.plan");
  EXPECT_EQ(text.find("schedule:"), std::string::npos) << text;
}

TEST(PlanSummaryBuckets, TextShowsOneLinePerBucket) {
  const std::string text = RenderSummaryText(SummarizePlan(BucketedPlan()), "b.plan");
  for (const char* want : {"schedule: 4 bucketed collectives, 1 synchronous (no node between start and wait)",
                           "gathered parameters live at once: at most 18 elements (at #7 B3)",
                           "ReduceScatter  avg  float    2: g1, g2", "2 nodes, 408 FLOP (MatMul 1, Relu 1)",
                           "none (synchronous)", "schedule: 1 bucketed collective, 1 synchronous",
                           "1 node, 0 FLOP (AllGatherStart 1)",
                           "3 nodes, 10 FLOP (Add 1, CollectiveWait 1, Release 1)",
                           "all-gather      144 B            7", "total           262 B           14"})
    EXPECT_NE(text.find(want), std::string::npos) << "missing '" << want << "' in\n" << text;
}

// A program of `n` buckets of 3 members each, every wait right after its start.
Plan ManyBuckets(int n) {
  std::string inputs, body, types;
  for (int i = 0; i < n; ++i) {
    const std::string id = std::to_string(i);
    for (const char* m : {"a", "b", "c"}) inputs += StrCat(inputs.empty() ? "" : ", ", "float[4] ", m, id);
    types += StrCat(types.empty() ? "" : ", ", "float[8] B", id, ", float[4] y", id, "a, float[4] y", id, "b, float[4] y", id, "c");
    body += StrCat("  B", id, " = ai.dscompile.AllReduceStart <op = \"sum\", world = 2, bucket = ", id, "> (a", id, ", b", id,
                   ", c", id, ")\n");
    body += StrCat("  y", id, "a, y", id, "b, y", id, "c = ai.dscompile.CollectiveWait <kind = \"AllReduce\", bucket = ", id,
                   ", world = 2> (B", id, ")\n");
  }
  Plan plan;
  plan.world_size = 2;
  plan.programs.push_back(PlanProgram{"train", Parse(StrCat(R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
train ()", inputs, ") => ()\n<", types, ">\n{\n", body, "}\n"))});
  return plan;
}

TEST(PlanSummaryBuckets, CompactTextStopsAfterTwentyBuckets) {
  Plan plan = ManyBuckets(23);
  // 12 elements of 4 bytes each, all-reduced: every bucket sends 48 bytes.
  const json s = SummarizePlan(plan);
  ASSERT_EQ(s["programs"][0]["schedule"]["buckets"].size(), 23u);
  EXPECT_EQ(s["programs"][0]["schedule"]["buckets"][22]["bytes_sent"], 48);
  EXPECT_EQ(s["collectives"]["all_reduce"], 23);
  const std::string compact = RenderSummaryText(s, "many.plan");
  EXPECT_NE(compact.find("3: a19, b19, +1 more"), std::string::npos) << compact;
  EXPECT_EQ(compact.find("3: a20"), std::string::npos) << compact;
  EXPECT_NE(compact.find("... 3 more (dsinspect --schedule lists every bucket)"), std::string::npos) << compact;
  SummaryTextOptions full;
  full.full_schedule = true;
  const std::string all = RenderSummaryText(s, "many.plan", full);
  EXPECT_NE(all.find("bucket 22: AllReduce sum float, 3 members, 12 elements (buffer 12), 48 B sent\n"
                     "      members: a22, b22, c22\n"
                     "      start #44 B22, wait #45 y22a; overlaps none (synchronous)\n"),
            std::string::npos) << all;
  EXPECT_EQ(all.find("more"), std::string::npos) << all;
}

}  // namespace
}  // namespace dsc
