// RecordTorchParameters: the parameter list read from the export helper's metadata or derived
// from torch.export's per-initializer kinds and graph signature.
#include <gtest/gtest.h>

#include <random>

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

TEST(TorchParameters, DerivedFromTorchExportKinds_AbsentIsMissingAfterOptimizer) {
  onnx::ModelProto m = TorchExportModel();
  auto* mark = m.mutable_graph()->mutable_value_info(0)->add_metadata_props();
  mark->set_key("pkg.onnxscript.optimizer.folded_from");
  mark->set_value("['val_1']");
  ASSERT_TRUE(RecordTorchParameters(&m).ok());
  StatusOr<TorchParameters> p = Recorded(m);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->trainable, (std::vector<std::string>{"fc.weight", "ln.weight"}));
  EXPECT_EQ(p->missing, std::vector<std::string>{"ln2.weight"});
  EXPECT_TRUE(p->tied.empty());
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
    if (!parsed.ok()) EXPECT_NE(parsed.status().message().find("dscompile.parameters"), std::string::npos);

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
