// RecordTorchParameters: the parameter list read from the export helper's metadata or derived
// from torch.export's per-initializer kinds and graph signature.
#include <gtest/gtest.h>

#include <random>

#include "frontend/torch_node_metadata.h"
#include "frontend/torch_parameters.h"

namespace dsc {
namespace {

void AddInitializer(onnx::ModelProto* m, const std::string& name, const char* kind) {
  onnx::TensorProto* t = m->mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(2);
  t->add_float_data(1.0f);
  t->add_float_data(2.0f);
  if (!kind) return;
  onnx::ValueInfoProto* v = m->mutable_graph()->add_value_info();
  v->set_name(name);
  auto* p = v->add_metadata_props();
  p->set_key("pkg.torch.export.graph_signature.InputSpec.kind");
  p->set_value(kind);
}

void SetModelMeta(onnx::ModelProto* m, const std::string& key, const std::string& value) {
  auto* p = m->add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

StatusOr<TorchParameters> Recorded(const onnx::ModelProto& m) {
  for (const auto& p : m.metadata_props())
    if (p.key() == kTorchParametersKey) return ParseTorchParameters(p.value());
  return TorchParameters{};
}

// fc.weight and ln.weight train, the buffer and the lifted scalar do not, and ln2.weight of the
// signature has no initializer.
onnx::ModelProto TorchExportModel() {
  onnx::ModelProto m;
  AddInitializer(&m, "fc.weight", "PARAMETER");
  AddInitializer(&m, "ln.weight", "PARAMETER");
  AddInitializer(&m, "inv_freq", "BUFFER");
  AddInitializer(&m, "val_3", nullptr);
  auto* sig = m.mutable_graph()->add_metadata_props();
  sig->set_key("pkg.torch.export.ExportedProgram.graph_signature");
  sig->set_value("\n# inputs\np_fc_weight: PARAMETER target='fc.weight'\np_ln_weight: PARAMETER target='ln.weight'\n"
                 "p_ln2_weight: PARAMETER target='ln2.weight'\nb_inv_freq: BUFFER target='inv_freq' persistent=False\n"
                 "x: USER_INPUT\n");
  return m;
}

TEST(TorchParameters, DerivedFromTorchExportKinds_AbsentIsTiedWithoutOptimizer) {
  onnx::ModelProto m = TorchExportModel();
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  StatusOr<TorchParameters> p = Recorded(m);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE(p->present);
  EXPECT_EQ(p->trainable, (std::vector<std::string>{"fc.weight", "ln.weight"}));
  EXPECT_TRUE(p->missing.empty());
  EXPECT_EQ(p->tied, (std::vector<std::string>{"ln2.weight"}));
  EXPECT_NE(p->source.find("torch.export"), std::string::npos);
}

// After the optimizer, an absent parameter is a merge or fold when an aten call still reads its
// placeholder (here a LayerNorm reading the merged ln.weight) or a folded tensor came from it. When
// neither, it is unread: a PyTorch tie (torch.export lists every name of a shared tensor but reads
// one), or a parameter whose reading computations the optimizer's CSE merged with another's.
onnx::ModelProto OptimizedModel() {
  onnx::ModelProto m = TorchExportModel();
  auto* mark = m.mutable_graph()->mutable_value_info(0)->add_metadata_props();
  mark->set_key("pkg.onnxscript.optimizer.folded_from");
  mark->set_value("['val_1']");
  return m;
}

TEST(TorchParameters, DerivedFromTorchExportKinds_AbsentAndReadIsMissingAfterOptimizer) {
  onnx::ModelProto m = OptimizedModel();
  onnx::NodeProto* n = m.mutable_graph()->add_node();
  n->set_op_type("LayerNormalization");
  n->add_input("x");
  n->add_input("ln.weight");
  n->add_output("y");
  auto* fx = n->add_metadata_props();
  fx->set_key("pkg.torch.onnx.fx_node");
  fx->set_value("%layer_norm_1 : [num_users=1] = call_function[target=torch.ops.aten.layer_norm.default](args = "
                "(%x, [2], %p_ln2_weight), kwargs = {})");
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  StatusOr<TorchParameters> p = Recorded(m);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->trainable, (std::vector<std::string>{"fc.weight", "ln.weight"}));
  EXPECT_EQ(p->missing, std::vector<std::string>{"ln2.weight"});
  EXPECT_TRUE(p->tied.empty());
}

TEST(TorchParameters, DerivedFromTorchExportKinds_AbsentAndFoldedIsMissingAfterOptimizer) {
  onnx::ModelProto m = OptimizedModel();
  m.mutable_graph()->mutable_value_info(0)->mutable_metadata_props()->rbegin()->set_value("['ln2.weight', 'val_1']");
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  StatusOr<TorchParameters> p = Recorded(m);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->missing, std::vector<std::string>{"ln2.weight"});
  EXPECT_TRUE(p->tied.empty());
}

TEST(TorchParameters, DerivedFromTorchExportKinds_AbsentAndUnreadIsUnreadAfterOptimizer) {
  onnx::ModelProto m = OptimizedModel();
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  StatusOr<TorchParameters> p = Recorded(m);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->missing.empty());
  EXPECT_TRUE(p->tied.empty());
  EXPECT_EQ(p->unread, std::vector<std::string>{"ln2.weight"});
}

