// RestoreDetach: which inputs are read through ai.dscompile.StopGradient, and where it warns instead. The
// gradients are PyTorch's: models/current/detach (current_models_test) follows its trajectory.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "frontend/torch_detach.h"
#include "frontend/torch_node_metadata.h"
#include "ir/dsc_ops.h"

namespace dsc {
namespace {

// A node OP(inputs) -> output whose fx node defines %fx_name and reads `fx_args`.
void AddNode(onnx::ModelProto* m, const std::string& op, const std::vector<std::string>& inputs,
             const std::string& output, const std::string& fx_name, const std::string& fx_args) {
  onnx::NodeProto* n = m->mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name("node_" + output);
  for (const auto& i : inputs) n->add_input(i);
  n->add_output(output);
  onnx::StringStringEntryProto* p = n->add_metadata_props();
  p->set_key("pkg.torch.onnx.fx_node");
  p->set_value("%" + fx_name + " : [num_users=1] = call_function[target=torch.ops.aten.x.default](args = (" +
               fx_args + "), kwargs = {})");
}

onnx::ModelProto Base() {
  onnx::ModelProto m;
  m.add_opset_import()->set_version(20);
  m.mutable_graph()->add_input()->set_name("x");
  onnx::TensorProto* w = m.mutable_graph()->add_initializer();
  w->set_name("enc.weight");
  onnx::TensorProto* c = m.mutable_graph()->add_initializer();
  c->set_name("val_3");  // a literal the exporter lifted
  AddNode(&m, "MatMul", {"x", "enc.weight"}, "z", "z", "%x, %p_enc_weight");
  AddNode(&m, "Tanh", {"z"}, "q", "q", "%z");
  AddNode(&m, "Sub", {"q", "z"}, "sub", "sub", "%q, %z");
  return m;
}

const onnx::NodeProto* Producer(const onnx::ModelProto& m, const std::string& value) {
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output())
      if (o == value) return &n;
  return nullptr;
}

bool StopsGradient(const onnx::NodeProto& n) {
  return n.domain() == kDscDomain && n.op_type() == ops::kStopGradient && n.input_size() == 1 &&
         n.output_size() == 1 && n.attribute_size() == 0;
}

// The model imports our domain once, as ONNX's checker wants of a model with its ops.
bool ImportsDscDomainOnce(const onnx::ModelProto& m) {
  int n = 0;
  for (const auto& op : m.opset_import()) n += op.domain() == kDscDomain;
  return n == 1;
}

std::vector<std::string> Warnings(const onnx::ModelProto& m) {
  const std::string* w = FindProp(m.metadata_props(), kImportWarningsKey);
  return w ? nlohmann::json::parse(*w).get<std::vector<std::string>>() : std::vector<std::string>{};
}

TEST(Detach, TheOptimizedExportersConsumerReadsItsSourceThroughAStopGradient) {
  // straight-through: z + (q - z).detach(), then a literal times a detached parameter
  onnx::ModelProto m = Base();
  AddNode(&m, "Add", {"z", "sub"}, "st", "add", "%z, %detach");
  AddNode(&m, "Mul", {"enc.weight", "val_3"}, "scaled", "mul", "%detach_1, 0.5");
  AddNode(&m, "Add", {"st", "sub"}, "twice", "add_1", "%add, %detach");
  ASSERT_TRUE(RestoreDetach(&m).ok());
  EXPECT_TRUE(Warnings(m).empty());
  const onnx::NodeProto* add = Producer(m, "st");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->input(0), "z");
  const onnx::NodeProto* id = Producer(m, add->input(1));
  ASSERT_NE(id, nullptr);
  EXPECT_TRUE(StopsGradient(*id));
  EXPECT_EQ(id->input(0), "sub");
  // one stop-gradient per detached value, shared by its readers
  EXPECT_EQ(Producer(m, "twice")->input(1), add->input(1));
  const onnx::NodeProto* mul = Producer(m, "scaled");
  EXPECT_TRUE(StopsGradient(*Producer(m, mul->input(0))));
  EXPECT_EQ(mul->input(1), "val_3");  // the lifted literal is no fx value
  // the new nodes come before their readers
  int at_id = -1, at_add = -1;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    if (&m.graph().node(i) == id) at_id = i;
    if (&m.graph().node(i) == add) at_add = i;
  }
  EXPECT_LT(at_id, at_add);
  EXPECT_TRUE(ImportsDscDomainOnce(m));
}

