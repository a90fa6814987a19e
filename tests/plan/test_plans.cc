// Test plans and file helpers.
#include "tests/plan/test_plans.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

#include "backend/plan_file.h"

namespace dsc::testing {

std::unique_ptr<Graph> MakeMlpGraph() {
  auto g = std::make_unique<Graph>();
  g->name = "mlp";
  g->metadata["source"] = "unit test";
  const DType f32 = DType::kFloat32;
  Value* x = g->AddInput("x", TensorType{f32, Shape{Dim::Symbol("batch"), Dim::Static(4)}});
  Value* y = g->AddInput("y", TensorType{f32, Shape{Dim::Symbol("batch"), Dim::Static(2)}});
  std::vector<float> w1(32), w2(16);
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = 0.01f * static_cast<float>(i) - 0.1f;
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = -0.02f * static_cast<float>(i) + 0.05f;
  Value* fc1w = g->AddInitializer("fc1.weight", Tensor::FromVector(f32, {8, 4}, w1));
  Value* fc1b = g->AddInitializer("fc1.bias", Tensor::FromVector<float>(f32, {8}, {1, 2, 3, 4, 5, 6, 7, 8}));
  Value* fc2w = g->AddInitializer("fc2.weight", Tensor::FromVector(f32, {2, 8}, w2));
  Value* fc2b = g->AddInitializer("fc2.bias", Tensor::FromVector<float>(f32, {2}, {0.5, -0.5}));
  Value* scale = g->AddInitializer("scale", Tensor::Scalar(f32, 0.5));
  g->AddInitializer("pads", Tensor::FromVector<int64_t>(DType::kInt64, {3}, {0, 1, 2}));

  Node* fc1 = g->AddNode("Gemm", {x, fc1w, fc1b}, {"h"}, "", "fc1/Gemm");
  fc1->SetAttr("transB", int64_t{1});
  fc1->output(0)->type = TensorType{f32, Shape{Dim::Symbol("batch"), Dim::Static(8)}};
  Node* relu = g->AddNode("Relu", {fc1->output(0)}, {"a"}, "", "relu");
  relu->output(0)->type = fc1->output(0)->type;
  Node* fc2 = g->AddNode("Gemm", {relu->output(0), fc2w, fc2b}, {"logits"}, "", "fc2/Gemm");
  fc2->SetAttr("transB", int64_t{1});
  fc2->SetAttr("alpha", 1.0f);
  fc2->output(0)->type = TensorType{f32, Shape{Dim::Symbol("batch"), Dim::Static(2)}};
  Node* sub = g->AddNode("Sub", {fc2->output(0), y}, {"diff"});
  Node* sq = g->AddNode("Mul", {sub->output(0), sub->output(0)}, {"sq"});
  Node* one = g->AddNode("Constant", {}, {"one"}, "", "one");
  one->SetAttr("value", Tensor::Scalar(f32, 1.0));
  Node* scaled = g->AddNode("Mul", {sq->output(0), scale}, {"scaled"});
  Node* scaled1 = g->AddNode("Mul", {scaled->output(0), one->output(0)}, {"scaled1"});
  Node* mean = g->AddNode("ReduceMean", {scaled1->output(0)}, {"loss"}, "", "loss/ReduceMean");
  mean->SetAttr("keepdims", int64_t{0});
  mean->output(0)->type = TensorType{f32, Shape{}};
  g->AddOutput(mean->output(0));
  g->training.loss = "loss";
  g->training.parameters = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
  return g;
}

Plan MakeMlpPlan() {
  Plan plan;
  plan.source_model = "models/mlp.onnx";
  plan.world_size = 2;
  plan.command_line = {"dscompile", "models/mlp.onnx", "--config", "ds.json", "--world-size", "2"};
  plan.pipeline = {{"specialize-shapes", true, 0.0012}, {"select-loss", false, 0.00003}, {"autodiff", true, 0.25}};
  plan.config = nlohmann::json::parse(R"({
    "train_batch_size": 32, "train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 2,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.001}},
    "zero_optimization": {"stage": 2},
    "bf16": {"enabled": true}
  })");
  plan.programs.push_back(PlanProgram{"train", MakeMlpGraph()});
  return plan;
}

namespace {

uint64_t GetLE(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}

void PutLE(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

std::string EditPlanBytes(const std::string& bytes, const PlanEdit& edit) {
  constexpr size_t kPreamble = sizeof(kPlanMagic) + 4 + 8;
  const size_t header_len = GetLE(bytes, sizeof(kPlanMagic) + 4, 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(kPreamble, header_len));
  std::vector<std::string> order;
  std::map<std::string, onnx::ModelProto> programs;
  for (const nlohmann::json& p : header["programs"]) {
    const std::string name = p["name"];
    order.push_back(name);
    if (!programs[name].ParseFromString(bytes.substr(p["offset"].get<size_t>(), p["size"].get<size_t>())))
      throw std::runtime_error("EditPlanBytes: program " + name + " does not parse");
  }
  edit(header, programs);
  std::vector<std::string> blobs;
  for (const std::string& name : order) blobs.push_back(programs.at(name).SerializeAsString());
  // As the writer does: offsets depend on the header's length, which depends on their digits.
  std::string text;
  for (size_t len = 0;;) {
    size_t offset = kPreamble + len;
    for (size_t i = 0; i < order.size(); ++i) {
      header["programs"][i]["offset"] = offset;
      header["programs"][i]["size"] = blobs[i].size();
      offset += blobs[i].size();
    }
    text = header.dump(1) + "\n";
    if (text.size() == len) break;
    len = text.size();
  }
  std::string out(kPlanMagic, sizeof(kPlanMagic));
  PutLE(&out, GetLE(bytes, sizeof(kPlanMagic), 4), 4);
  PutLE(&out, text.size(), 8);
  out += text;
  for (const std::string& b : blobs) out += b;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : out) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  PutLE(&out, h, 8);
  return out;
}

}  // namespace dsc::testing
