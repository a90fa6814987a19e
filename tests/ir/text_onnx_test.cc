// The text form against ONNX itself: IR -> ModelProto -> IR prints the same, and libonnx's own
// text parser reads our output where names are simple.
#include <gtest/gtest.h>

#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "onnx/checker.h"
#include "onnx/defs/parser.h"
#include "tests/ir/test_graphs.h"

namespace dsc {
namespace {

TEST(TextOnnx, GraphToOnnxAndBackPrintsTheSame) {
  auto g = testing::MakeMlp();
  const std::string text = PrintGraph(*g);
  StatusOr<std::unique_ptr<Graph>> back = GraphFromOnnx(GraphToOnnx(*g));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(PrintGraph(**back), text);
}

// Only features libonnx 1.12's parser knows: no quoted names, no [node names], no empty lists,
// no rank-0 types (1.12 reads `float[]` as unknown rank), no inf/nan.
const char kSimpleText[] = R"(<
  ir_version: 8,
  opset_import: ["" : 17, "ai.dscompile" : 1],
  metadata_props: ["dsc.loss" : "loss"]
>
main (float[batch,4] x, int64[batch] y) => (float[batch] loss)
<
  float[3,4] w = {0.5, -1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1e-05, 11.0},
  int64[2] shape = {-1, 3},
  float[batch,3] h,
  float[batch,3] r
>
{
  h = Gemm <alpha = 1.0, transB = 1> (x, w)
  r = ai.dscompile.Scale <axes = [0, 1], factors = [1.0, 0.5], mode = "fast", modes = ["a", "b"], value = float[2] {1.0, 2.0}> (h)
  loss = SoftmaxCrossEntropyLoss <reduction = "none"> (r, y)
}
)";

TEST(TextOnnx, LibOnnxParserReadsSimpleText) {
  auto g = testing::ParseOrDie(kSimpleText);
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(PrintGraph(*g), kSimpleText);
  onnx::ModelProto model;
  onnx::Common::Status st = onnx::OnnxParser::Parse(model, kSimpleText);
  ASSERT_TRUE(st.IsOK()) << st.ErrorMessage();
  StatusOr<std::unique_ptr<Graph>> from_onnx = GraphFromOnnx(model);
  ASSERT_TRUE(from_onnx.ok()) << from_onnx.status().ToString();
  EXPECT_EQ(PrintGraph(**from_onnx), kSimpleText);
}

}  // namespace
}  // namespace dsc