TEST(Detach, TheUnoptimizedExportersIdentityBecomesAStopGradient) {
  onnx::ModelProto m = Base();
  onnx::NodeProto* n = m.mutable_graph()->add_node();
  n->set_op_type("Identity");
  n->add_input("sub");
  n->add_output("detach");
  onnx::StringStringEntryProto* p = n->add_metadata_props();
  p->set_key("pkg.torch.onnx.fx_node");
  p->set_value("%detach : [num_users=1] = call_function[target=torch.ops.aten.detach.default](args = (%sub,), kwargs = {})");
  AddNode(&m, "Add", {"z", "detach"}, "st", "add", "%z, %detach");
  AddNode(&m, "Identity", {"q"}, "clone", "clone", "%q");  // an Identity that is no detach
  ASSERT_TRUE(RestoreDetach(&m).ok());
  EXPECT_TRUE(Warnings(m).empty());
  EXPECT_TRUE(StopsGradient(*Producer(m, "detach")));
  EXPECT_EQ(Producer(m, "detach")->input(0), "sub");
  EXPECT_EQ(Producer(m, "st")->input(1), "detach");
  EXPECT_TRUE(ImportsDscDomainOnce(m));
  EXPECT_EQ(Producer(m, "clone")->op_type(), "Identity");
  EXPECT_TRUE(Producer(m, "clone")->domain().empty());
}

TEST(Detach, WhatCannotBePlacedIsNamedInAWarning) {
  // z + z.detach(): both inputs are z, so which one is detached is not in the file
  onnx::ModelProto m = Base();
  AddNode(&m, "Add", {"z", "z"}, "y", "add", "%z, %detach");
  ASSERT_TRUE(RestoreDetach(&m).ok());
  std::vector<std::string> w = Warnings(m);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("node_y"), std::string::npos) << w[0];
  EXPECT_EQ(Producer(m, "y")->input(1), "z");
  // (q - z.detach()) merged by the optimizer into (q - z): the reader names a value the file lacks
  onnx::ModelProto merged = Base();
  AddNode(&merged, "Add", {"z", "sub"}, "st", "add", "%z, %detach");
  AddNode(&merged, "Mul", {"sub", "sub"}, "sq", "pow_1", "%sub_1, 2");
  ASSERT_TRUE(RestoreDetach(&merged).ok());
  w = Warnings(merged);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("%sub_1"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("node_sq"), std::string::npos) << w[0];
}

TEST(Detach, AConstantTheOptimizerFoldedIsNoMerge) {
  // softmax(z.detach() * c): c folded into an initializer named after its fx node
  onnx::ModelProto m = Base();
  m.mutable_graph()->add_initializer()->set_name("scalar_tensor_default");
  AddNode(&m, "Mul", {"z", "scalar_tensor_default"}, "y", "mul", "%detach, %scalar_tensor_default");
  ASSERT_TRUE(RestoreDetach(&m).ok());
  EXPECT_TRUE(Warnings(m).empty());
  EXPECT_TRUE(StopsGradient(*Producer(m, Producer(m, "y")->input(0))));
}

TEST(Detach, AModelWithoutDetachIsLeftAlone) {
  onnx::ModelProto m = Base();
  AddNode(&m, "Mul", {"sub", "sub"}, "sq", "pow_1", "%sub_1, 2");  // a merge, but no detach anywhere
  const std::string before = m.SerializeAsString();
  ASSERT_TRUE(RestoreDetach(&m).ok());
  EXPECT_EQ(m.SerializeAsString(), before);
}

}  // namespace
}  // namespace dsc
