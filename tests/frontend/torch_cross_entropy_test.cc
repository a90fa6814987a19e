// RestoreCrossEntropy: which SoftmaxCrossEntropyLoss nodes it rewrites, and that the rewrite is a
// valid ONNX graph. The numbers are PyTorch's: models/current/cross_entropy (current_models_test)
// trains every form of the formula against its trajectory.
#include <gtest/gtest.h>

#include "frontend/torch_cross_entropy.h"
#include "onnx/checker.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"

namespace dsc {
namespace {

const char* kFxKey = "pkg.torch.onnx.fx_node";

// logits f32[4, 5] (+ weight f32[5]), labels i64[4] -> SoftmaxCrossEntropyLoss -> loss, with the
// dynamo exporter's fx node recording `smoothing` as aten.cross_entropy_loss's 6th argument.
onnx::ModelProto CrossEntropy(const std::string& smoothing, bool weight, const std::string& reduction = "mean",
                              bool probabilities = false, int logits_type = onnx::TensorProto::FLOAT) {
  onnx::ModelProto m;
  m.set_ir_version(10);
  m.add_opset_import()->set_version(20);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("g");
  auto input = [&](const std::string& name, int dtype, std::vector<int64_t> dims) {
    onnx::ValueInfoProto* v = g->add_input();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(dtype);
    for (int64_t d : dims) v->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
  };
  input("logits", logits_type, {4, 5});
  if (probabilities) input("labels", onnx::TensorProto::FLOAT, {4, 5});
  else input("labels", onnx::TensorProto::INT64, {4});
  if (weight) input("weight", logits_type, {5});
  onnx::NodeProto* n = g->add_node();
  n->set_op_type("SoftmaxCrossEntropyLoss");
  n->set_name("node_cross_entropy_loss");
  n->add_input("logits");
  n->add_input("labels");
  if (weight) n->add_input("weight");
  n->add_output("loss");
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name("ignore_index");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(-100);
  a = n->add_attribute();
  a->set_name("reduction");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(reduction);
  onnx::StringStringEntryProto* p = n->add_metadata_props();
  p->set_key(kFxKey);
  p->set_value("%cross_entropy_loss : [num_users=1] = call_function[target=torch.ops.aten.cross_entropy_loss.default]"
               "(args = (%linear, %labels, " + std::string(weight ? "%b_weight" : "None") + ", 1, -100, " + smoothing +
               "), kwargs = {})");
  onnx::ValueInfoProto* out = g->add_output();
  out->set_name("loss");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = out->mutable_type()->mutable_tensor_type()->mutable_shape();
  if (reduction == "none") shape->add_dim()->set_dim_value(4);
  return m;
}

const onnx::NodeProto* Producer(const onnx::ModelProto& m, const std::string& value) {
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output())
      if (o == value) return &n;
  return nullptr;
}

TEST(CrossEntropy, LabelSmoothingIsRestoredFromTheDynamoExportersNodeMetadata) {
  for (bool weight : {false, true}) {
    for (const char* reduction : {"mean", "sum", "none"}) {
      onnx::ModelProto m = CrossEntropy("0.1", weight, reduction);
      ASSERT_TRUE(RestoreCrossEntropy(&m).ok());
      const onnx::NodeProto* loss = Producer(m, "loss");
      ASSERT_NE(loss, nullptr);
      EXPECT_EQ(loss->op_type(), "Add");
      const onnx::NodeProto* plain = Producer(m, "loss/unsmoothed");
      ASSERT_NE(plain, nullptr);
      EXPECT_EQ(plain->op_type(), "SoftmaxCrossEntropyLoss");
      EXPECT_EQ(plain->name(), "node_cross_entropy_loss");
      // A valid model whose loss keeps its shape (scalar, or per sample for "none").
      EXPECT_NO_THROW(onnx::checker::check_model(m));
      onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), onnx::ShapeInferenceOptions(true, 1, true));
      bool found = false;
      for (const auto& v : m.graph().value_info())
        if (v.name() == "loss/unsmoothed") found = true;
      for (const auto& v : m.graph().output())
        if (v.name() == "loss") {
          ASSERT_TRUE(v.type().tensor_type().has_shape()) << weight << reduction;
          EXPECT_EQ(v.type().tensor_type().shape().dim_size(), std::string(reduction) == "none" ? 1 : 0)
              << weight << reduction;
        }
      EXPECT_TRUE(found);
      for (const auto& n : m.graph().node()) {
        ASSERT_EQ(n.metadata_props_size(), 1) << n.name();  // the PyTorch node stays named
        EXPECT_EQ(n.metadata_props(0).key(), kFxKey);
      }
    }
  }
}

