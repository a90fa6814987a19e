// The verifier's per-node checks (ir/node_checks.h): one minimal graph per defect class the
// fuzzer found, each refused with a message naming node and attribute; valid twins still verify.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "ir/node_checks.h"
#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "ir/utf8.h"
#include "ir/verifier.h"

namespace dsc {
namespace {

// Parses `text` (which must parse) and returns the verifier's message, "" when it verifies.
std::string VerifyError(const std::string& text) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text);
  EXPECT_TRUE(g.ok()) << g.status().ToString() << "\n" << text;
  if (!g.ok()) return "parse error";
  Status s = VerifyGraph(**g);
  return s.ok() ? "" : s.message();
}

void ExpectRefused(const std::string& text, std::initializer_list<const char*> parts) {
  const std::string msg = VerifyError(text);
  EXPECT_FALSE(msg.empty()) << "verified unexpectedly:\n" << text;
  for (const char* part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in:\n" << msg;
}

std::string Header(int opset = 17) { return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]>\n"; }

std::string Zeros(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += i ? ",0" : "0";
  return s;
}

std::string ConvGraph(const std::string& attrs) {
  return Header() + "main (float[1,1,5,5] x) => (y)\n<float[2,1,3,3] w = {" + Zeros(18) + "}>\n{\n  [conv] y = Conv <" +
         attrs + "> (x, w)\n}\n";
}

std::string PoolGraph(const std::string& op, const std::string& attrs) {
  return Header() + "main (float[1,1,5,5] x) => (y)\n{\n  [pool] y = " + op + " <" + attrs + "> (x)\n}\n";
}

TEST(NodeChecks, ValidConvAndPoolVerify) {
  EXPECT_EQ(VerifyError(ConvGraph("kernel_shape = [3, 3], strides = [1, 1], pads = [0, 0, 0, 0]")), "");
  EXPECT_EQ(VerifyError(PoolGraph("MaxPool", "kernel_shape = [2, 2], strides = [2, 2]")), "");
}

TEST(NodeChecks, ZeroStrideRefused) {
  for (const char* op : {"MaxPool", "AveragePool"})
    ExpectRefused(PoolGraph(op, "kernel_shape = [2, 2], strides = [0, 1]"),
                  {"node 'pool'", "attribute 'strides' [0,1] has 0, must lie in [1, "});
  ExpectRefused(ConvGraph("strides = [1, 0]"), {"node 'conv' (Conv)", "attribute 'strides'"});
}

TEST(NodeChecks, WindowAttributeLengthsAndRanges) {
  ExpectRefused(PoolGraph("MaxPool", "kernel_shape = [2, 2], strides = [1]"), {"'strides' has 1 values", "needs 2"});
  ExpectRefused(PoolGraph("MaxPool", "kernel_shape = [2, 2], pads = [0, 0, 0]"), {"'pads' has 3 values"});
  ExpectRefused(PoolGraph("MaxPool", "kernel_shape = [2, 0]"), {"'kernel_shape' [2,0] has 0"});
  ExpectRefused(PoolGraph("MaxPool", "kernel_shape = [2, 2], dilations = [1, -1]"), {"'dilations'"});
  ExpectRefused(PoolGraph("MaxPool", "strides = [1, 1]"), {"'kernel_shape' is required"});
  ExpectRefused(PoolGraph("MaxPool", "kernel_shape = [2, 2], auto_pad = \"SAME\""), {"'auto_pad' is 'SAME'"});
  ExpectRefused(PoolGraph("MaxPool", "kernel_shape = [2, 2], ceil_mode = 2"), {"'ceil_mode' is 2"});
  ExpectRefused(ConvGraph("group = 0"), {"'group' is 0"});
}

TEST(NodeChecks, HugeOrNegativePadRefused) {
  ExpectRefused(ConvGraph("pads = [1099511627776, 0, 0, 0]"), {"node 'conv'", "'pads'", "1099511627776"});
  ExpectRefused(ConvGraph("pads = [-1, 0, 0, 0]"), {"'pads'", "-1"});
}

TEST(NodeChecks, WindowLargerThanPaddedInputRefused) {
  ExpectRefused(PoolGraph("MaxPool", "kernel_shape = [7, 2]"), {"the window (kernel 7, dilation 1) does not fit"});
  // ceil_mode keeps one window while the padded input (5) is short of it by less than a stride.
  ExpectRefused(PoolGraph("AveragePool", "kernel_shape = [7, 2], strides = [2, 1], ceil_mode = 1"),
                {"the window (kernel 7, dilation 1) does not fit", "within a stride (2) of ceil_mode"});
}

TEST(NodeChecks, CeilModeWindowPastThePaddedInputVerifies) {
  // HF EfficientNet: AvgPool2d(hidden_dim, ceil_mode=True) over a map smaller than hidden_dim.
  EXPECT_EQ(VerifyError(PoolGraph("AveragePool", "kernel_shape = [320, 320], strides = [320, 320], ceil_mode = 1")), "");
  EXPECT_EQ(VerifyError(PoolGraph("MaxPool", "kernel_shape = [7, 2], strides = [3, 1], ceil_mode = 1")), "");
}

TEST(NodeChecks, ConvChannelsAndKernelAgainstWeight) {
  const std::string grouped = Header() + "main (float[1,3,5,5] x, float[2,1,3,3] w) => (y)\n{\n  [conv] y = Conv (x, w)\n}\n";
  ExpectRefused(grouped, {"3 channels", "needs 1"});
  ExpectRefused(ConvGraph("kernel_shape = [2, 2]"), {"'kernel_shape' [2,2] does not match weight W [2,1,3,3]"});
}

std::string TransposeGraph(const std::string& perm) {
  return Header() + "main (float[2,3,4] x) => (y)\n{\n  [t] y = Transpose <perm = " + perm + "> (x)\n}\n";
}

TEST(NodeChecks, TransposePermMustBeAPermutationOfTheRank) {
  EXPECT_EQ(VerifyError(TransposeGraph("[2, 0, 1]")), "");
  ExpectRefused(TransposeGraph("[1, 0]"), {"node 't' (Transpose)", "'perm' [1,0] has 2 entries", "rank 3"});
  ExpectRefused(TransposeGraph("[0, 0, 1]"), {"'perm' [0,0,1] is not a permutation"});
  ExpectRefused(TransposeGraph("[0, 1, 3]"), {"is not a permutation"});
}

std::string SliceGraph(const std::string& steps) {
  return Header() + "main (float[8] x) => (y)\n<int64[1] s = {0}, int64[1] e = {8}, int64[1] a = {0}, int64[1] st = {" +
         steps + "}>\n{\n  [slice] y = Slice (x, s, e, a, st)\n}\n";
}

TEST(NodeChecks, SliceStepZeroAndInt64MinRefused) {
  EXPECT_EQ(VerifyError(SliceGraph("2")), "");
  ExpectRefused(SliceGraph("0"), {"node 'slice' (Slice)", "steps [0] holds 0"});
  ExpectRefused(SliceGraph("-9223372036854775808"), {"holds -9223372036854775808", "must fit int64"});
}

TEST(NodeChecks, SliceAxesInRange) {
  const std::string g = Header() + "main (float[8] x) => (y)\n<int64[1] s = {0}, int64[1] e = {8}, int64[1] a = {3}>\n"
                                   "{\n  [slice] y = Slice (x, s, e, a)\n}\n";
  ExpectRefused(g, {"axes entry 3 is out of range for rank 1"});
}

TEST(NodeChecks, MatMulAndGemmInnerDimensions) {
  const std::string ok = Header() + "main (float[2,3] a, float[3,4] b) => (y)\n{\n  [mm] y = MatMul (a, b)\n}\n";
  EXPECT_EQ(VerifyError(ok), "");
  const std::string mm = Header() + "main (float[2,3] a, float[5,4] b) => (y)\n{\n  [mm] y = MatMul (a, b)\n}\n";
  ExpectRefused(mm, {"node 'mm' (MatMul)", "inner dimensions differ", "[2,3] has 3 columns", "[5,4] has 5 rows"});
  const std::string gemm =
      Header() + "main (float[2,3] a, float[4,5] b) => (y)\n{\n  [fc] y = Gemm <transB = 1> (a, b)\n}\n";
  ExpectRefused(gemm, {"node 'fc' (Gemm)", "inner dimensions differ", "(transposed) has 5 rows"});
  const std::string bias =
      Header() + "main (float[2,3] a, float[3,4] b, float[3] c) => (y)\n{\n  [fc] y = Gemm (a, b, c)\n}\n";
  ExpectRefused(bias, {"input C [3] does not broadcast to [2,4]"});
}

TEST(NodeChecks, AxesAndBroadcasting) {
  ExpectRefused(Header() + "main (float[2,3] x) => (y)\n{\n  [sm] y = Softmax <axis = 2> (x)\n}\n",
                {"node 'sm' (Softmax): attribute 'axis' 2 is out of range for rank 2"});
  ExpectRefused(Header() + "main (float[2,3] x, float[2,4] z) => (y)\n{\n  [cat] y = Concat <axis = 0> (x, z)\n}\n",
                {"differ off the concatenation axis"});
  ExpectRefused(Header() + "main (float[2,3] x, float[4] z) => (y)\n{\n  [add] y = Add (x, z)\n}\n",
                {"input shapes [2,3] and [4] do not broadcast"});
  ExpectRefused(Header() + "main (float[2,3] x) => (y)\n{\n  [f] y = Flatten <axis = 3> (x)\n}\n", {"allowed -2..2"});
}

TEST(NodeChecks, DropoutRatioBelowOne) {
  const std::string g = Header() + "main (float[4] x) => (y)\n<float[] r = {1.0}>\n{\n  [drop] y = Dropout (x, r)\n}\n";
  ExpectRefused(g, {"node 'drop' (Dropout): ratio 1 must lie in [0, 1)"});
}

TEST(NodeChecks, SchemaArityAndAttributeKinds) {
  ExpectRefused(Header() + "main (float[2,3] x) => (y)\n{\n  [t] y = Transpose <perm = 1> (x)\n}\n",
                {"attribute 'perm' is int, must be ints"});
  ExpectRefused(Header() + "main (float[2,3] x) => (y)\n{\n  [r] y = Relu (x, x)\n}\n", {"has 2 inputs", "allows 1 to 1"});
  ExpectRefused(Header() + "main (float[1,1,5,5] x, float[2,1,3,3] w) => (y)\n{\n  [conv] y = Conv (, w)\n}\n",
                {"required input 0 ('X') is missing"});
}

TEST(NodeChecks, ValuesOfOneTypeParameterShareTheirElementType) {
  ExpectRefused(Header() + "main (float[2] x, int64[2] z) => (y)\n{\n  [add] y = Add (x, z)\n}\n",
                {"node 'add' (Add): input 1 'z' is int64 but 'x' is float; both have type T"});
  ExpectRefused(Header() + "main (float[2] x) => (int64[2] y)\n{\n  [relu] y = Relu (x)\n}\n",
                {"output 0 'y' is int64 but 'x' is float"});
}

TEST(NodeChecks, BatchNormParametersPerChannel) {
  const std::string g = Header() + "main (float[2,3,4] x, float[3] s, float[4] b, float[3] m, float[3] var) => (y)\n"
                                   "{\n  [bn] y = BatchNormalization (x, s, b, m, var)\n}\n";
  ExpectRefused(g, {"node 'bn' (BatchNormalization): input 2 [4] must hold one value per channel (C = 3)"});
}

TEST(NodeChecks, OwnOpsArity) {
  const std::string h = "<ir_version: 8, opset_import: [\"\" : 17, \"ai.dscompile\" : 1]>\n";
  EXPECT_EQ(VerifyError(h + "main (float[2] dy, float[2] x) => (dx)\n{\n  [g] dx = ai.dscompile.ReluGrad (dy, x)\n}\n"), "");
  ExpectRefused(h + "main (float[2] dy) => (dx)\n{\n  [g] dx = ai.dscompile.ReluGrad (dy)\n}\n",
                {"node 'g' (ai.dscompile.ReluGrad): has 1 inputs, needs 2"});
  ExpectRefused(h + "main (float[2] p, float[2] g) => ()\n{\n  [step] = ai.dscompile.SGDStep (p, g, , , , )\n}\n",
                {"required input 3 is missing"});
}

TEST(NodeChecks, AbsurdShapesRefused) {
  ExpectRefused(Header() + "main (float[2097152,2097152] x) => (y)\n{\n  y = Relu (x)\n}\n",
                {"value 'x' has shape [2097152,2097152]", "more than 1099511627776 elements"});
}

TEST(NodeChecks, InvalidUtf8NamesRefusedWithEscapedBytes) {
  ExpectRefused(Header() + "main (float[2] x) => (y)\n{\n  [\"bad\\xff\"] y = Relu (x)\n}\n",
                {"the name of a Relu node \"bad\\xff\" is not valid UTF-8"});
  ExpectRefused(Header() + "main (float[2] x) => (\"y\\xc3\")\n{\n  \"y\\xc3\" = Relu (x)\n}\n", {"\"y\\xc3\"", "UTF-8"});
}

TEST(NodeChecks, AttributesStageIgnoresUncheckedIntermediateTypes) {
  // Before shape inference, a declared but wrong intermediate type must not be judged.
  auto g = ParseGraph(Header() + "main (float[2,3] a, float[3,4] b) => (y)\n<float[9,9] h>\n{\n  h = Relu (a)\n"
                                 "  [mm] y = MatMul (h, b)\n}\n");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(CheckNodes(**g, NodeCheckStage::kAttributes).ok());
  EXPECT_FALSE(CheckNodes(**g, NodeCheckStage::kShapes).ok());
}

// A declared shape of 2^39 floats over two values: refused before anything is allocated (the
// allocation used to come first and threw bad_alloc).
TEST(TensorFromOnnx, HugeDeclaredShapeWithTinyDataRefusedUnallocated) {
  onnx::TensorProto t;
  t.set_name("w");
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(int64_t{1} << 20);
  t.add_dims(int64_t{1} << 19);
  t.add_float_data(1);
  t.add_float_data(2);
  StatusOr<Tensor> r = TensorFromOnnx(t, "initializer 'w'");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "initializer 'w' holds 2 values, its shape needs 549755813888");
  t.clear_float_data();
  t.set_raw_data(std::string(8, '\0'));
  r = TensorFromOnnx(t, "initializer 'w'");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "initializer 'w' raw_data holds 8 bytes, its type and shape need 2199023255552");
  t.add_dims(int64_t{1} << 30);  // 2^69 elements: beyond the limit before any size arithmetic
  EXPECT_FALSE(TensorFromOnnx(t).ok());
}