// nn.PReLU's weight after onnxscript's optimizer: torchlib's Reshape of p_ln2_weight (standing in for
// a PReLU's weight here) folded into val_3, which the PRelu reads as its slope. val_3 trains as the
// parameter, which is then not missing; a PRelu whose fx node names another parameter, or a slope
// not folded from its parameter, maps nothing.
onnx::ModelProto WithFoldedPReluWeight(const std::string& fx_weight, const std::string& folded_from) {
  onnx::ModelProto m = TorchExportModel();
  onnx::ValueInfoProto* v = m.mutable_graph()->add_value_info();
  v->set_name("val_3");
  auto* mark = v->add_metadata_props();
  mark->set_key("pkg.onnxscript.optimizer.folded_from");
  mark->set_value(folded_from);
  onnx::NodeProto* n = m.mutable_graph()->add_node();
  n->set_op_type("PRelu");
  n->set_name("node_prelu");
  n->add_input("x");
  n->add_input("val_3");
  n->add_output("y");
  auto* fx = n->add_metadata_props();
  fx->set_key("pkg.torch.onnx.fx_node");
  fx->set_value("%prelu : [num_users=1] = call_function[target=torch.ops.aten.prelu.default](args = (%x, %" +
                fx_weight + "), kwargs = {})");
  return m;
}

TEST(TorchParameters, AFoldedPReluWeightTrainsAsItsParameter) {
  onnx::ModelProto m = WithFoldedPReluWeight("p_ln2_weight", "['ln2.weight', 'val_2']");
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  StatusOr<TorchParameters> p = Recorded(m);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->trainable, (std::vector<std::string>{"fc.weight", "ln.weight", "val_3"}));
  EXPECT_TRUE(p->missing.empty());
  EXPECT_TRUE(p->tied.empty());
  for (const auto& prop : m.metadata_props()) {
    if (prop.key() != kTorchParametersKey) continue;
    EXPECT_NE(prop.value().find(R"({"initializer":"val_3","torch_name":"ln2.weight"})"), std::string::npos) << prop.value();
  }
}

TEST(TorchParameters, APReluSlopeFoldedFromSomethingElseStaysConstant) {
  for (const auto& [fx_weight, folded_from] : {std::pair<std::string, std::string>{"p_fc_weight", "['ln2.weight', 'val_2']"},
                                               {"p_ln2_weight", "['val_1', 'val_2']"}}) {
    SCOPED_TRACE(fx_weight + " " + folded_from);
    onnx::ModelProto m = WithFoldedPReluWeight(fx_weight, folded_from);
    ASSERT_TRUE(RecordTorchParameters(&m).ok());
    StatusOr<TorchParameters> p = Recorded(m);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p->trainable, (std::vector<std::string>{"fc.weight", "ln.weight"}));
    EXPECT_EQ(p->missing, std::vector<std::string>{"ln2.weight"});
  }
}

TEST(TorchParameters, NothingRecordedWithoutMetadata) {
  onnx::ModelProto m;
  AddInitializer(&m, "w", nullptr);
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  EXPECT_EQ(m.metadata_props_size(), 0);
}

