// RestoreOptimizedParameters: parameters onnxscript's optimizer folded, merged or dropped, rebuilt
// from the graph signature, the fx calls and the folded_from marks; what cannot be matched is left.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/restore_parameters.h"
#include "frontend/torch_node_metadata.h"
#include "ir/status.h"
#include "ir/torch_parameters.h"

namespace dsc {
namespace {

// A hand-written default dynamo export: initializers with torch.export's marks, nodes with fx calls.
class Model {
 public:
  explicit Model(const std::string& signature) {
    auto* sig = m.mutable_graph()->add_metadata_props();
    sig->set_key(kTorchSignatureKey);
    sig->set_value(signature);
    auto* in = m.mutable_graph()->add_input();
    in->set_name("x");
  }
  // placeholder empty: a tensor of the optimizer's (folded when `folded_from` is set).
  void Init(const std::string& name, std::vector<int64_t> dims, std::vector<float> values,
            const std::string& placeholder = "", const std::string& folded_from = "") {
    onnx::TensorProto* t = m.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    onnx::ValueInfoProto* v = m.mutable_graph()->add_value_info();
    v->set_name(name);
    auto mark = [&](const char* key, const std::string& value) {
      auto* p = v->add_metadata_props();
      p->set_key(key);
      p->set_value(value);
    };
    if (!placeholder.empty()) {
      mark(kTorchInputKindKey, placeholder[0] == 'b' ? "BUFFER" : "PARAMETER");
      mark(kTorchOriginalNameKey, placeholder);
    }
    if (!folded_from.empty()) mark(kFoldedFromKey, folded_from);
  }
  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> inputs, const std::string& output,
                        const std::string& fx_name, const std::string& call) {
    onnx::NodeProto* n = m.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name("node_" + output);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    auto* p = n->add_metadata_props();
    p->set_key(kFxNodeKey);
    p->set_value("%" + fx_name + " : [num_users=1] = call_function[target=torch.ops." + call + ", kwargs = {})");
    return n;
  }
  Status Restore() { return RestoreOptimizedParameters(&m, &held); }

  const onnx::NodeProto* Producer(const std::string& value) const {
    for (const auto& n : m.graph().node())
      for (const auto& o : n.output())
        if (o == value) return &n;
    return nullptr;
  }
  const onnx::NodeProto& NodeNamed(const std::string& output) const { return *Producer(output); }
  bool HasInitializer(const std::string& name) const {
    for (const auto& t : m.graph().initializer())
      if (t.name() == name) return true;
    return false;
  }
  std::vector<float> Values(const std::string& name) const {
    auto it = held.find(name);
    if (it == held.end()) return {};
    std::vector<float> out;
    for (int64_t i = 0; i < it->second.numel(); ++i) out.push_back(static_cast<float>(it->second.GetAsDouble(i)));
    return out;
  }
  std::vector<int64_t> Dims(const std::string& name) const { return held.at(name).dims(); }
  std::string Kind(const std::string& name) const {
    for (const auto& v : m.graph().value_info())
      if (v.name() == name)
        if (const std::string* k = FindProp(v.metadata_props(), kTorchInputKindKey)) return *k;
    return "";
  }
  std::vector<std::string> ImportWarnings() const {
    for (const auto& p : m.metadata_props())
      if (p.key() == kImportWarningsKey) return nlohmann::json::parse(p.value()).get<std::vector<std::string>>();
    return {};
  }

