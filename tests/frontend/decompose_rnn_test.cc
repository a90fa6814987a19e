// LSTM, GRU and RNN imported through frontend/decompose_rnn.cc: the unrolled graphs, run by the
// CPU kernels, give rnn_cases.json's outputs (onnx.reference, or the ONNX definition in numpy for
// what it ignores: see gen_rnn_cases.py), and what cannot be unrolled is refused naming the node.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/onnx_import.h"
#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"
#include "passes/pass.h"
#include "runtime/executor.h"

namespace dsc {
namespace {

bool IsRecurrent(const Node& n) { return n.op_type() == "LSTM" || n.op_type() == "GRU" || n.op_type() == "RNN"; }

StatusOr<std::unique_ptr<Graph>> ImportText(const std::string& text) {
  onnx::ModelProto m;
  auto st = onnx::OnnxParser::Parse(m, text.c_str());
  if (!st.IsOK()) return InvalidArgument("parse: ", st.ErrorMessage());
  return ImportOnnxBytes(m.SerializeAsString(), "", "rnn.onnx");
}

TEST(DecomposeRnn, UnrolledGraphsGiveTheReferenceOutputs) {
  std::ifstream in(DSC_FRONTEND_TEST_DIR "/rnn_cases.json");
  ASSERT_TRUE(in) << "rnn_cases.json is missing";
  const nlohmann::json cases = nlohmann::json::parse(in)["cases"];
  ASSERT_GE(cases.size(), 19u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>() + " (reference: " + c["reference"].get<std::string>() + ")");
    StatusOr<std::unique_ptr<Graph>> g = ImportText(c["model"].get<std::string>());
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    for (const auto& n : (*g)->nodes()) EXPECT_FALSE(IsRecurrent(*n)) << n->Describe();
    // The index and shape Constants become initializers, as in dscompile's pipeline.
    Module m;
    m.programs.push_back(PlanProgram{"main", std::move(*g)});
    StatusOr<bool> folded = CreatePass(PassId::kFoldConstants)->Run(m, PassContext{});
    ASSERT_TRUE(folded.ok()) << folded.status().ToString();
    const Graph& graph = *m.programs[0].graph;
    std::map<std::string, Tensor> inputs;
    std::map<std::string, Tensor*> bind;
    for (const auto& [name, v] : c["inputs"].items()) {
      Tensor t(DType::kFloat32, v["dims"].get<std::vector<int64_t>>());
      const std::vector<float> values = v["values"].get<std::vector<float>>();
      ASSERT_EQ(static_cast<int64_t>(values.size()), t.numel());
      std::copy(values.begin(), values.end(), t.data<float>());
      bind[name] = &inputs.emplace(name, std::move(t)).first->second;
    }
    StatusOr<std::map<std::string, Tensor>> got = RunGraphOnCpu(graph, bind);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->size(), c["outputs"].size());
    for (const auto& [name, v] : c["outputs"].items()) {
      const Tensor& y = got->at(name);
      EXPECT_EQ(y.dims(), v["dims"].get<std::vector<int64_t>>()) << name;
      const std::vector<float> want = v["values"].get<std::vector<float>>();
      ASSERT_EQ(static_cast<int64_t>(want.size()), y.numel()) << name;
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(y.data<float>()[i], want[i], 2e-6 + 1e-5 * std::fabs(want[i])) << name << "[" << i << "]";
    }
  }
}

TEST(DecomposeRnn, UnnamedNodesWithoutYGetDistinctNames) {
  // Named after their first output that is not omitted: two nodes without a name or Y.
  StatusOr<std::unique_ptr<Graph>> g = ImportText(
      "<ir_version: 10, opset_import: [\"\" : 20]>\n"
      "g (float[3,2,3] X, float[1,8,3] W, float[1,8,2] R) => (float[1,2,2] a, float[1,2,2] b) {\n"
      "  \"\", a = LSTM <hidden_size = 2> (X, W, R)\n  \"\", b = LSTM <hidden_size = 2> (X, W, R)\n}");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (const auto& n : (*g)->nodes()) EXPECT_FALSE(IsRecurrent(*n)) << n->Describe();
}

// One LSTM node over X (seq dims `x_dims`) with extra inputs/attributes spliced in.
std::string LstmText(const std::string& x_dims, const std::string& attrs, const std::string& extra_inputs = "",
                     const std::string& initializers = "", const std::string& seq_lens_arg = "") {
  return "<ir_version: 10, opset_import: [\"\" : 20]>\n"
         "g (float[" + x_dims + "] X, float[1,8,3] W, float[1,8,2] R" + extra_inputs + ") => (float[3,1,2,2] Y)" +
         initializers + " {\n  [lstm0] Y = LSTM <" +
         (attrs.find("hidden_size") == std::string::npos ? "hidden_size = 2" + attrs : attrs.substr(2)) +
         "> (X, W, R, \"\"" + seq_lens_arg + ")\n}";
}

