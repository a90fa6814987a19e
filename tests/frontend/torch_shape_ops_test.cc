// torch.squeeze(x, dim) leaves x alone where that dim is not 1, and torch.cat skips empty 1-D
// tensors; the dynamo exporter writes a plain ONNX Squeeze / Concat, which ONNX refuses there.
// ShapeOpsAsTorchDoes (frontend/torch_shape_ops.cc) imports them as torch defines them when the node
// metadata names the aten call, and leaves other files to ONNX.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "frontend/onnx_import.h"
#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"

namespace dsc {
namespace {

// y = Squeeze(x, axes) with `target`'s fx metadata ("" for none), x an input of type `x_type`.
onnx::ModelProto Model(const std::string& x_type, const std::string& axes, const std::string& y_type,
                       const std::string& target) {
  const std::string text = "<ir_version: 10, opset_import: [\"\" : 20]>\ng (" + x_type + " x) => (" + y_type +
                           " y) <int64[" + std::to_string(std::count(axes.begin(), axes.end(), ',') + 1) +
                           "] axes = {" + axes + "}> {\n  y = Squeeze (x, axes)\n}";
  onnx::ModelProto m;
  auto st = onnx::OnnxParser::Parse(m, text.c_str());
  EXPECT_TRUE(st.IsOK()) << st.ErrorMessage();
  if (!target.empty()) {
    auto* p = m.mutable_graph()->mutable_node(0)->add_metadata_props();
    p->set_key("pkg.torch.onnx.fx_node");
    p->set_value("%y : [num_users=1] = call_function[target=torch.ops." + target + "](args = (%x, " + axes +
                 "), kwargs = {})");
  }
  return m;
}

StatusOr<std::unique_ptr<Graph>> Import(const onnx::ModelProto& m) {
  return ImportOnnxBytes(m.SerializeAsString(), "", "shape_ops.onnx");
}

// The graph's one op beside the Constants the rewrite adds.
std::string OnlyOp(const Graph& g) {
  std::vector<std::string> ops;
  for (const auto& n : g.nodes())
    if (n->op_type() != "Constant") ops.push_back(n->op_type());
  return ops.size() == 1 ? ops[0] : "several nodes";
}

TEST(TorchShapeOps, SqueezeLeavesAxesThatAreNotOne) {
  // x.squeeze(1) on (4, 16, 16): diffusers' PixArt output projection.
  auto g = Import(Model("float[4,16,16]", "1", "float[4,16,16]", "aten.squeeze.dim"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(OnlyOp(**g), "Identity");
  // x.squeeze((1, 2)) on (4, 3, 1): only dim 2 goes.
  g = Import(Model("float[4,3,1]", "1, -1", "float[4,3]", "aten.squeeze.dims"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(OnlyOp(**g), "Squeeze");
  const Value* y = (*g)->FindValue("y");
  ASSERT_TRUE(y && y->type.shape);
  EXPECT_EQ(y->type.shape->size(), 2u);
  // A symbolic dim stays squeezed: ONNX checks it once the shape is known.
  g = Import(Model("float[N,3]", "0", "float[3]", "aten.squeeze.dim"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(OnlyOp(**g), "Squeeze");
}

TEST(TorchShapeOps, SqueezeWithoutMetadataKeepsOnnxsRule) {
  auto g = Import(Model("float[4,16,16]", "1", "float[4,16,16]", ""));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("Squeeze"), std::string::npos) << g.status().ToString();
  // Another aten call (a reshape the exporter wrote as Squeeze) is not torch.squeeze's.
  g = Import(Model("float[4,16,16]", "1", "float[4,16,16]", "aten.view.default"));
  EXPECT_FALSE(g.ok());
}

// torchaudio's Emformer: torch.cat([a, b, torch.empty(0)]) with a, b of rank 3.
onnx::ModelProto CatModel(bool metadata) {
  const std::string text =
      "<ir_version: 10, opset_import: [\"\" : 20]>\n"
      "g (float[2,3,4] a, float[5,3,4] b, float[0] e) => (float[7,3,4] y) {\n  y = Concat <axis = 0> (a, e, b)\n}";
  onnx::ModelProto m;
  auto st = onnx::OnnxParser::Parse(m, text.c_str());
  EXPECT_TRUE(st.IsOK()) << st.ErrorMessage();
  if (metadata) {
    auto* p = m.mutable_graph()->mutable_node(0)->add_metadata_props();
    p->set_key("pkg.torch.onnx.fx_node");
    p->set_value("%y : [num_users=1] = call_function[target=torch.ops.aten.cat.default](args = ([%a, %e, %b],), kwargs = {})");
  }
  return m;
}

TEST(TorchShapeOps, CatSkipsEmptyOneDimensionalInputs) {
  auto g = Import(CatModel(true));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(OnlyOp(**g), "Concat");
  const Node* cat = (*g)->FindValue("y")->producer();
  ASSERT_EQ(cat->num_inputs(), 2u);
  EXPECT_EQ(cat->input(0)->name(), "a");
  EXPECT_EQ(cat->input(1)->name(), "b");
  EXPECT_EQ(cat->GetInt("axis", -1), 0);
  EXPECT_FALSE(Import(CatModel(false)).ok());  // ONNX: all inputs to Concat must have the same rank
}

}  // namespace
}  // namespace dsc