TEST(TorchParameters, HelperListIsKeptAndChecked) {
  onnx::ModelProto m;
  AddInitializer(&m, "w", nullptr);
  SetModelMeta(&m, kTorchParametersKey, R"({"version": 1, "trainable": [{"initializer": "w", "torch_name": "fc.weight"}]})");
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  EXPECT_EQ(m.metadata_props_size(), 1);
  EXPECT_EQ(Recorded(m)->trainable, std::vector<std::string>{"w"});
}

TEST(TorchParameters, HelperListNamingAMissingInitializerIsRefused) {
  onnx::ModelProto m;
  AddInitializer(&m, "w", nullptr);
  SetModelMeta(&m, kTorchParametersKey, R"({"version": 1, "trainable": ["w", "fc.bias"]})");
  Status s = RecordTorchParameters(&m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'fc.bias', which is not an initializer"), std::string::npos) << s.message();
}

TEST(TorchParameters, HelperListNamingAnInitializerTwiceIsRefused) {
  onnx::ModelProto m;
  AddInitializer(&m, "w", nullptr);
  SetModelMeta(&m, kTorchParametersKey, R"({"version": 1, "trainable": ["w"], "frozen": ["w"]})");
  Status s = RecordTorchParameters(&m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("lists 'w' twice"), std::string::npos) << s.message();
}

TEST(TorchParameters, MalformedEntriesNameTheKey) {
  for (const char* bad : {"", "[]", R"({"version": 1})", R"({"version": 1, "trainable": [3]})",
                          R"({"version": 1, "trainable": "w"})", R"({"version": "1", "trainable": []})",
                          R"({"version": 1, "trainable": [], "missing": [1]})"}) {
    StatusOr<TorchParameters> p = ParseTorchParameters(bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_NE(p.status().message().find("dscompile.parameters"), std::string::npos) << p.status().message();
  }
}

// Byte mutations of a valid entry and of a graph signature: never a crash, always a message or a
// usable result, and every name a result lists is an initializer of the model.
TEST(TorchParameters, MutatedEntriesNeverCrash) {
  const std::string entry =
      R"({"version": 1, "exporter": "x", "trainable": [{"initializer": "w", "torch_name": "fc.weight"}, "b"],)"
      R"( "frozen": [{"initializer": "f"}], "missing": ["m"], "tied": ["t"]})";
  const std::string signature = "\n# inputs\np_w: PARAMETER target='w'\np_q: PARAMETER target='q'\nb_f: BUFFER target='f'\n";
  const std::string alphabet = "{}[]\":,' \n\\0123456789abcdefghijklmnopqrstuvwxyz_.-PARAMETER";
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string e = entry, sig = signature;
    for (std::string* text : {&e, &sig}) {
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits && !text->empty(); ++k) {
        const size_t at = rng() % text->size();
        switch (rng() % 3) {
          case 0: (*text)[at] = alphabet[rng() % alphabet.size()]; break;
          case 1: text->erase(at, 1 + rng() % 3); break;
          default: text->insert(at, 1, alphabet[rng() % alphabet.size()]);
        }
      }
    }
    StatusOr<TorchParameters> parsed = ParseTorchParameters(e);
    if (!parsed.ok()) {
      EXPECT_NE(parsed.status().message().find("dscompile.parameters"), std::string::npos);
    }

    for (bool helper : {true, false}) {
      onnx::ModelProto m;
      for (const char* name : {"w", "b", "f"}) AddInitializer(&m, name, helper ? nullptr : "PARAMETER");
      if (helper) SetModelMeta(&m, kTorchParametersKey, e);
      auto* p = m.mutable_graph()->add_metadata_props();
      p->set_key("pkg.torch.export.ExportedProgram.graph_signature");
      p->set_value(sig);
      Status s = RecordTorchParameters(&m);
      if (!s.ok()) {
        EXPECT_FALSE(s.message().empty());
        continue;
      }
      StatusOr<TorchParameters> rec = Recorded(m);
      ASSERT_TRUE(rec.ok()) << rec.status().ToString();  // what the importer accepts, select-loss can read
      for (const std::string& n : rec->trainable) EXPECT_TRUE(n == "w" || n == "b" || n == "f") << n;
    }
  }
}

}  // namespace
}  // namespace dsc

