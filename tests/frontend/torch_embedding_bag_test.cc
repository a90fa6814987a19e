// EmbeddingBagAsSegmentReduction (frontend/torch_embedding_bag.cc): F.embedding_bag as torch 2.15's
// dynamo exporter and its legacy exporter write it (data/embedding_bag/, gen_embedding_bag_cases.py)
// imports without a Loop
// or a sequence op, and its bag values and the gradients of the weight and per_sample_weights equal
// PyTorch's: sum, mean and max, empty bags, padding_idx (all-padding bags), include_last_offset,
// 2-D input, sparse=True, int32 ids and offsets, ties in max (the gradient reaches the first maximal position). What
// dscompile cannot compute is refused naming the node and the argument.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/onnx_import.h"
#include "frontend/torch_embedding_bag.h"
#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"
#include "passes/pass.h"
#include "runtime/executor.h"
#include "tests/frontend/differentiate.h"

namespace dsc {
namespace {

const std::string kDir = DSC_FRONTEND_DATA_DIR "/embedding_bag/";

nlohmann::json Cases() {
  std::ifstream in(kDir + "cases.json");
  EXPECT_TRUE(in) << "missing data/embedding_bag/cases.json";
  return nlohmann::json::parse(in);
}

Tensor Ints(const std::vector<int64_t>& v, std::vector<int64_t> dims, bool int32) {
  if (int32) return Tensor::FromVector<int32_t>(DType::kInt32, std::move(dims), std::vector<int32_t>(v.begin(), v.end()));
  return Tensor::FromVector<int64_t>(DType::kInt64, std::move(dims), v);
}

TEST(EmbeddingBag, ValuesAndGradientsArePyTorchs) {
  const nlohmann::json cases = Cases();
  ASSERT_EQ(cases.size(), 20u);
  int checked = 0;
  for (const auto& c : cases) {
    if (c.at("refused").get<bool>()) continue;
    const std::string file = c.at("file").get<std::string>();
    SCOPED_TRACE(file);
    StatusOr<std::unique_ptr<Graph>> imported = ImportOnnxFile(kDir + file);
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    Graph& g = **imported;
    for (const auto& n : g.nodes()) {
      EXPECT_NE(n->op_type(), "Loop") << n->Describe();
      EXPECT_EQ(n->op_type().find("Sequence"), std::string::npos) << n->Describe();
    }
    std::vector<std::string> params;
    for (const auto& [name, _] : c.at("grads").items()) params.push_back(name);
    StatusOr<Module> m = testing::Differentiate(std::move(*imported), params, {"loss", "out"});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    Graph& dg = *m->programs[0].graph;
    const bool int32 = c.at("int32").get<bool>();
    Tensor idx = Ints(c.at("idx").get<std::vector<int64_t>>(), c.at("idx_shape").get<std::vector<int64_t>>(), int32);
    const std::vector<int64_t> off_v = c.at("off").get<std::vector<int64_t>>();
    Tensor off = Ints(off_v, {static_cast<int64_t>(off_v.size())}, int32);
    const std::vector<float> psw_v = c.at("psw_in").get<std::vector<float>>();
    Tensor psw = Tensor::FromVector<float>(DType::kFloat32, {static_cast<int64_t>(psw_v.size())}, psw_v);
    std::map<std::string, Tensor*> inputs = {{"idx", &idx}};
    if (dg.FindValue("off") && dg.FindValue("off")->is_graph_input()) inputs["off"] = &off;
    if (!psw_v.empty()) inputs["psw_in"] = &psw;
    StatusOr<std::map<std::string, Tensor>> got = RunGraphOnCpu(dg, inputs, RunOptions{});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    auto expect_near = [](const Tensor& t, const std::vector<double>& want, const std::string& what) {
      ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << what;
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(t.GetAsDouble(static_cast<int64_t>(i)), want[i], 1e-6 + 1e-5 * std::fabs(want[i]))
            << what << "[" << i << "]";
    };
    expect_near(got->at("out"), c.at("out").get<std::vector<double>>(), "out");
    expect_near(got->at("loss"), {c.at("loss").get<double>()}, "loss");
    for (size_t k = 0; k < dg.training.parameters.size(); ++k)
      expect_near(got->at(dg.training.gradients[k]),
                  c.at("grads").at(dg.training.parameters[k]).get<std::vector<double>>(),
                  "d" + dg.training.parameters[k]);
    ++checked;
  }
  EXPECT_EQ(checked, 19);
}

TEST(EmbeddingBag, ScaleGradByFreqIsRefusedNamingTheNodeAndArgument) {
  int refused = 0;
  for (const auto& c : Cases()) {
    if (!c.at("refused").get<bool>()) continue;
    const std::string file = c.at("file").get<std::string>();
    StatusOr<std::unique_ptr<Graph>> imported = ImportOnnxFile(kDir + file);
    ASSERT_FALSE(imported.ok()) << file;
    const std::string msg = imported.status().ToString();
    EXPECT_NE(msg.find("scale_grad_by_freq=True"), std::string::npos) << msg;
    EXPECT_NE(msg.find("aten.embedding_bag.padding_idx"), std::string::npos) << msg;
    EXPECT_NE(msg.find("node '"), std::string::npos) << msg;
    ++refused;
  }
  EXPECT_EQ(refused, 1);
}

// A dynamo file stripped of its node metadata: the per-bag Loop is refused by name, with how to
// export it; a graph without such a loop is left as it is.
TEST(EmbeddingBag, ALoopWithoutMetadataIsNamedAsTorchsEmbeddingBag) {
  onnx::ModelProto m;
  {
    std::ifstream in(kDir + "mean.dynamo_default.onnx", std::ios::binary);
    ASSERT_TRUE(m.ParseFromIstream(&in));
  }
  std::string loop;
  for (auto& n : *m.mutable_graph()->mutable_node()) {
    n.clear_metadata_props();
    if (n.op_type() == "Loop") loop = n.name();
  }
  ASSERT_FALSE(loop.empty());
  Status s = EmbeddingBagAsSegmentReduction(&m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("node '" + loop + "' (Loop)"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("embedding_bag"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("dynamo=True"), std::string::npos) << s.ToString();

  onnx::ModelProto plain;
  ASSERT_TRUE(onnx::OnnxParser::Parse(plain, R"(<ir_version: 10, opset_import: ["" : 20]>
g (float[2] x) => (float[2] y) { y = Relu (x) }
)").IsOK());
  const std::string before = plain.SerializeAsString();
  ASSERT_TRUE(EmbeddingBagAsSegmentReduction(&plain).ok());
  EXPECT_EQ(plain.SerializeAsString(), before);
}

}  // namespace
}  // namespace dsc
