// Text form: print -> parse -> print is the identity, and parse keeps every detail of the graph.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "ir/text.h"
#include "tests/ir/test_graphs.h"

namespace dsc {
namespace {

using testing::MakeMlp;
using testing::ParseOrDie;

// Parses canonical text and checks that it prints back unchanged.
void ExpectCanonical(const std::string& text) {
  auto g = ParseOrDie(text);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(PrintGraph(*g), text);
}

const char kMlpText[] = R"(<
  ir_version: 8,
  opset_import: ["" : 17, "ai.dscompile" : 1],
  metadata_props: ["source" : "torch.onnx", "dsc.loss" : "loss", "dsc.parameters" : "fc1.weight,fc1.bias,fc2.weight"]
>
main (float[batch,4] x, int64[batch] y) => (float[] loss, float[] loss_sum)
<
  float[3,4] "fc1.weight" = {0.1, -0.25, 1e-05, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0},
  float[3] "fc1.bias" = {0.0, 0.5, -1.0},
  float[2,3] "fc2.weight" = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0},
  float[batch,3] "/fc1/Gemm_output_0",
  float[batch,3] "onnx::Gemm_5",
  float[batch,2] logits,
  float[batch,2] log_prob
>
{
  ["/fc1/Gemm"] "/fc1/Gemm_output_0" = Gemm <alpha = 1.0, transB = 1> (x, "fc1.weight", "fc1.bias")
  ["/Relu"] "onnx::Gemm_5" = Relu("/fc1/Gemm_output_0")
  ["/fc2/Gemm"] logits = Gemm <transB = 1> ("onnx::Gemm_5", "fc2.weight")
  loss, log_prob = SoftmaxCrossEntropyLoss <reduction = "mean"> (logits, y)
  loss_sum = ai.dscompile.AllReduce <op = "sum"> (loss)
}
)";

TEST(TextRoundTrip, MlpPrintsCanonicalText) {
  auto g = MakeMlp();
  EXPECT_EQ(PrintGraph(*g), kMlpText);
  ExpectCanonical(kMlpText);
}

TEST(TextRoundTrip, ParseKeepsStructure) {
  auto g = ParseOrDie(kMlpText);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->training.loss, "loss");
  EXPECT_EQ(g->training.parameters, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight"}));
  EXPECT_EQ(g->metadata.size(), 1u);  // the dsc.* keys moved into g->training
  EXPECT_EQ(g->opsets.at(kDscDomain), 1);
  ASSERT_EQ(g->num_nodes(), 5u);
  const Node* fc1 = g->nodes().front().get();
  EXPECT_EQ(fc1->name(), "/fc1/Gemm");
  EXPECT_EQ(fc1->input(1)->name(), "fc1.weight");
  EXPECT_TRUE(fc1->input(1)->is_initializer());
  EXPECT_EQ(fc1->GetInt("transB", 0), 1);
  EXPECT_EQ(KindOf(fc1->attrs().at("alpha")), AttrKind::kFloat);
  const Node* ar = g->nodes().back().get();
  EXPECT_EQ(ar->domain(), kDscDomain);
  EXPECT_EQ(ar->op_type(), "AllReduce");
  Value* w = g->FindValue("fc1.weight");
  EXPECT_TRUE(w->initializer().SameContents(MakeMlp()->FindValue("fc1.weight")->initializer()));
  EXPECT_EQ(TypeToString(g->FindValue("onnx::Gemm_5")->type), "float[batch,3]");
}

TEST(TextRoundTrip, ClonePrintsTheSame) {
  auto g = MakeMlp();
  EXPECT_EQ(PrintGraph(*g->Clone()), PrintGraph(*g));
}

TEST(TextRoundTrip, QuotedNamesWithEscapes) {
  Graph g;
  Value* a = g.AddInput("we\"ird\\name\n\ttab", TensorType{DType::kFloat32, Shape{Dim::Symbol("n.m"), Dim{}}});
  Node* n = g.AddNode("Op.With.Dots", {a}, {"out put"}, "my-domain.x", "node]name");
  n->SetAttr("str\"", std::string("a\"b\\c\x01"));
  g.AddOutput(n->output(0));
  g.opsets["my-domain.x"] = 3;
  const std::string text = PrintGraph(g);
  EXPECT_NE(text.find(R"("we\"ird\\name\n\ttab")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(float["n.m",?])"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(["node]name"] "out put" = "my-domain.x"."Op.With.Dots" <"str\"" = "a\"b\\c\x01"> )"),
            std::string::npos) << text;
  auto p = ParseOrDie(text);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(PrintGraph(*p), text);
  const Node* pn = p->nodes().front().get();
  EXPECT_EQ(pn->domain(), "my-domain.x");
  EXPECT_EQ(pn->op_type(), "Op.With.Dots");
  EXPECT_EQ(pn->name(), "node]name");
  EXPECT_EQ(pn->GetString("str\"", ""), "a\"b\\c\x01");
  EXPECT_EQ(p->inputs()[0]->name(), "we\"ird\\name\n\ttab");
}