  onnx::ModelProto m;
  HeldInitializers held;
};

constexpr const char* kLinearSignature =
    "\n# inputs\np_fc_weight: PARAMETER target='fc.weight'\np_fc_bias: PARAMETER target='fc.bias'\nx: USER_INPUT\n";

// nn.Linear(3, 2) on a rank-3 input: MatMul(x, val_2) with val_2 = W^T folded, then Add(bias).
TEST(RestoreParameters, AFoldedLinearTransposeBecomesTheWeightAndATranspose) {
  Model t(kLinearSignature);
  t.Init("val_2", {3, 2}, {1, 4, 2, 5, 3, 6}, "", "['fc.weight']");
  t.Init("fc.bias", {2}, {0.5f, -0.5f}, "p_fc_bias");
  const std::string call = "aten.linear.default](args = (%x, %p_fc_weight, %p_fc_bias)";
  t.Node("MatMul", {"x", "val_2"}, "mm", "linear", call);
  t.Node("Add", {"mm", "fc.bias"}, "y", "linear", call);
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_FALSE(t.HasInitializer("val_2"));
  ASSERT_TRUE(t.HasInitializer("fc.weight"));
  EXPECT_EQ(t.Dims("fc.weight"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.Values("fc.weight"), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(t.Kind("fc.weight"), "PARAMETER");
  const onnx::NodeProto* tr = t.Producer("val_2");
  ASSERT_NE(tr, nullptr);
  EXPECT_EQ(tr->op_type(), "Transpose");
  EXPECT_EQ(tr->input(0), "fc.weight");
  EXPECT_EQ(&t.m.graph().node(0), tr) << "the Transpose reads an initializer and goes first";
}

// w[:, idx] (aten.index.Tensor with [None, idx]) is GatherND over Transpose(w, [1, 0]); Whisper's
// decoder positions, w[idx], transpose by the identity. Both fold, and both come back.
TEST(RestoreParameters, AFoldedIndexTransposeComesBack) {
  Model t("\n# inputs\np_w: PARAMETER target='w'\np_v: PARAMETER target='v'\nx: USER_INPUT\n");
  t.Init("val_4", {3, 2}, {1, 4, 2, 5, 3, 6}, "", "['w']");
  t.Init("val_5", {2, 2}, {1, 2, 3, 4}, "", "['v']");
  t.Node("GatherND", {"val_4", "x"}, "y", "index", "aten.index.Tensor](args = (%p_w, [None, %idx])");
  t.Node("GatherND", {"val_5", "x"}, "z", "index_1", "aten.index.Tensor](args = (%p_v, [%idx])");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.Dims("w"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.Values("w"), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(t.Values("v"), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(t.Producer("val_4")->op_type(), "Transpose");
  EXPECT_EQ(t.Producer("val_5")->input(0), "v");
}

// A folded transpose read by something other than aten.linear's MatMul is not known to be W^T.
TEST(RestoreParameters, AFoldNotReadAsALinearWeightIsLeft) {
  Model t(kLinearSignature);
  t.Init("val_2", {3, 2}, {1, 4, 2, 5, 3, 6}, "", "['fc.weight']");
  t.Node("Mul", {"x", "val_2"}, "y", "mul", "aten.mul.Tensor](args = (%x, %p_fc_weight)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_TRUE(t.HasInitializer("val_2"));
  EXPECT_FALSE(t.HasInitializer("fc.weight"));
}

// A tied table kept as the embedding's initializer: the folded copy for the head's MatMul reads it
// through a Transpose when it is exactly its transpose, and is left when it is not.
TEST(RestoreParameters, ATiedWeightsFoldedTransposeReadsTheTable) {
  for (bool exact : {true, false}) {
    Model t("\n# inputs\np_wte: PARAMETER target='wte'\nx: USER_INPUT\n");
    t.Init("wte", {2, 3}, {1, 2, 3, 4, 5, 6}, "p_wte");
    t.Init("val_9", {3, 2}, {1, 4, 2, 5, 3, exact ? 6.0f : 7.0f}, "", "['wte']");
    t.Node("Gather", {"wte", "x"}, "emb", "embedding", "aten.embedding.default](args = (%p_wte, %x)");
    t.Node("MatMul", {"emb", "val_9"}, "y", "linear", "aten.linear.default](args = (%emb, %p_wte)");
    ASSERT_TRUE(t.Restore().ok());
    EXPECT_EQ(t.HasInitializer("val_9"), !exact);
    if (exact) {
      ASSERT_NE(t.Producer("val_9"), nullptr);
      EXPECT_EQ(t.Producer("val_9")->input(0), "wte");
    }
  }
}

constexpr const char* kTwoNormsSignature =
    "\n# inputs\np_ln1_weight: PARAMETER target='ln1.weight'\np_ln1_bias: PARAMETER target='ln1.bias'\n"
    "p_ln2_weight: PARAMETER target='ln2.weight'\np_ln2_bias: PARAMETER target='ln2.bias'\nx: USER_INPUT\n";

// ln1 = LayerNorm(2) on x, output h, with its fresh weight and bias, which the optimizer keeps.
void AddFirstNorm(Model* t) {
  t->Init("ln1.weight", {2}, {1, 1}, "p_ln1_weight");
  t->Init("ln1.bias", {2}, {0, 0}, "p_ln1_bias");
  t->Node("LayerNormalization", {"x", "ln1.weight", "ln1.bias"}, "h", "layer_norm",
          "aten.layer_norm.default](args = (%x, [2], %p_ln1_weight, %p_ln1_bias)");
}

// Two fresh LayerNorms: the optimizer kept ln1's tensors for both. Each of ln2's reads gets a copy
// under ln2's names, in PyTorch's argument order (weight, bias).
TEST(RestoreParameters, MergedDuplicatesGetOneCopyPerParameter) {
  Model t(kTwoNormsSignature);
  AddFirstNorm(&t);
  t.Node("LayerNormalization", {"h", "ln1.weight", "ln1.bias"}, "y", "layer_norm_1",
         "aten.layer_norm.default](args = (%h, [2], %p_ln2_weight, %p_ln2_bias)");
  ASSERT_TRUE(t.Restore().ok());
  const onnx::NodeProto& first = t.NodeNamed("h");
  EXPECT_EQ(first.input(1), "ln1.weight");
  EXPECT_EQ(first.input(2), "ln1.bias");
  const onnx::NodeProto& second = t.NodeNamed("y");
  EXPECT_EQ(second.input(1), "ln2.weight");
  EXPECT_EQ(second.input(2), "ln2.bias");
  EXPECT_EQ(t.Values("ln2.weight"), (std::vector<float>{1, 1}));
  EXPECT_EQ(t.Values("ln2.bias"), (std::vector<float>{0, 0}));
  EXPECT_EQ(t.Kind("ln2.bias"), "PARAMETER");
}

// GPT-2's Conv1D: aten.addmm(bias, x, weight) is Gemm(x, weight, bias); the merged bias pairs with
// the operand its own initializers leave, not by position.
TEST(RestoreParameters, AnAddmmBiasPairsByWhatIsLeft) {
  Model t("\n# inputs\np_a_weight: PARAMETER target='a.weight'\np_a_bias: PARAMETER target='a.bias'\n"
          "p_b_weight: PARAMETER target='b.weight'\np_b_bias: PARAMETER target='b.bias'\nx: USER_INPUT\n");
  t.Init("a.weight", {2, 2}, {1, 2, 3, 4}, "p_a_weight");
  t.Init("a.bias", {2}, {0, 0}, "p_a_bias");
  t.Init("b.weight", {2, 2}, {5, 6, 7, 8}, "p_b_weight");
  t.Node("Gemm", {"x", "a.weight", "a.bias"}, "h", "addmm", "aten.addmm.default](args = (%p_a_bias, %x, %p_a_weight)");
  t.Node("Gemm", {"h", "b.weight", "a.bias"}, "y", "addmm_1", "aten.addmm.default](args = (%p_b_bias, %h, %p_b_weight)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.NodeNamed("y").input(2), "b.bias");
  EXPECT_EQ(t.NodeNamed("h").input(2), "a.bias");
}

// RemoveOptionalBias dropped a zero bias from a Gemm (transB: the bias has the weight's rows; the
// rule's name on the node, which keeps its call) and from a Conv (the weight's output channels):
// both come back as zero inputs.
TEST(RestoreParameters, DroppedZeroBiasesComeBack) {
  Model t("\n# inputs\np_fc_weight: PARAMETER target='fc.weight'\np_fc_bias: PARAMETER target='fc.bias'\n"
          "p_conv_weight: PARAMETER target='conv.weight'\np_conv_bias: PARAMETER target='conv.bias'\nx: USER_INPUT\n");
  t.Init("fc.weight", {3, 2}, {1, 2, 3, 4, 5, 6}, "p_fc_weight");
  t.Init("conv.weight", {4, 1, 1, 1}, {1, 2, 3, 4}, "p_conv_weight");
  onnx::NodeProto* gemm = t.Node("Gemm", {"x", "fc.weight"}, "h", "linear",
                                 "aten.linear.default](args = (%x, %p_fc_weight, %p_fc_bias)");
  auto* rule = gemm->add_metadata_props();  // as exports with all node metadata carry it
  rule->set_key("pkg.onnxscript.rewriter.rule_name");
  rule->set_value("RemoveOptionalBiasFromGemm");
  auto* trans_b = gemm->add_attribute();
  trans_b->set_name("transB");
  trans_b->set_type(onnx::AttributeProto::INT);
  trans_b->set_i(1);
  t.Node("Conv", {"x", "conv.weight"}, "y", "conv2d", "aten.conv2d.default](args = (%x, %p_conv_weight, %p_conv_bias)");
  ASSERT_TRUE(t.Restore().ok());
  ASSERT_EQ(t.NodeNamed("h").input_size(), 3);
  EXPECT_EQ(t.NodeNamed("h").input(2), "fc.bias");
  EXPECT_EQ(t.Values("fc.bias"), (std::vector<float>{0, 0, 0}));
  ASSERT_EQ(t.NodeNamed("y").input_size(), 3);
  EXPECT_EQ(t.Values("conv.bias"), (std::vector<float>{0, 0, 0, 0}));
}

// Position embeddings looked up at arange(3) fold into "embedding"; token types looked up at a
// zero buffer fold into "embedding_1" with one row repeated, which trains as one row and is said.
TEST(RestoreParameters, FoldedLookupsBecomeAGatherOverTheirDistinctRows) {
  Model t("\n# inputs\np_pos: PARAMETER target='pos.weight'\np_tok: PARAMETER target='tok.weight'\n"
          "b_ids: BUFFER target='ids' persistent=False\nx: USER_INPUT\n");
  t.Init("embedding", {1, 3, 2}, {1, 2, 3, 4, 5, 6}, "", "['arange', 'pos.weight', 'val_1']");
  t.Init("embedding_1", {1, 3, 2}, {7, 8, 7, 8, 7, 8}, "", "['ids', 'tok.weight']");
  t.Node("Add", {"x", "embedding"}, "h", "add", "aten.add.Tensor](args = (%x, %embedding)");
  t.Node("Add", {"h", "embedding_1"}, "y", "add_1", "aten.add.Tensor](args = (%h, %embedding_1)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.Dims("pos.weight"), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t.Values("embedding_rows"), (std::vector<float>{0, 1, 2}));
  EXPECT_EQ(t.Dims("tok.weight"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(t.Values("tok.weight"), (std::vector<float>{7, 8}));
  EXPECT_EQ(t.Values("embedding_1_rows"), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(t.Producer("embedding_1")->op_type(), "Gather");
  const std::vector<std::string> warnings = t.ImportWarnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("'tok.weight'"), std::string::npos) << warnings[0];
}

// A read of a parameter's tensor that its call does not name is something merged into it. When no
// operand of the call pairs with it, it is one of torchlib's constants (a LayerNorm without affine
// weights reads Expand(1.0), equal to another LayerNorm's fresh weight) or cannot be told: it reads
// a copy that does not train, so it no longer trains as the parameter it was merged into.
TEST(RestoreParameters, AnUnpairedMergedReadBecomesAConstant) {
  Model t(kTwoNormsSignature);
  AddFirstNorm(&t);
  t.Node("LayerNormalization", {"h", "ln1.weight"}, "y", "layer_norm_1", "aten.layer_norm.default](args = (%h, [2])");
  t.Node("Mul", {"x", "ln1.weight"}, "z", "mul", "aten.mul.Tensor](args = (%p_ln2_weight, %p_ln2_bias)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.NodeNamed("h").input(1), "ln1.weight");
  EXPECT_EQ(t.NodeNamed("y").input(1), "ln1.weight_constant");
  EXPECT_EQ(t.NodeNamed("z").input(1), "ln1.weight_constant");
  EXPECT_EQ(t.Values("ln1.weight_constant"), (std::vector<float>{1, 1}));
  EXPECT_EQ(t.Kind("ln1.weight_constant"), "") << "a constant has no parameter kind";
  EXPECT_FALSE(t.HasInitializer("ln2.weight"));
}

// nn.GroupNorm as torchlib writes it: InstanceNormalization with constant unit scale and zero bias
// (here merged into a parameter equal to them), then Mul and Add by the affine weight and bias
// unsqueezed to [C, 1, 1] and folded (val_N). The folds become the parameters, 1-D as in PyTorch
// and viewed as [C, 1, 1] by a Reshape, the constants stop training, and a second GroupNorm merged
// with the first gets copies.
TEST(RestoreParameters, GroupNormAffineFoldsAndConstantsComeApart) {
  Model t("\n# inputs\np_gn1_weight: PARAMETER target='gn1.weight'\np_gn1_bias: PARAMETER target='gn1.bias'\n"
          "p_gn2_weight: PARAMETER target='gn2.weight'\np_gn2_bias: PARAMETER target='gn2.bias'\n"
          "p_scale: PARAMETER target='scale'\nx: USER_INPUT\n");
  t.Init("scale", {1}, {1}, "p_scale");
  t.Init("val_7", {1}, {0});
  t.Init("val_28", {2, 1, 1}, {1, 1}, "", "['gn1.weight', 'val_22', 'val_23']");
  t.Init("val_29", {2, 1, 1}, {0, 0}, "", "['gn1.bias', 'val_22', 'val_23']");
  int k = 0;
  for (const char* gn : {"gn1", "gn2"}) {
    const std::string call = StrCat("aten.group_norm.default](args = (%x, 1, %p_", gn, "_weight, %p_", gn, "_bias)");
    const std::string name = StrCat("group_norm_", k++);
    t.Node("InstanceNormalization", {"x", "scale", "val_7"}, name + "_in", name, call);
    t.Node("Mul", {name + "_in", "val_28"}, name + "_mul", name, call);
    t.Node("Add", {name + "_mul", "val_29"}, name + "_out", name, call);
  }
  t.Node("Mul", {"x", "scale"}, "s", "mul", "aten.mul.Tensor](args = (%x, %p_scale)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.NodeNamed("group_norm_0_mul").input(1), "gn1.weight_grouped");
  EXPECT_EQ(t.NodeNamed("group_norm_0_out").input(1), "gn1.bias_grouped");
  EXPECT_EQ(t.NodeNamed("group_norm_1_mul").input(1), "gn2.weight_grouped");
  EXPECT_EQ(t.NodeNamed("group_norm_1_out").input(1), "gn2.bias_grouped");
  for (const char* p : {"gn1.weight", "gn1.bias", "gn2.weight", "gn2.bias"}) {
    EXPECT_EQ(t.Dims(p), (std::vector<int64_t>{2})) << p;
    const onnx::NodeProto& view = t.NodeNamed(StrCat(p, "_grouped"));
    EXPECT_EQ(view.op_type(), "Reshape");
    EXPECT_EQ(view.input(0), p);
    EXPECT_EQ(t.Dims(view.input(1)).size(), 1u);
  }
  EXPECT_EQ(t.Values("gn1.weight"), (std::vector<float>{1, 1}));
  EXPECT_EQ(t.NodeNamed("group_norm_0_in").input(1), "scale_constant");
  EXPECT_EQ(t.NodeNamed("group_norm_1_in").input(1), "scale_constant");
  EXPECT_EQ(t.NodeNamed("s").input(1), "scale");
}

// In a half model torchlib's group_norm reads the folded weight and bias through a CastLike to the
// normalised input's type before its Mul and Add; the folds still become the parameters.
TEST(RestoreParameters, GroupNormAffineReadThroughACastLikeComesBack) {
  Model t("\n# inputs\np_gn_weight: PARAMETER target='gn.weight'\np_gn_bias: PARAMETER target='gn.bias'\n"
          "x: USER_INPUT\n");
  t.Init("val_10", {1}, {1});
  t.Init("val_13", {1}, {0});
  t.Init("val_21", {2, 1, 1}, {1, 1}, "", "['gn.weight', 'val_17', 'val_18']");
  t.Init("val_22", {2, 1, 1}, {0, 0}, "", "['gn.bias', 'val_17', 'val_18']");
  const std::string call = "aten.group_norm.default](args = (%x, 1, %p_gn_weight, %p_gn_bias)";
  t.Node("InstanceNormalization", {"x", "val_10", "val_13"}, "in", "gn_in", call);
  t.Node("CastLike", {"val_21", "in"}, "w", "gn_w", call);
  t.Node("Mul", {"in", "w"}, "mul", "gn_mul", call);
  t.Node("CastLike", {"val_22", "mul"}, "b", "gn_b", call);
  t.Node("Add", {"mul", "b"}, "out", "gn_out", call);
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.NodeNamed("w").input(0), "gn.weight_grouped");
  EXPECT_EQ(t.NodeNamed("b").input(0), "gn.bias_grouped");
  EXPECT_EQ(t.Dims("gn.weight"), (std::vector<int64_t>{2}));
  EXPECT_EQ(t.NodeNamed("gn.weight_grouped").input(0), "gn.weight");
}

// logit_scale.exp() folds into "exp"; Mamba's -exp(A_log)[:, None] into "unsqueeze_3" (folded from
// exp and neg: the values' sign says neg came last). Both come back as the logs and the ops. A chain
// whose values' sign cannot order exp and neg is left.
TEST(RestoreParameters, ExpAndNegChainsComeBack) {
  Model t("\n# inputs\np_scale: PARAMETER target='logit_scale'\np_a: PARAMETER target='A_log'\n"
          "p_b: PARAMETER target='B_log'\nx: USER_INPUT\n");
  t.Init("exp", {}, {2.0f}, "", "['logit_scale']");
  t.Init("unsqueeze_3", {2, 1}, {-1.0f, -4.0f}, "", "['A_log', 'exp_1', 'neg', 'val_39']");
  t.Init("neg_2", {2}, {-1.0f, 4.0f}, "", "['B_log', 'exp_2']");
  t.Node("Mul", {"x", "exp"}, "y", "mul", "aten.mul.Tensor](args = (%x, %exp)");
  t.Node("Mul", {"y", "unsqueeze_3"}, "z", "mul_1", "aten.mul.Tensor](args = (%y, %unsqueeze_3)");
  t.Node("Mul", {"z", "neg_2"}, "w", "mul_2", "aten.mul.Tensor](args = (%z, %neg_2)");
  ASSERT_TRUE(t.Restore().ok());
  ASSERT_EQ(t.Values("logit_scale").size(), 1u);
  EXPECT_FLOAT_EQ(t.Values("logit_scale")[0], std::log(2.0f));
  EXPECT_EQ(t.Producer("exp")->op_type(), "Exp");
  const std::vector<float> a = t.Values("A_log");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_FLOAT_EQ(a[0], 0.0f);
  EXPECT_FLOAT_EQ(a[1], std::log(4.0f));
  EXPECT_EQ(t.Dims("A_log"), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(t.Producer("unsqueeze_3")->op_type(), "Neg");
  EXPECT_EQ(t.Producer(t.Producer("unsqueeze_3")->input(0))->op_type(), "Exp");
  EXPECT_TRUE(t.HasInitializer("neg_2"));
  EXPECT_FALSE(t.HasInitializer("B_log"));
}

// A gate's sigmoid(g), a tanh(alpha) and a reciprocal fold the same way, one call each: each
// comes back as the inverse of the folded values (in float64, so within an ulp of PyTorch's) and
// the call. A "sigmoid" holding 1.0, outside the call's open range, is left.
TEST(RestoreParameters, InvertibleElementwiseCallsComeBack) {
  Model t("\n# inputs\np_g: PARAMETER target='gate'\np_a: PARAMETER target='alpha'\n"
          "p_r: PARAMETER target='rate'\np_s: PARAMETER target='saturated'\nx: USER_INPUT\n");
  t.Init("sigmoid", {2}, {0.25f, 0.75f}, "", "['gate']");
  t.Init("view_1", {2, 1}, {-0.5f, 0.5f}, "", "['alpha', 'tanh', 'val_4']");
  t.Init("reciprocal", {2}, {4.0f, -0.5f}, "", "['rate']");
  t.Init("sigmoid_1", {2}, {0.5f, 1.0f}, "", "['saturated']");
  t.Node("Mul", {"x", "sigmoid"}, "y", "mul", "aten.mul.Tensor](args = (%x, %sigmoid)");
  t.Node("Mul", {"y", "view_1"}, "z", "mul_1", "aten.mul.Tensor](args = (%y, %view_1)");
  t.Node("Mul", {"z", "reciprocal"}, "w", "mul_2", "aten.mul.Tensor](args = (%z, %reciprocal)");
  t.Node("Mul", {"w", "sigmoid_1"}, "v", "mul_3", "aten.mul.Tensor](args = (%w, %sigmoid_1)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.Values("gate"), (std::vector<float>{static_cast<float>(std::log(1.0 / 3)), static_cast<float>(std::log(3.0))}));
  EXPECT_EQ(t.Producer("sigmoid")->op_type(), "Sigmoid");
  EXPECT_EQ(t.Values("alpha"), (std::vector<float>{static_cast<float>(std::atanh(-0.5)), static_cast<float>(std::atanh(0.5))}));
  EXPECT_EQ(t.Dims("alpha"), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(t.Producer("view_1")->op_type(), "Tanh");
  EXPECT_EQ(t.Values("rate"), (std::vector<float>{0.25f, -2.0f}));
  EXPECT_EQ(t.Producer("reciprocal")->op_type(), "Reciprocal");
  EXPECT_TRUE(t.HasInitializer("sigmoid_1"));
  EXPECT_FALSE(t.HasInitializer("saturated"));
}

// GPT-NeoX's parallel block: both norms read the block's input and start equal, so the optimizer
// merged the second norm's parameters into the first's and CSE kept one call. The MLP's fx call
// still names layer_norm_1, which no node computes: the norm is copied as layer_norm_1 with the
// missing parameters of the same layer, and the MLP reads the copy.
TEST(RestoreParameters, CallsMergedByCseComeApart) {
  Model t("\n# inputs\np_l0_ln1_weight: PARAMETER target='l0.ln1.weight'\n"
          "p_l0_ln1_bias: PARAMETER target='l0.ln1.bias'\np_l0_ln2_weight: PARAMETER target='l0.ln2.weight'\n"
          "p_l0_ln2_bias: PARAMETER target='l0.ln2.bias'\np_l1_ln2_weight: PARAMETER target='l1.ln2.weight'\n"
          "p_l1_ln2_bias: PARAMETER target='l1.ln2.bias'\np_l0_a_weight: PARAMETER target='l0.a.weight'\n"
          "p_l0_m_weight: PARAMETER target='l0.m.weight'\nx: USER_INPUT\n");
  t.Init("l0.ln1.weight", {2}, {1, 1}, "p_l0_ln1_weight");
  t.Init("l0.ln1.bias", {2}, {0, 0}, "p_l0_ln1_bias");
  t.Init("l0.a.weight", {2, 2}, {1, 2, 3, 4}, "p_l0_a_weight");
  t.Init("l0.m.weight", {2, 2}, {5, 6, 7, 8}, "p_l0_m_weight");
  t.Node("LayerNormalization", {"x", "l0.ln1.weight", "l0.ln1.bias"}, "layer_norm", "layer_norm",
         "aten.layer_norm.default](args = (%x, [2], %p_l0_ln1_weight, %p_l0_ln1_bias)");
  t.Node("MatMul", {"layer_norm", "l0.a.weight"}, "a", "linear", "aten.linear.default](args = (%layer_norm, %p_l0_a_weight)");
  t.Node("MatMul", {"layer_norm", "l0.m.weight"}, "m", "linear_1",
         "aten.linear.default](args = (%layer_norm_1, %p_l0_m_weight)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.NodeNamed("a").input(0), "layer_norm");
  const std::string copy = t.NodeNamed("m").input(0);
  ASSERT_NE(copy, "layer_norm");
  const onnx::NodeProto& norm = t.NodeNamed(copy);
  EXPECT_EQ(norm.op_type(), "LayerNormalization");
  EXPECT_EQ(norm.input(0), "x");
  EXPECT_EQ(norm.input(1), "l0.ln2.weight") << "the same layer's norm, not l1's";
  EXPECT_EQ(norm.input(2), "l0.ln2.bias");
  EXPECT_EQ(t.Values("l0.ln2.weight"), (std::vector<float>{1, 1}));
  EXPECT_EQ(t.Kind("l0.ln2.bias"), "PARAMETER");
  EXPECT_FALSE(t.HasInitializer("l1.ln2.weight"));
  const std::string* fx = FindProp(norm.metadata_props(), kFxNodeKey);
  ASSERT_NE(fx, nullptr);
  EXPECT_EQ(FxNodeName(*fx), "layer_norm_1");
  EXPECT_NE(fx->find("%p_l0_ln2_weight, %p_l0_ln2_bias"), std::string::npos) << *fx;
}

// Two missing norms equally close to the kept one: which the lost call read is unknown, so the
// merge is left (select-loss warns).
TEST(RestoreParameters, AnAmbiguousCseMergeIsLeft) {
  Model t("\n# inputs\np_ln1_weight: PARAMETER target='ln1.weight'\np_ln2_weight: PARAMETER target='ln2.weight'\n"
          "p_ln3_weight: PARAMETER target='ln3.weight'\nx: USER_INPUT\n");
  t.Init("ln1.weight", {2}, {1, 1}, "p_ln1_weight");
  t.Node("LayerNormalization", {"x", "ln1.weight"}, "layer_norm", "layer_norm",
         "aten.layer_norm.default](args = (%x, [2], %p_ln1_weight)");
  t.Node("Relu", {"layer_norm"}, "r", "relu", "aten.relu.default](args = (%layer_norm_1,)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.NodeNamed("r").input(0), "layer_norm");
  EXPECT_FALSE(t.HasInitializer("ln2.weight"));
  EXPECT_FALSE(t.HasInitializer("ln3.weight"));
}

// Falcon's FalconLinear computes `input @ self.weight.T`: the fold is named after the permute and
// read by aten.matmul, which says nothing of a permutation; a matrix has one, so W comes back as
// the fold transposed, with a Transpose.
TEST(RestoreParameters, AModelsOwnMatrixTransposeComesBack) {
  Model t("\n# inputs\np_fc_weight: PARAMETER target='fc.weight'\nx: USER_INPUT\n");
  t.Init("permute_3", {2, 3}, {1, 2, 3, 4, 5, 6}, "", "['fc.weight']");
  t.Node("MatMul", {"x", "permute_3"}, "y", "matmul", "aten.matmul.default](args = (%x, %permute_3)");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.Dims("fc.weight"), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t.Values("fc.weight"), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(t.Producer("permute_3")->op_type(), "Transpose");
  EXPECT_EQ(t.Producer("permute_3")->input(0), "fc.weight");
}

// A node the rewriter fused from several calls carries one call's metadata: it pairs nothing.
TEST(RestoreParameters, ANodeFusedFromSeveralCallsPairsNothing) {
  Model t(kTwoNormsSignature);
  AddFirstNorm(&t);
  onnx::NodeProto* n = t.Node("LayerNormalization", {"h", "ln1.weight", "ln1.bias"}, "y", "layer_norm_1",
                              "aten.layer_norm.default](args = (%h, [2], %p_ln2_weight, %p_ln2_bias)");
  auto* rule = n->add_metadata_props();
  rule->set_key("pkg.onnxscript.rewriter.rule_name");
  rule->set_value("SomeFusion, MaterializeReshapeShape");
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.NodeNamed("y").input(1), "ln1.weight");
  EXPECT_FALSE(t.HasInitializer("ln2.weight"));
}

// Files without torch.export's signature (the legacy exporter, hand-written graphs) are untouched.
TEST(RestoreParameters, WithoutASignatureNothingChanges) {
  Model t(kLinearSignature);
  t.m.mutable_graph()->clear_metadata_props();
  t.Init("val_2", {3, 2}, {1, 4, 2, 5, 3, 6}, "", "['fc.weight']");
  t.Node("MatMul", {"x", "val_2"}, "y", "linear", "aten.linear.default](args = (%x, %p_fc_weight, %p_fc_bias)");
  const std::string before = t.m.SerializeAsString();
  ASSERT_TRUE(t.Restore().ok());
  EXPECT_EQ(t.m.SerializeAsString(), before);
}

}  // namespace
}  // namespace dsc