// A weight read by every node of a long program: the verifier runs between passes, so it must not
// scan each input's use list (that was quadratic here). Timing printed, not asserted.
TEST(Verifier, SharedWeightOfALongChainVerifiesInLinearTime) {
  Graph g;
  Value* v = g.AddInput("x", TensorType{DType::kFloat32, Shape{Dim::Static(4), Dim::Static(8)}});
  Value* w = g.AddInitializer("w", Tensor(DType::kFloat32, {8, 8}));
  for (int i = 0; i < 50000; ++i) {
    Node* n = g.AddNode("MatMul", {v, w}, {StrCat("m", i)});
    n->output(0)->type = v->type;
    v = n->output(0);
  }
  g.AddOutput(v);
  const auto start = std::chrono::steady_clock::now();
  Status s = VerifyGraph(g);
  std::cout << "verifying 50000 nodes sharing one weight: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(Utf8, ValidationAndEscaping) {
  EXPECT_TRUE(IsValidUtf8("fc1.weight"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9t\xc3\xa9"));           // été
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));            // U+1F600
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));                   // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));               // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));           // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("ab\xe2\x82"));                 // truncated
  EXPECT_EQ(EscapeBytes("a\\b\xff\n"), "a\\x5cb\\xff\\x0a");
}

TEST(StatusContext, ContextAlreadyPresentIsNotRepeated) {
  Status s = InvalidArgument("node 'x' (Relu): bad");
  EXPECT_EQ(s.WithContext("node 'x' (Relu)").message(), "node 'x' (Relu): bad");
  EXPECT_EQ(s.WithContext("step 3").message(), "step 3: node 'x' (Relu): bad");
  // A context that is only a prefix of the first part is still added.
  EXPECT_EQ(s.WithContext("node").message(), "node: node 'x' (Relu): bad");
}

}  // namespace
}  // namespace dsc