TEST(TextRoundTrip, UnquotedBracketNodeNameAndCommentsAreAccepted) {
  auto g = ParseOrDie(R"(  # leading comment
main (float[2] x) => (float[2] y)   # trailing comment
{
  [fc1/Gemm] y = Relu(x)  # a comment with "quotes" and { braces
}
)");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->nodes().front()->name(), "fc1/Gemm");
  EXPECT_NE(PrintGraph(*g).find(R"(["fc1/Gemm"] y = Relu(x))"), std::string::npos);
}

TEST(TextRoundTrip, StandardOnnxTextParses) {
  // The example from onnx.ai's Syntax.md, attributes after the inputs, and a named tensor constant.
  auto g = ParseOrDie(R"(
<
  ir_version: 7,
  opset_import: [ "" : 10 ],
  producer_name: "onnx-example"
>
agraph (float[N, 128] X, float[128, 10] W, float[10] B) => (float[N, 10] C)
{
    T = MatMul(X, W)
    S = Add(T, B)
    C = Softmax(S) <axis = 1>
    K = Constant <value = int64[2] shape = {1, 2}> ()
}
)");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->name, "agraph");
  EXPECT_EQ(g->ir_version, 7);
  EXPECT_EQ(g->opsets.size(), 1u);
  EXPECT_EQ(g->opsets.at(""), 10);
  EXPECT_EQ(g->nodes().back()->GetTensor("value")->ToInt64Vector(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(g->nodes().front()->GetInt("axis", 0), 0);
  ExpectCanonical(PrintGraph(*g));
}

TEST(TextRoundTrip, OmittedOptionalInputsAndOutputs) {
  const std::string text = R"(<
  ir_version: 8,
  opset_import: ["" : 17]
>
main (float[2] a, float[2] c) => (out1, out3)
{
  out1, , out3 = SomeOp(a, , c)
  p, = Two(a, )
  "" = One("")
  = Zero()
}
)";
  auto g = ParseOrDie(text);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(PrintGraph(*g), text);
  auto it = g->nodes().begin();
  const Node* some = (it++)->get();
  ASSERT_EQ(some->num_inputs(), 3u);
  EXPECT_EQ(some->input(1), nullptr);
  ASSERT_EQ(some->num_outputs(), 3u);
  EXPECT_EQ(some->output(1)->name(), "");
  const Node* two = (it++)->get();
  EXPECT_EQ(two->num_inputs(), 2u);
  EXPECT_EQ(two->num_outputs(), 2u);
  const Node* one = (it++)->get();
  EXPECT_EQ(one->num_inputs(), 1u);
  EXPECT_EQ(one->input(0), nullptr);
  EXPECT_EQ(one->num_outputs(), 1u);
  const Node* zero = (it++)->get();
  EXPECT_EQ(zero->num_inputs(), 0u);
  EXPECT_EQ(zero->num_outputs(), 0u);
  // Unknown element types print as bare names.
  EXPECT_EQ(g->outputs()[0]->type.dtype, DType::kUndefined);
}

TEST(TextRoundTrip, EveryAttributeKind) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, Shape{Dim::Static(2)}});
  Node* n = g.AddNode("Everything", {x}, {"y"});
  n->SetAttr("i", int64_t{-42});
  n->SetAttr("i_max", std::numeric_limits<int64_t>::max());
  n->SetAttr("i_min", std::numeric_limits<int64_t>::min());
  n->SetAttr("f", 1e-5f);
  n->SetAttr("f_whole", 2.0f);
  n->SetAttr("f_big", 3e38f);
  n->SetAttr("f_neg_zero", -0.0f);
  n->SetAttr("f_inf", std::numeric_limits<float>::infinity());
  n->SetAttr("f_nan", std::numeric_limits<float>::quiet_NaN());
  n->SetAttr("s", std::string("mean"));
  n->SetAttr("s_empty", std::string());
  n->SetAttr("t", Tensor::FromVector<float>(DType::kFloat32, {2}, {1, 2}));
  n->SetAttr("t_scalar", Tensor::Scalar(DType::kInt64, 5));
  n->SetAttr("t_empty", Tensor(DType::kFloat32, {0, 3}));
  n->SetAttr("ints", std::vector<int64_t>{1, 0, -2});
  n->SetAttr("ints_empty", std::vector<int64_t>{});
  n->SetAttr("floats", std::vector<float>{1.0f, 0.5f});
  n->SetAttr("floats_inf", std::vector<float>{1.0f, -std::numeric_limits<float>::infinity()});
  n->SetAttr("floats_empty", std::vector<float>{});
  n->SetAttr("strings", std::vector<std::string>{"a", "b c"});
  n->SetAttr("strings_empty", std::vector<std::string>{});
  g.AddOutput(n->output(0));
  const std::string line = PrintNode(*n);
  for (const char* part : {"f = 1e-05", "f_whole = 2.0", "f_big = 3e+38", "f_neg_zero = -0.0",
                           "f_inf: float = inf", "f_nan: float = nan", "i = -42", "ints = [1, 0, -2]",
                           "ints_empty: ints = []", "floats = [1.0, 0.5]", "floats_inf: floats = [1.0, -inf]",
                           "floats_empty: floats = []", "strings_empty: strings = []", "s_empty = \"\"",
                           "t = float[2] {1.0, 2.0}", "t_scalar = int64[] {5}", "t_empty = float[0,3] {}"})
    EXPECT_NE(line.find(part), std::string::npos) << part << " not in " << line;
  auto p = ParseOrDie(PrintGraph(g));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(PrintGraph(*p), PrintGraph(g));
  const Node* pn = p->nodes().front().get();
  ASSERT_EQ(pn->attrs().size(), n->attrs().size());
  for (const auto& [name, value] : n->attrs()) {
    const AttrValue& got = pn->attrs().at(name);
    ASSERT_EQ(KindOf(got), KindOf(value)) << name;
    if (KindOf(value) == AttrKind::kFloat) {
      float a = std::get<float>(value), b = std::get<float>(got);
      EXPECT_EQ(std::memcmp(&a, &b, 4), 0) << name;
    } else if (KindOf(value) == AttrKind::kTensor) {
      EXPECT_TRUE(std::get<Tensor>(got).SameContents(std::get<Tensor>(value))) << name;
    } else if (KindOf(value) == AttrKind::kFloats) {
      const auto& a = std::get<std::vector<float>>(value);
      const auto& b = std::get<std::vector<float>>(got);
      EXPECT_TRUE(a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), 4 * a.size()) == 0)) << name;
    } else if (KindOf(value) == AttrKind::kInt) {
      EXPECT_EQ(std::get<int64_t>(got), std::get<int64_t>(value)) << name;
    } else if (KindOf(value) == AttrKind::kInts) {
      EXPECT_EQ(std::get<std::vector<int64_t>>(got), std::get<std::vector<int64_t>>(value)) << name;
    } else if (KindOf(value) == AttrKind::kString) {
      EXPECT_EQ(std::get<std::string>(got), std::get<std::string>(value)) << name;
    } else {
      EXPECT_EQ(std::get<std::vector<std::string>>(got), std::get<std::vector<std::string>>(value)) << name;
    }
  }
}

