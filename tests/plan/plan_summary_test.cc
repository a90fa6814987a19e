// Plan summaries (JSON and text) and graph exports (text, ONNX, dot).
#include "backend/plan_summary.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>

#include "ir/onnx_convert.h"
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

}  // namespace
}  // namespace dsc