TEST(DecomposeRnn, RefusesWhatItCannotUnrollNamingTheNode) {
  struct Case {
    std::string text, message;
  } cases[] = {
      {LstmText("S,2,3", ""),
       "node 'lstm0' (LSTM): the sequence length of X ('X', axis 0) is the symbol 'S'; dscompile unrolls LSTM over its "
       "steps: bind it with --dim S=LENGTH or export with a fixed sequence length"},
      {LstmText("3,2,3", "", ", int32[2] lens", "", ", lens"),
       "node 'lstm0' (LSTM): sequence_lens ('lens') is supported only absent or as a constant equal to the full "
       "sequence length 3"},
      {LstmText("3,2,3", "", "", " <int32[2] lens = {3, 2}>", ", lens"), "sequence_lens ('lens') is supported only"},
      {LstmText("3,2,3", ", activations = [\"Affine\", \"Tanh\", \"Tanh\"], activation_alpha = [1.0], "
                         "activation_beta = [0.0]"),
       "node 'lstm0' (LSTM): activation 'Affine' is not supported"},
      {LstmText("3,2,3", ", activations = [\"Sigmoid\", \"Tanh\"]"),
       "node 'lstm0' (LSTM): 'activations' lists 2 functions; a LSTM takes 3"},
      {LstmText("3,2,3", ", activation_alpha = [0.5]"),
       "node 'lstm0' (LSTM): activation_alpha/activation_beta hold 1/0 values, but its activations take 0/0"},
      {LstmText("3,2,3", ", hidden_size = 3"),
       "node 'lstm0' (LSTM): W ('W') has 8 along axis 1; direction, hidden_size 3 and 4 gates make it 12"},
      {LstmText("3,2,3", ", direction = \"bidirectional\""),
       "node 'lstm0' (LSTM): W ('W') has 1 along axis 0; direction, hidden_size 2 and 4 gates make it 2"},
  };
  for (const Case& c : cases) {
    StatusOr<std::unique_ptr<Graph>> g = ImportText(c.text);
    ASSERT_FALSE(g.ok()) << c.text;
    EXPECT_NE(g.status().message().find(c.message), std::string::npos) << g.status().ToString();
  }
  // A length the graph computes (a Slice to a run-time end) has only a symbol inference invents: no
  // --dim binds it, so none is suggested.
  const std::string computed =
      "<ir_version: 8, opset_import: [\"\" : 17]>\n"
      "g (float[6,2,3] I, int64[1] e, float[1,8,3] W, float[1,8,2] R) => (float[3,1,2,2] Y)"
      " <int64[1] s = {0}, int64[1] ax = {0}> {\n  X = Slice(I, s, e, ax)\n  [lstm0] Y = LSTM <hidden_size = 2> (X, W, R)\n}";
  StatusOr<std::unique_ptr<Graph>> g = ImportText(computed);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("node 'lstm0' (LSTM): the sequence length of X ('X', axis 0) is not static (ONNX "
                                      "shape inference cannot compute it from the graph); dscompile unrolls LSTM over "
                                      "its steps: export with a fixed sequence length"),
            std::string::npos)
      << g.status().ToString();
  // Bound by --dim, the symbol gives the steps (the graph keeps it: the specialize pass binds it).
  onnx::ModelProto m;
  ASSERT_TRUE(onnx::OnnxParser::Parse(m, LstmText("S,2,3", "").c_str()).IsOK());
  ImportOptions bound;
  bound.dims["S"] = 3;
  StatusOr<std::unique_ptr<Graph>> unrolled = ImportOnnxBytes(m.SerializeAsString(), "", "rnn.onnx", bound);
  ASSERT_TRUE(unrolled.ok()) << unrolled.status().ToString();
  int splits_by_step = 0;
  for (const auto& n : (*unrolled)->nodes())
    splits_by_step += n->op_type() == "Split" && n->GetInt("axis", 0) == 0 && n->num_outputs() == 3;
  EXPECT_EQ(splits_by_step, 1);
  // A constant sequence_lens saying every sequence is full changes nothing and is accepted.
  StatusOr<std::unique_ptr<Graph>> full = ImportText(LstmText("3,2,3", "", "", " <int32[2] lens = {3, 3}>", ", lens"));
  EXPECT_TRUE(full.ok()) << full.status().ToString();
  // ... as an initializer in raw_data (numpy_helper's form) too.
  onnx::ModelProto with_raw;
  const std::string full_lens = LstmText("3,2,3", "", "", " <int32[2] lens = {3, 3}>", ", lens");
  ASSERT_TRUE(onnx::OnnxParser::Parse(with_raw, full_lens.c_str()).IsOK());
  ASSERT_EQ(with_raw.graph().initializer_size(), 1);
  onnx::TensorProto* lens = with_raw.mutable_graph()->mutable_initializer(0);
  const int32_t three[2] = {3, 3};
  lens->clear_int32_data();
  lens->set_raw_data(std::string(reinterpret_cast<const char*>(three), sizeof(three)));
  StatusOr<std::unique_ptr<Graph>> raw = ImportOnnxBytes(with_raw.SerializeAsString(), "", "rnn.onnx");
  EXPECT_TRUE(raw.ok()) << raw.status().ToString();
}

}  // namespace
}  // namespace dsc