// RecordEmbeddingPadding: nn.Embedding's padding_idx from the dynamo exporter's fx_node text on a
// Gather, or from the export helper's entry (validated).
namespace dsc {
namespace {

std::string Entry(const onnx::ModelProto& m) {
  for (const auto& p : m.metadata_props())
    if (p.key() == kEmbeddingPaddingKey) return p.value();
  return "";
}

onnx::ModelProto WithGathers() {
  onnx::ModelProto m;
  AddInitializer(&m, "emb.weight", nullptr);  // 2 rows
  AddInitializer(&m, "pos.weight", nullptr);
  auto gather = [&](const std::string& w, const std::string& fx) {
    onnx::NodeProto* n = m.mutable_graph()->add_node();
    n->set_op_type("Gather");
    n->add_input(w);
    n->add_input("ids");
    n->add_output(w + "_out");
    auto* p = n->add_metadata_props();
    p->set_key("pkg.torch.onnx.fx_node");
    p->set_value(fx);
  };
  gather("emb.weight",
         "%embedding : [num_users=1] = call_function[target=torch.ops.aten.embedding.default]"
         "(args = (%p_emb_weight, %ids, 1), kwargs = {})");
  gather("pos.weight",
         "%embedding_1 : [num_users=1] = call_function[target=torch.ops.aten.embedding.default]"
         "(args = (%p_pos_weight, %ids), kwargs = {})");
  return m;
}

TEST(EmbeddingPadding, ReadFromTheDynamoExportersNodeMetadata) {
  onnx::ModelProto m = WithGathers();
  ASSERT_TRUE(RecordEmbeddingPadding(&m).ok());
  EXPECT_EQ(Entry(m), R"({"emb.weight":1})");
}

TEST(EmbeddingPadding, HelperEntryIsKeptAndChecked) {
  onnx::ModelProto m = WithGathers();
  SetModelMeta(&m, kEmbeddingPaddingKey, R"({"pos.weight": 0})");
  ASSERT_TRUE(RecordEmbeddingPadding(&m).ok());
  EXPECT_EQ(Entry(m), R"({"emb.weight":1,"pos.weight":0})");

  for (const char* bad : {R"({"nope": 0})", R"({"emb.weight": 2})", R"({"emb.weight": "0"})", "[1]", "{"}) {
    onnx::ModelProto b = WithGathers();
    SetModelMeta(&b, kEmbeddingPaddingKey, bad);
    Status s = RecordEmbeddingPadding(&b);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find(kEmbeddingPaddingKey), std::string::npos) << s.ToString();
  }
}

TEST(EmbeddingPadding, NothingWithoutPadding) {
  onnx::ModelProto m;
  AddInitializer(&m, "emb.weight", nullptr);
  ASSERT_TRUE(RecordEmbeddingPadding(&m).ok());
  EXPECT_EQ(Entry(m), "");
}


// RestoreBatchNormTraining: the dynamo exporter writes training-mode BatchNorm as training_mode=0;
// the fx_node text on the node says training=True.
onnx::ModelProto WithBatchNorms(int64_t opset) {
  onnx::ModelProto m;
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  auto bn = [&](const std::string& name, const std::string& fx, int64_t mode) {
    onnx::NodeProto* n = m.mutable_graph()->add_node();
    n->set_op_type("BatchNormalization");
    n->set_name(name);
    for (const char* in : {"x", "s", "b", "rm", "rv"}) n->add_input(name + "_" + in);
    n->add_output(name + "_y");
    if (mode >= 0) {
      auto* a = n->add_attribute();
      a->set_name("training_mode");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(mode);
    }
    if (fx.empty()) return;
    auto* p = n->add_metadata_props();
    p->set_key("pkg.torch.onnx.fx_node");
    p->set_value(fx);
  };
  bn("train", "%bn : [num_users=3] = call_function[target=torch.ops.aten._native_batch_norm_legit_functional.default]"
              "(args = (%conv2d, %p_bn_weight, %p_bn_bias, %b_bn_running_mean, %b_bn_running_var, True, 0.1, 1e-05), "
              "kwargs = {})", -1);
  bn("eval", "%bn_1 : [num_users=1] = call_function[target=torch.ops.aten._native_batch_norm_legit_no_training.default]"
             "(args = (%x, %p_w, %p_b, %b_rm, %b_rv, 0.1, 1e-05), kwargs = {})", -1);
  bn("functional_eval", "%bn_2 : [num_users=3] = call_function[target=torch.ops.aten._native_batch_norm_legit_functional"
                        ".default](args = (%x, %p_w, %p_b, %b_rm, %b_rv, False, 0.1, 1e-05), kwargs = {})", 0);
  bn("no_metadata", "", -1);
  return m;
}

int64_t TrainingMode(const onnx::NodeProto& n) {
  for (const auto& a : n.attribute())
    if (a.name() == "training_mode") return a.i();
  return 0;
}

TEST(BatchNormTraining, RestoredFromTheDynamoExportersNodeMetadata) {
  onnx::ModelProto m = WithBatchNorms(20);
  ASSERT_TRUE(RestoreBatchNormTraining(&m).ok());
  const auto& nodes = m.graph().node();
  EXPECT_EQ(TrainingMode(nodes[0]), 1);
  ASSERT_EQ(nodes[0].output_size(), 3);  // the updated running statistics become outputs
  EXPECT_EQ(nodes[0].output(1), "train_running_mean");
  EXPECT_EQ(nodes[0].output(2), "train_running_var");
  for (int k = 1; k < 4; ++k) {
    EXPECT_EQ(TrainingMode(nodes[k]), 0) << nodes[k].name();
    EXPECT_EQ(nodes[k].output_size(), 1) << nodes[k].name();
  }
}

TEST(BatchNormTraining, ATrainingBatchNormFoldedIntoAConvIsRefused) {
  onnx::ModelProto m = WithBatchNorms(20);
  onnx::NodeProto* conv = m.mutable_graph()->add_node();
  conv->set_op_type("Conv");
  conv->set_name("node_Conv_86");
  *conv->mutable_metadata_props() = m.graph().node(0).metadata_props();
  auto* rule = conv->add_metadata_props();
  rule->set_key("pkg.onnxscript.rewriter.rule_name");
  rule->set_value("FuseBatchNormIntoConv, RemoveOptionalBiasFromConv");
  Status s = RestoreBatchNormTraining(&m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("node_Conv_86"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("optimize=False"), std::string::npos) << s.ToString();
  // An inference-mode BatchNorm folded the same way is what the file says it is: no error.
  const auto rule_prop = *rule;
  *conv->mutable_metadata_props() = m.graph().node(1).metadata_props();
  *conv->add_metadata_props() = rule_prop;
  EXPECT_TRUE(RestoreBatchNormTraining(&m).ok());
}

TEST(BatchNormTraining, AFoldedBatchNormIsFoundByItsFxNodeWithoutTheRuleName) {
  // models/export_current.py keeps only the fx node; so may a user's tool.
  onnx::ModelProto m = WithBatchNorms(20);
  onnx::NodeProto* conv = m.mutable_graph()->add_node();
  conv->set_op_type("Conv");
  conv->set_name("node_Conv_127");
  *conv->mutable_metadata_props() = m.graph().node(0).metadata_props();
  Status s = RestoreBatchNormTraining(&m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("node_Conv_127"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("its PyTorch node is the BatchNorm"), std::string::npos) << s.ToString();
  // Elementwise ops with a BatchNorm's fx node are its decomposition, not a fold.
  conv->set_op_type("Mul");
  EXPECT_TRUE(RestoreBatchNormTraining(&m).ok());
  conv->set_op_type("Gemm");
  EXPECT_FALSE(RestoreBatchNormTraining(&m).ok());
}

TEST(BatchNormTraining, OpsetsBeforeTrainingModeAreLeftAlone) {
  onnx::ModelProto m = WithBatchNorms(13);
  ASSERT_TRUE(RestoreBatchNormTraining(&m).ok());
  EXPECT_EQ(TrainingMode(m.graph().node(0)), 0);
  EXPECT_EQ(m.graph().node(0).output_size(), 1);
}

}  // namespace
}  // namespace dsc