TEST(TextRoundTrip, TypedAttributesParse) {
  auto g = ParseOrDie(R"(main (float[2] x) => (y) {
  y = Op <a: int = 3, b: float = 2, c: string = "s", d: tensor = float[1] {4}, e: ints = [1],
          f: floats = [1, 2.5], g: strings = ["x"], h = [1, 2.5], k = -inf, m = nan> (x)
})");
  ASSERT_NE(g, nullptr);
  const Node* n = g->nodes().front().get();
  EXPECT_EQ(n->GetInt("a", 0), 3);
  EXPECT_EQ(KindOf(n->attrs().at("b")), AttrKind::kFloat);
  EXPECT_EQ(n->GetFloat("b", 0), 2.0f);
  EXPECT_EQ(n->GetString("c", ""), "s");
  EXPECT_EQ(n->GetTensor("d")->GetAsDouble(0), 4.0);
  EXPECT_EQ(n->GetInts("e"), (std::vector<int64_t>{1}));
  EXPECT_EQ(n->GetFloats("f"), (std::vector<float>{1.0f, 2.5f}));
  EXPECT_EQ(n->GetFloats("h"), (std::vector<float>{1.0f, 2.5f}));
  EXPECT_EQ(n->GetFloat("k", 0), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(n->GetFloat("m", 0)));
}

