// Shared test graphs.
#include "tests/ir/test_graphs.h"

#include <gtest/gtest.h>

#include "ir/text.h"

namespace dsc::testing {

std::unique_ptr<Graph> MakeMlp() {
  auto g = std::make_unique<Graph>();
  g->opsets[kDscDomain] = 1;
  g->metadata["source"] = "torch.onnx";
  const Shape batch4{Dim::Symbol("batch"), Dim::Static(4)};
  Value* x = g->AddInput("x", TensorType{DType::kFloat32, batch4});
  Value* y = g->AddInput("y", TensorType{DType::kInt64, Shape{Dim::Symbol("batch")}});
  Value* w1 = g->AddInitializer("fc1.weight", Tensor::FromVector<float>(DType::kFloat32, {3, 4},
                                                                        {0.1f, -0.25f, 1e-5f, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  Value* b1 = g->AddInitializer("fc1.bias", Tensor::FromVector<float>(DType::kFloat32, {3}, {0, 0.5f, -1}));
  Value* w2 = g->AddInitializer("fc2.weight", Tensor::FromVector<float>(DType::kFloat32, {2, 3}, {1, 2, 3, 4, 5, 6}));

  Node* fc1 = g->AddNode("Gemm", {x, w1, b1}, {"/fc1/Gemm_output_0"}, "", "/fc1/Gemm");
  fc1->SetAttr("alpha", 1.0f);
  fc1->SetAttr("transB", int64_t{1});
  fc1->output(0)->type = TensorType{DType::kFloat32, Shape{Dim::Symbol("batch"), Dim::Static(3)}};
  Node* relu = g->AddNode("Relu", {fc1->output(0)}, {"onnx::Gemm_5"}, "", "/Relu");
  relu->output(0)->type = fc1->output(0)->type;
  Node* fc2 = g->AddNode("Gemm", {relu->output(0), w2}, {"logits"}, "", "/fc2/Gemm");
  fc2->SetAttr("transB", int64_t{1});
  fc2->output(0)->type = TensorType{DType::kFloat32, Shape{Dim::Symbol("batch"), Dim::Static(2)}};
  Node* loss = g->AddNode("SoftmaxCrossEntropyLoss", {fc2->output(0), y}, {"loss", "log_prob"});
  loss->SetAttr("reduction", std::string("mean"));
  loss->output(0)->type = TensorType{DType::kFloat32, Shape{}};
  loss->output(1)->type = fc2->output(0)->type;
  Node* ar = g->AddNode("AllReduce", {loss->output(0)}, {"loss_sum"}, kDscDomain);
  ar->SetAttr("op", std::string("sum"));
  ar->output(0)->type = TensorType{DType::kFloat32, Shape{}};
  g->AddOutput(loss->output(0));
  g->AddOutput(ar->output(0));
  g->training.loss = "loss";
  g->training.parameters = {"fc1.weight", "fc1.bias", "fc2.weight"};
  return g;
}

std::unique_ptr<Graph> ParseOrDie(const std::string& text) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text);
  EXPECT_TRUE(g.ok()) << g.status().ToString() << "\nin:\n" << text;
  return g.ok() ? std::move(g).value() : nullptr;
}

}  // namespace dsc::testing