TEST(CrossEntropy, ProbabilityTargetsBecomeTheSoftLabelLoss) {
  // The dynamo exporter writes F.cross_entropy(logits, probs) into SoftmaxCrossEntropyLoss, whose
  // labels ONNX defines as indices only: shape inference refuses the node as it stands.
  for (const char* smoothing : {"0.0", "0.2"}) {
    for (bool weight : {false, true}) {
      for (const char* reduction : {"mean", "sum", "none"}) {
        onnx::ModelProto m = CrossEntropy(smoothing, weight, reduction, /*probabilities=*/true);
        ASSERT_TRUE(RestoreCrossEntropy(&m).ok());
        for (const auto& n : m.graph().node()) EXPECT_NE(n.op_type(), "SoftmaxCrossEntropyLoss");
        ASSERT_NE(Producer(m, "loss"), nullptr);
        EXPECT_NO_THROW(onnx::checker::check_model(m));
        EXPECT_NO_THROW(onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(),
                                                           onnx::ShapeInferenceOptions(true, 1, true)))
            << smoothing << weight << reduction;
      }
    }
  }
}

TEST(CrossEntropy, HalfLogitsWithFloatProbabilitiesComputeInFloat) {
  // A half model's soft labels (one_hot(y).float()): PyTorch's log_softmax(x) * target promotes to
  // float, and so does the rewrite, which ONNX's own type check then accepts.
  for (int half : {onnx::TensorProto::BFLOAT16, onnx::TensorProto::FLOAT16}) {
    onnx::ModelProto m = CrossEntropy("0.2", /*weight=*/true, "mean", /*probabilities=*/true, half);
    ASSERT_TRUE(RestoreCrossEntropy(&m).ok());
    onnx::ShapeInferenceOptions options(/*check_type=*/true, /*error_mode=*/1, /*data_prop=*/true);
    EXPECT_NO_THROW(onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), options)) << half;
    const onnx::NodeProto* loss = Producer(m, "loss");
    ASSERT_NE(loss, nullptr);
    int casts = 0;
    for (const auto& n : m.graph().node()) casts += n.op_type() == "Cast";
    EXPECT_EQ(casts, 1) << "the log-probabilities, once";
  }
}

TEST(CrossEntropy, NoSmoothingLeavesTheNodeAlone) {
  for (const char* s : {"0.0", "0"}) {
    onnx::ModelProto m = CrossEntropy(s, false);
    ASSERT_TRUE(RestoreCrossEntropy(&m).ok());
    ASSERT_EQ(m.graph().node_size(), 1);
    EXPECT_EQ(m.graph().node(0).output(0), "loss");
  }
  onnx::ModelProto m = CrossEntropy("0.1", false);
  m.mutable_graph()->mutable_node(0)->clear_metadata_props();  // no metadata: the legacy exporter's files
  ASSERT_TRUE(RestoreCrossEntropy(&m).ok());
  EXPECT_EQ(m.graph().node_size(), 1);
}

TEST(CrossEntropy, AValueOutsideTheUnitIntervalNamesTheNode) {
  for (const char* s : {"1.5", "-0.1", "%sym_float", "nan"}) {
    onnx::ModelProto m = CrossEntropy(s, false);
    Status st = RestoreCrossEntropy(&m);
    ASSERT_FALSE(st.ok()) << s;
    EXPECT_NE(st.message().find("node_cross_entropy_loss"), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("label_smoothing"), std::string::npos) << st.ToString();
  }
}

}  // namespace
}  // namespace dsc