// Initializers of every dtype with extreme values come back bit-exact.
TEST(TextRoundTrip, EveryDTypeBitExact) {
  Graph g;
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  auto add = [&](const char* name, DType dt, std::vector<double> v) {
    Tensor t(dt, {static_cast<int64_t>(v.size())});
    for (size_t i = 0; i < v.size(); ++i) t.SetFromDouble(static_cast<int64_t>(i), v[i]);
    g.AddInitializer(name, t);
  };
  add("f32", DType::kFloat32, {0.1, -0.0, inf, -inf, nan, 3.4028234663852886e38, 1.17549435e-38, 1.4e-45, 1 / 3.0});
  add("f64", DType::kFloat64, {0.1, -0.0, inf, -inf, nan, 1.7976931348623157e308, 4.9e-324, 1 / 3.0});
  add("f16", DType::kFloat16, {0.1, -0.0, inf, -inf, nan, 65504, 6e-8, 1 / 3.0});
  add("bf16", DType::kBFloat16, {0.1, -0.0, inf, -inf, nan, 3.38e38, 1e-40, 1 / 3.0});
  add("i32", DType::kInt32, {-2147483648.0, 2147483647.0, 0});
  add("i16", DType::kInt16, {-32768, 32767});
  add("i8", DType::kInt8, {-128, 127});
  add("u8", DType::kUInt8, {0, 255});
  add("b", DType::kBool, {0, 1, 1});
  Tensor i64(DType::kInt64, {3});
  i64.SetFromInt(0, std::numeric_limits<int64_t>::min());
  i64.SetFromInt(1, std::numeric_limits<int64_t>::max());
  i64.SetFromInt(2, (int64_t{1} << 53) + 1);  // not representable as double
  g.AddInitializer("i64", i64);
  g.AddInitializer("scalar", Tensor::Scalar(DType::kFloat32, 2.5));
  g.AddInitializer("empty", Tensor(DType::kInt32, {2, 0}));
  g.AddOutput(g.FindValue("f32"));

  const std::string text = PrintGraph(g);
  EXPECT_NE(text.find("float[9] f32 = {0.1, -0.0, inf, -inf, nan, 3.4028235e+38"), std::string::npos) << text;
  EXPECT_NE(text.find("int64[3] i64 = {-9223372036854775808, 9223372036854775807, 9007199254740993}"), std::string::npos);
  EXPECT_NE(text.find("bool[3] b = {0, 1, 1}"), std::string::npos);
  EXPECT_NE(text.find("float[] scalar = {2.5}"), std::string::npos);
  EXPECT_NE(text.find("int32[2,0] empty = {}"), std::string::npos);
  auto p = ParseOrDie(text);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(PrintGraph(*p), text);
  for (Value* v : g.initializers())
    EXPECT_TRUE(p->FindValue(v->name())->initializer().SameContents(v->initializer())) << v->name();
}

// Every non-NaN half and bfloat16 bit pattern survives printing through float.
TEST(TextRoundTrip, HalfAndBFloat16AllPatternsExact) {
  for (DType dt : {DType::kFloat16, DType::kBFloat16}) {
    Graph g;
    Tensor t(dt, {65536});
    int64_t n = 0;
    for (uint32_t bits = 0; bits < 65536; ++bits) {
      uint16_t b = static_cast<uint16_t>(bits);
      float f = dt == DType::kFloat16 ? HalfToFloat(b) : BFloat16ToFloat(b);
      if (std::isnan(f)) continue;
      std::memcpy(t.raw() + 2 * n++, &b, 2);
    }
    g.AddInitializer("t", t.Reshaped({65536}));
    g.AddOutput(g.FindValue("t"));
    auto p = ParseOrDie(PrintGraph(g));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(p->FindValue("t")->initializer().SameContents(t)) << DTypeName(dt);
  }
}

TEST(TextRoundTrip, RandomFloatBitsExact) {
  std::mt19937_64 rng(7);
  Tensor f32(DType::kFloat32, {5000}), f64(DType::kFloat64, {5000});
  for (int64_t i = 0; i < 5000; ++i) {
    uint32_t a;
    uint64_t b;
    do { a = static_cast<uint32_t>(rng()); } while ((a & 0x7f800000u) == 0x7f800000u);
    do { b = rng(); } while ((b & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
    std::memcpy(f32.raw() + 4 * i, &a, 4);
    std::memcpy(f64.raw() + 8 * i, &b, 8);
  }
  Graph g;
  g.AddInitializer("a", f32);
  g.AddInitializer("b", f64);
  g.AddOutput(g.FindValue("a"));
  auto p = ParseOrDie(PrintGraph(g));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->FindValue("a")->initializer().SameContents(f32));
  EXPECT_TRUE(p->FindValue("b")->initializer().SameContents(f64));
}

TEST(TextRoundTrip, ShapesOfEveryKind) {
  const std::string text = R"(<
  ir_version: 8,
  opset_import: ["" : 17]
>
main (float[batch,?,3] a, int64 unranked, bool[] scalar, "no type") => (float16[2,0] out)
<
  bfloat16[seq,"d.model"] mid,
  double unranked_mid
>
{
  mid, unranked_mid = Op(a, unranked, scalar, "no type")
  out = Op2(mid)
}
)";
  auto g = ParseOrDie(text);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(PrintGraph(*g), text);
  const Shape& s = *g->inputs()[0]->type.shape;
  EXPECT_EQ(s[0], Dim::Symbol("batch"));
  EXPECT_EQ(s[1], Dim{});
  EXPECT_EQ(s[2], Dim::Static(3));
  EXPECT_FALSE(g->inputs()[1]->type.shape.has_value());
  EXPECT_TRUE(g->inputs()[2]->type.shape->empty());
  EXPECT_EQ(g->inputs()[3]->type.dtype, DType::kUndefined);
  EXPECT_EQ(g->FindValue("mid")->type.dtype, DType::kBFloat16);
}

TEST(TextRoundTrip, HeaderIsOptionalAndNodesAreSorted) {
  auto g = ParseOrDie(R"(main (float[2] x) => (float[2] z) {
  z = Neg(y)
  y = Relu(x)
})");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->ir_version, 8);
  EXPECT_EQ(g->nodes().front()->op_type(), "Relu");
  EXPECT_EQ(g->nodes().back()->op_type(), "Neg");
}

TEST(TextRoundTrip, ElidedInitializers) {
  auto g = MakeMlp();
  PrintOptions opts;
  opts.elide_above = 4;
  const std::string text = PrintGraph(*g, opts);
  EXPECT_NE(text.find(R"(float[3,4] "fc1.weight" = ...,)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(float[3] "fc1.bias" = {0.0, 0.5, -1.0})"), std::string::npos) << text;

  StatusOr<std::unique_ptr<Graph>> refused = ParseGraph(text);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "initializer 'fc1.weight' has elided data: use the .onnx dump to reload it"),
            std::string::npos)
      << refused.status().message();

  ParseOptions popts;
  popts.allow_elided = true;
  StatusOr<std::unique_ptr<Graph>> zeroed = ParseGraph(text, popts);
  ASSERT_TRUE(zeroed.ok()) << zeroed.status().ToString();
  const Tensor& w = (*zeroed)->FindValue("fc1.weight")->initializer();
  EXPECT_EQ(w.dims(), (std::vector<int64_t>{3, 4}));
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_EQ(w.GetAsDouble(i), 0.0);
  EXPECT_EQ(PrintGraph(**zeroed, opts), text);  // elided the same way, so golden tests stay stable
}

TEST(TextRoundTrip, PrintNodeIsOneLine) {
  auto g = MakeMlp();
  for (const auto& n : g->nodes()) EXPECT_EQ(PrintNode(*n).find('\n'), std::string::npos);
  EXPECT_EQ(PrintNode(*g->nodes().back()), R"(loss_sum = ai.dscompile.AllReduce <op = "sum"> (loss))");
}

TEST(TextRoundTrip, EmptyGraph) {
  Graph g;
  g.opsets.clear();
  const std::string text = PrintGraph(g);
  EXPECT_EQ(text, "<\n  ir_version: 8,\n  opset_import: []\n>\nmain () => ()\n{\n}\n");
  ExpectCanonical(text);
}

}  // namespace
}  // namespace dsc
