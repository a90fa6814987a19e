// float16/bfloat16 CPU kernels: the fast conversions against ir/dtype.h's reference ones (every
// 16-bit pattern, the rounding boundaries), every case of the kernel tables (core, nn, transformer, conv_transpose)
// run on half inputs and compared with the float32 kernel on the same values rounded to the dtype,
// and half results checked against references computed here in double.
//
// What the table test holds a half op to (kernels/cpu/half_adaptor.cc): its output equals the
// float32 kernel's output on the widened inputs, rounded once to the output dtype (0 ulp), for all
// float inputs half and for mixed nodes (the first float input half, the rest float32).
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "kernels/cpu/half_convert.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using nlohmann::json;
using testing::RunNodeOnCpu;
using testing::StaticShape;

// ------------------------------------------------------------------ conversions

TEST(HalfConvert, EveryHalfPatternWidensAsTheReference) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    ASSERT_EQ(half::Bits(half::HalfBitsToFloat(h)), half::Bits(HalfToFloat(h))) << "float16 0x" << std::hex << b;
    ASSERT_EQ(half::Bits(half::BFloat16BitsToFloat(h)), half::Bits(BFloat16ToFloat(h))) << "bfloat16 0x" << std::hex << b;
  }
}

// Every float16/bfloat16 value, the midpoints between neighbours (ties) and one float ulp either
// side of them, plus a sweep over float bit patterns: each rounds as FloatToHalf/FloatToBFloat16.
TEST(HalfConvert, RoundingMatchesTheReference) {
  std::vector<float> probes;
  for (uint32_t b = 0; b < 65536; ++b) {
    for (bool bf16 : {false, true}) {
      const float lo = bf16 ? BFloat16ToFloat(static_cast<uint16_t>(b)) : HalfToFloat(static_cast<uint16_t>(b));
      const float hi = bf16 ? BFloat16ToFloat(static_cast<uint16_t>(b + 1)) : HalfToFloat(static_cast<uint16_t>(b + 1));
      probes.push_back(lo);
      if (!std::isfinite(lo) || !std::isfinite(hi) || b == 0x7fff || b == 0xffff) continue;
      const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
      probes.push_back(mid);
      probes.push_back(std::nextafter(mid, -INFINITY));
      probes.push_back(std::nextafter(mid, INFINITY));
    }
  }
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4093) probes.push_back(half::FromBits(static_cast<uint32_t>(u)));
  for (float f : {65504.0f, 65519.996f, 65520.0f, 65536.0f, 1e30f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f,
                  1.1754944e-38f, 1e-45f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::signaling_NaN(), 3.3895314e38f, 3.4028235e38f})
    for (float s : {1.0f, -1.0f}) probes.push_back(f * s);
  for (float f : probes) {
    ASSERT_EQ(half::FloatToHalfBits(f), FloatToHalf(f)) << "float16 of " << f << " (0x" << std::hex << half::Bits(f) << ")";
    ASSERT_EQ(half::FloatToBFloat16Bits(f), FloatToBFloat16(f)) << "bfloat16 of " << f << " (0x" << std::hex << half::Bits(f) << ")";
  }
}

// Ties go to the even neighbour (independent of ir/dtype.h: values worked by hand).
TEST(HalfConvert, TiesToEven) {
  EXPECT_EQ(half::FloatToHalfBits(1.0f + 0x1p-11f), 0x3c00);         // halfway 1 and 1+2^-10: even is 1
  EXPECT_EQ(half::FloatToHalfBits(1.0f + 3 * 0x1p-11f), 0x3c02);     // halfway 1+2^-10 and 1+2^-9: even is up
  EXPECT_EQ(half::FloatToHalfBits(65520.0f), 0x7c00);                // halfway 65504 and 65536: inf
  EXPECT_EQ(half::FloatToHalfBits(0x1p-25f), 0x0000);                // halfway 0 and the least subnormal
  EXPECT_EQ(half::FloatToHalfBits(3 * 0x1p-25f), 0x0002);            // halfway subnormals 1 and 2
  EXPECT_EQ(half::FloatToBFloat16Bits(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(half::FloatToBFloat16Bits(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(half::FloatToBFloat16Bits(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(HalfConvert, BulkConvertersMatchScalarOnThreadedSizes) {
  const int64_t n = (1 << 17) + 3;
  std::mt19937 rng(5);
  std::vector<float> f(static_cast<size_t>(n));
  for (float& x : f) x = half::FromBits(static_cast<uint32_t>(rng()));
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    std::vector<uint16_t> h(static_cast<size_t>(n));
    std::vector<float> back(static_cast<size_t>(n));
    half::FromFloat(t, f.data(), h.data(), n);
    half::ToFloat(t, h.data(), back.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t want = t == DType::kBFloat16 ? FloatToBFloat16(f[i]) : FloatToHalf(f[i]);
      ASSERT_EQ(h[i], want) << DTypeName(t) << " element " << i;
      const float wide = t == DType::kBFloat16 ? BFloat16ToFloat(want) : HalfToFloat(want);
      ASSERT_EQ(half::Bits(back[i]), half::Bits(wide)) << DTypeName(t) << " element " << i;
    }
  }
}

// ------------------------------------------------------------------ the kernel tables

struct TableCase {
  std::string table;
  size_t index;
};

const json& Table(const std::string& file) {
  static std::map<std::string, json>* tables = new std::map<std::string, json>();
  auto it = tables->find(file);
  if (it == tables->end()) {
    std::ifstream in(std::string(DSC_KERNEL_TEST_DATA) + "/" + file);
    it = tables->emplace(file, json::parse(in, nullptr, /*allow_exceptions=*/false)).first;
  }
  return it->second;
}

const char* const kTables[] = {"core_cases.json", "nn_cases.json", "transformer_cases.json",
                               "conv_transpose_cases.json"};

bool HasFloat32(const json& c) {
  for (const char* side : {"inputs", "outputs"})
    for (const json& t : c.at(side))
      if (!t.is_null() && t.at("dtype") == "float") return true;
  return false;
}

std::vector<TableCase> AllCases() {
  std::vector<TableCase> out;
  for (const char* file : kTables) {
    const json& t = Table(file);
    if (t.is_discarded() || !t.contains("cases")) {
      out.push_back({file, SIZE_MAX});  // fails below, naming the file
      continue;
    }
    for (size_t i = 0; i < t["cases"].size(); ++i)
      if (HasFloat32(t["cases"][i])) out.push_back({file, i});
  }
  return out;
}

double ParseNumber(const json& v) {
  if (v.is_number()) return v.get<double>();
  const std::string s = v.get<std::string>();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  return s == "-inf" ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

// A table tensor; float32 values are rounded to `round_to` (float16/bfloat16) when given, and the
// tensor then has dtype `store_as` (float32: the rounded values widened again; or the half dtype).
Tensor ParseTensor(const json& j, DType round_to, DType store_as) {
  const DType dtype = DTypeFromName(j.at("dtype").get<std::string>()).value();
  Tensor t(dtype, j.at("dims").get<std::vector<int64_t>>());
  const json& values = j.at("values");
  for (size_t i = 0; i < values.size(); ++i) {
    if (IsFloat(dtype)) t.SetFromDouble(static_cast<int64_t>(i), ParseNumber(values[i]));
    else t.SetFromInt(static_cast<int64_t>(i), values[i].get<int64_t>());
  }
  if (dtype != DType::kFloat32 || round_to == DType::kUndefined) return t;
  Tensor h(round_to, t.dims());
  half::FromFloat(round_to, t.data<float>(), h.raw(), t.numel());
  if (store_as == round_to) return h;
  Tensor f(DType::kFloat32, t.dims());
  half::ToFloat(round_to, h.raw(), f.data<float>(), t.numel());
  return f;
}

AttrValue ParseAttr(const json& j) {
  if (j.contains("int")) return j["int"].get<int64_t>();
  if (j.contains("float")) return j["float"].get<float>();
  if (j.contains("string")) return j["string"].get<std::string>();
  if (j.contains("ints")) return j["ints"].get<std::vector<int64_t>>();
  return j.at("floats").get<std::vector<float>>();
}

// One table case as a node. half[i] (inputs) / half_out (outputs): the float32 values made
// `dtype`; `typed_half` false builds the float32 reference (rounded values, float32 types).
struct Built {
  Graph g;
  Node* node = nullptr;
  std::vector<Tensor> tensors;
  std::vector<Tensor*> args;
};

std::unique_ptr<Built> Build(const json& c, DType dtype, const std::vector<bool>& half_in, bool typed_half) {
  auto b = std::make_unique<Built>();
  const json& ins = c.at("inputs");
  b->tensors.reserve(ins.size());
  std::vector<Value*> values;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].is_null()) {
      b->tensors.emplace_back();
      values.push_back(nullptr);
      continue;
    }
    const DType round_to = half_in[i] ? dtype : DType::kUndefined;
    b->tensors.push_back(ParseTensor(ins[i], round_to, typed_half ? dtype : DType::kFloat32));
    const Tensor& t = b->tensors.back();
    const std::string name = StrCat("in", i);
    if (ins[i].value("const", false)) values.push_back(b->g.AddInitializer(name, t));
    else values.push_back(b->g.AddInput(name, TensorType{t.dtype(), StaticShape(t.dims())}));
  }
  const json& outs = c.at("outputs");
  std::vector<std::string> names;
  for (size_t i = 0; i < outs.size(); ++i) names.push_back(StrCat(outs[i].is_null() ? "__omit" : "out", i));
  b->node = b->g.AddNode(c.at("op").get<std::string>(), values, names, c.value("domain", std::string()),
                         c.at("name").get<std::string>());
  for (const auto& [k, v] : c.at("attrs").items()) b->node->SetAttr(k, ParseAttr(v));
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].is_null()) continue;
    DType t = DTypeFromName(outs[i].at("dtype").get<std::string>()).value();
    // Cast's output type is its `to` attribute's, whatever its input.
    if (t == DType::kFloat32 && typed_half && c.at("op") != "Cast") t = dtype;
    b->node->output(i)->type = TensorType{t, StaticShape(outs[i].at("dims").get<std::vector<int64_t>>())};
  }
  for (size_t i = 0; i < b->tensors.size(); ++i)
    b->args.push_back(b->tensors[i].dtype() == DType::kUndefined ? nullptr : &b->tensors[i]);
  return b;
}

// Distance in units in the last place between two 16-bit floats (sign-magnitude ordered).
int UlpDistance(uint16_t a, uint16_t b) {
  auto ordered = [](uint16_t x) { return (x & 0x8000) ? -static_cast<int>(x & 0x7fff) : static_cast<int>(x); };
  return std::abs(ordered(a) - ordered(b));
}

bool IsNan16(uint16_t h, DType t) {
  return t == DType::kBFloat16 ? std::isnan(BFloat16ToFloat(h)) : std::isnan(HalfToFloat(h));
}

// Runs the case in `dtype` with the inputs marked in half_in, and the float32 kernel on the same
// rounded values; every output must be the float32 result rounded to the output's dtype.
void CheckCase(const json& c, DType dtype, const std::vector<bool>& half_in, const std::string& what) {
  SCOPED_TRACE(what);
  auto ref = Build(c, dtype, half_in, /*typed_half=*/false);
  auto run = Build(c, dtype, half_in, /*typed_half=*/true);
  StatusOr<std::vector<Tensor>> want = RunNodeOnCpu(*ref->node, ref->args);
  ASSERT_TRUE(want.ok()) << "float32 reference: " << want.status().ToString();
  StatusOr<std::vector<Tensor>> got = RunNodeOnCpu(*run->node, run->args);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  for (size_t i = 0; i < want->size(); ++i) {
    const Tensor& w = (*want)[i];
    const Tensor& g = (*got)[i];
    if (w.dtype() == DType::kUndefined) continue;  // omitted output
    ASSERT_EQ(g.numel(), w.numel()) << "output " << i;
    if (w.dtype() == DType::kFloat32 && IsHalf(g.dtype())) {
      std::vector<uint16_t> rounded(static_cast<size_t>(w.numel()));
      half::FromFloat(g.dtype(), w.data<float>(), rounded.data(), w.numel());
      const uint16_t* h = g.data<uint16_t>();
      for (int64_t k = 0; k < w.numel(); ++k) {
        const uint16_t e = rounded[static_cast<size_t>(k)];
        if (IsNan16(e, g.dtype()) && IsNan16(h[k], g.dtype())) continue;
        ASSERT_EQ(h[k], e) << "output " << i << " element " << k << ": " << UlpDistance(h[k], e)
                           << " ulp from the rounded float32 result " << w.data<float>()[k];
      }
    } else {
      ASSERT_EQ(g.dtype(), w.dtype()) << "output " << i;
      EXPECT_TRUE(g.SameContents(w)) << "output " << i << " (" << DTypeName(g.dtype()) << ") differs";
    }
  }
}

class HalfTable : public ::testing::TestWithParam<TableCase> {};

TEST_P(HalfTable, EqualsFloat32KernelRounded) {
  ASSERT_NE(GetParam().index, SIZE_MAX) << "cannot read " << GetParam().table << " under " DSC_KERNEL_TEST_DATA;
  const json& c = Table(GetParam().table)["cases"][GetParam().index];
  const json& ins = c.at("inputs");
  std::vector<bool> all(ins.size(), false), first(ins.size(), false);
  int floats = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].is_null() || ins[i].at("dtype") != "float") continue;
    all[i] = true;
    first[i] = floats++ == 0;
  }
  // Mixed nodes (one float input half, the others float32) are what the adaptor takes for a
  // float32-selected kernel; ops with their own half kernels (data movement, Cast) and ops whose
  // kernel is selected by a non-float input (Where) type their operands alike, as ONNX requires.
  const bool mixed = floats >= 2 && all[0] &&
                     !KernelRegistry::Global().Find(KernelKey{c.value("domain", std::string()),
                                                              c.at("op").get<std::string>(), DeviceKind::kCpu,
                                                              DType::kFloat16});
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    CheckCase(c, t, all, StrCat(DTypeName(t), ", every float input"));
    if (mixed) CheckCase(c, t, first, StrCat(DTypeName(t), ", first float input only"));
  }
}

std::string TableCaseName(const ::testing::TestParamInfo<TableCase>& info) {
  std::string name = info.param.table.substr(0, info.param.table.find('_'));
  if (info.param.index == SIZE_MAX) return name.append("_unreadable");
  const json& c = Table(info.param.table)["cases"][info.param.index];
  name += StrCat("_", c.at("op").get<std::string>(), "_", c.at("name").get<std::string>(), "_", info.param.index);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Tables, HalfTable, ::testing::ValuesIn(AllCases()), TableCaseName);

// The ops the mixed-precision policy runs in half must be in the tables above.
TEST(HalfTables, CoverThePolicyOps) {
  std::set<std::string> ops;
  for (const TableCase& tc : AllCases())
    if (tc.index != SIZE_MAX) ops.insert(Table(tc.table)["cases"][tc.index].at("op").get<std::string>());
  for (const char* op : {"MatMul", "Gemm", "Conv", "Add", "Mul", "Sub", "Div", "Relu", "Gelu", "Tanh", "Softmax",
                         "LogSoftmax", "LayerNormalization", "ReduceMean", "Transpose", "Reshape", "Gather", "Concat",
                         "Where", "SoftmaxCrossEntropyLoss", "SoftmaxGrad", "LayerNormalizationGrad", "GeluGrad",
                         "ConvGrad", "GatherGrad", "Attention", "AttentionGrad", "RMSNormalization", "Einsum",
                         "ConvTranspose", "ConvTransposeGrad"})
    EXPECT_TRUE(ops.count(op)) << op;
}

// ------------------------------------------------------------------ against references in double

TensorType Typed(DType t, const std::vector<int64_t>& dims) { return TensorType{t, StaticShape(dims)}; }

Tensor RandomHalf(DType t, const std::vector<int64_t>& dims, uint32_t seed, float scale = 1.0f) {
  Tensor h(t, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < h.numel(); ++i) h.data<uint16_t>()[i] = half::Round(u(rng), t == DType::kBFloat16);
  return h;
}

double Wide(const Tensor& t, int64_t i) { return half::Load(t.data<uint16_t>(), i, t.dtype() == DType::kBFloat16); }

// MatMul (the adaptor: operands widened, sgemm, C rounded once) against the exact product rounded
// to the dtype: fp32 accumulation over K = 96 is far below half an ulp of float16, so the result
// is the rounded exact value or its neighbour.
TEST(HalfMatMul, WithinOneUlpOfTheRoundedExactProduct) {
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t m = 33, k = 96, n = 17;
    Graph g;
    Node* node = g.AddNode("MatMul", {g.AddInput("a", Typed(t, {2, m, k})), g.AddInput("b", Typed(t, {k, n}))}, {"y"});
    node->output(0)->type = Typed(t, {2, m, n});
    Tensor a = RandomHalf(t, {2, m, k}, 1), b = RandomHalf(t, {k, n}, 2);
    StatusOr<std::vector<Tensor>> y = RunNodeOnCpu(*node, {&a, &b});
    ASSERT_TRUE(y.ok()) << y.status().ToString();
    int exact = 0;
    for (int64_t r = 0; r < 2 * m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t q = 0; q < k; ++q) sum += Wide(a, r * k + q) * Wide(b, q * n + j);
        const uint16_t want = half::Round(static_cast<float>(sum), t == DType::kBFloat16);
        const uint16_t got = (*y)[0].data<uint16_t>()[r * n + j];
        ASSERT_LE(UlpDistance(got, want), 1) << "row " << r << " col " << j << ": exact " << sum;
        exact += got == want;
      }
    EXPECT_GT(exact, 2 * m * n * 9 / 10) << "most elements are the correctly rounded product";
  }
}

// The native half MatMul/Gemm (widen, row-blocked single-threaded sgemms, round once) gives the
// float32 kernel's result on the widened operands rounded, bit for bit, on shapes that split into
// several row blocks: batched with broadcast, transposed operands, a half bias, mixed operands.
Tensor Widened(const Tensor& h) {
  if (h.dtype() == DType::kFloat32) return h;
  Tensor f(DType::kFloat32, h.dims());
  half::ToFloat(h.dtype(), h.raw(), f.data<float>(), h.numel());
  return f;
}

void ExpectRoundedFloat32(Node* half_node, Node* float_node, std::vector<Tensor> half_in) {
  std::vector<Tensor> wide;
  std::vector<Tensor*> hp, fp;
  for (Tensor& t : half_in) wide.push_back(Widened(t));
  for (size_t i = 0; i < half_in.size(); ++i) {
    hp.push_back(&half_in[i]);
    fp.push_back(&wide[i]);
  }
  StatusOr<std::vector<Tensor>> got = RunNodeOnCpu(*half_node, hp), want = RunNodeOnCpu(*float_node, fp);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  const Tensor& g = (*got)[0];
  ASSERT_TRUE(IsHalf(g.dtype()));
  for (int64_t i = 0; i < g.numel(); ++i)
    ASSERT_EQ(g.data<uint16_t>()[i], half::Round((*want)[0].data<float>()[i], g.dtype() == DType::kBFloat16))
        << "element " << i;
}

TEST(HalfGemm, NativeKernelEqualsFloat32Rounded) {
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(DTypeName(t));
    {  // batched, B broadcast over a batch dim of A
      Graph g;
      Node* h = g.AddNode("MatMul", {g.AddInput("a", Typed(t, {3, 2, 37, 24})), g.AddInput("b", Typed(t, {2, 24, 19}))}, {"y"});
      h->output(0)->type = Typed(t, {3, 2, 37, 19});
      Node* f = g.AddNode("MatMul", {g.AddInput("af", Typed(DType::kFloat32, {3, 2, 37, 24})),
                                     g.AddInput("bf", Typed(DType::kFloat32, {2, 24, 19}))}, {"yf"});
      f->output(0)->type = Typed(DType::kFloat32, {3, 2, 37, 19});
      ExpectRoundedFloat32(h, f, {RandomHalf(t, {3, 2, 37, 24}, 4), RandomHalf(t, {2, 24, 19}, 5)});
    }
    for (int64_t ta : {0, 1})
      for (int64_t tb : {0, 1}) {
        SCOPED_TRACE(StrCat("transA ", ta, " transB ", tb));
        const int64_t m = 45, k = 33, n = 28;
        const std::vector<int64_t> ad = ta ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k};
        const std::vector<int64_t> bd = tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n};
        Graph g;
        Node* h = g.AddNode("Gemm", {g.AddInput("a", Typed(t, ad)), g.AddInput("b", Typed(t, bd)), g.AddInput("c", Typed(t, {n}))},
                            {"y"});
        Node* f = g.AddNode("Gemm", {g.AddInput("af", Typed(DType::kFloat32, ad)), g.AddInput("bf", Typed(DType::kFloat32, bd)),
                                     g.AddInput("cf", Typed(DType::kFloat32, {n}))},
                            {"yf"});
        for (Node* x : {h, f}) {
          x->SetAttr("transA", ta);
          x->SetAttr("transB", tb);
          x->SetAttr("alpha", 0.75f);
          x->SetAttr("beta", 1.5f);
        }
        h->output(0)->type = Typed(t, {m, n});
        f->output(0)->type = Typed(DType::kFloat32, {m, n});
        ExpectRoundedFloat32(h, f, {RandomHalf(t, ad, 6), RandomHalf(t, bd, 7), RandomHalf(t, {n}, 8)});
      }
    {  // mixed: half activations times a float32 weight, half output
      Graph g;
      Node* h = g.AddNode("MatMul", {g.AddInput("a", Typed(t, {50, 16})), g.AddInput("w", Typed(DType::kFloat32, {16, 8}))}, {"y"});
      h->output(0)->type = Typed(t, {50, 8});
      Node* f = g.AddNode("MatMul", {g.AddInput("af", Typed(DType::kFloat32, {50, 16})), g.AddInput("wf", Typed(DType::kFloat32, {16, 8}))},
                          {"yf"});
      f->output(0)->type = Typed(DType::kFloat32, {50, 8});
      Tensor w(DType::kFloat32, {16, 8});
      for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = 0.01f * static_cast<float>(i) - 0.3f;
      ExpectRoundedFloat32(h, f, {RandomHalf(t, {50, 16}, 9), w});
    }
  }
}

// Add on float16: 1 + 2^-11 is a tie between 1 and 1 + 2^-10 and rounds to even (1); a result
// rounded twice or truncated would show here.
TEST(HalfElementwise, AddRoundsOnceToNearestEven) {
  Graph g;
  const DType t = DType::kFloat16;
  Node* node = g.AddNode("Add", {g.AddInput("a", Typed(t, {4})), g.AddInput("b", Typed(t, {4}))}, {"y"});
  node->output(0)->type = Typed(t, {4});
  const std::vector<float> av = {1.0f, 1.0f + 0x1p-10f, 65504.0f, 2048.0f}, bv = {0x1p-11f, 0x1p-11f, 16.0f, 1.0f};
  Tensor a(t, {4}), b(t, {4});
  for (size_t i = 0; i < 4; ++i) {
    a.data<uint16_t>()[i] = FloatToHalf(av[i]);
    b.data<uint16_t>()[i] = FloatToHalf(bv[i]);
  }
  StatusOr<std::vector<Tensor>> y = RunNodeOnCpu(*node, {&a, &b});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  const uint16_t* h = (*y)[0].data<uint16_t>();
  EXPECT_EQ(h[0], 0x3c00);  // 1 + 2^-11 -> 1 (even)
  EXPECT_EQ(h[1], 0x3c02);  // 1 + 3*2^-11 -> 1 + 2^-9 (even)
  EXPECT_EQ(h[2], 0x7c00);  // 65504 + 16 = 65520, the tie between 65504 (odd) and 65536: inf
  EXPECT_EQ(h[3], 0x6800);  // 2049 is a tie between 2048 and 2050: 2048 (even)
}

// LayerNormalization with float16 X and float32 Scale/Bias (a mixed node, as amp O2 leaves norm
// parameters in float32) against the formula in double.
TEST(HalfMixed, LayerNormHalfInputFloatScale) {
  const int64_t rows = 3, d = 64;
  Graph g;
  Node* node = g.AddNode("LayerNormalization",
                         {g.AddInput("x", Typed(DType::kFloat16, {rows, d})), g.AddInput("s", Typed(DType::kFloat32, {d})),
                          g.AddInput("b", Typed(DType::kFloat32, {d}))},
                         {"y"});
  node->SetAttr("axis", int64_t{-1});
  node->SetAttr("epsilon", 1e-5f);
  node->output(0)->type = Typed(DType::kFloat16, {rows, d});
  Tensor x = RandomHalf(DType::kFloat16, {rows, d}, 3, 3.0f);
  std::vector<float> sv(d), bv(d);
  for (int64_t i = 0; i < d; ++i) {
    sv[i] = 0.5f + 0.01f * static_cast<float>(i);
    bv[i] = -0.25f + 0.003f * static_cast<float>(i);
  }
  Tensor s = Tensor::FromVector(DType::kFloat32, {d}, sv), b = Tensor::FromVector(DType::kFloat32, {d}, bv);
  StatusOr<std::vector<Tensor>> y = RunNodeOnCpu(*node, {&x, &s, &b});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += Wide(x, r * d + i) / d;
    for (int64_t i = 0; i < d; ++i) var += (Wide(x, r * d + i) - mean) * (Wide(x, r * d + i) - mean) / d;
    for (int64_t i = 0; i < d; ++i) {
      const double want = (Wide(x, r * d + i) - mean) / std::sqrt(var + 1e-5) * sv[i] + bv[i];
      const uint16_t exact = FloatToHalf(static_cast<float>(want));
      ASSERT_LE(UlpDistance((*y)[0].data<uint16_t>()[r * d + i], exact), 1) << "row " << r << " col " << i;
    }
  }
}

// The loss gradients fuse's loss-casts rewrite leaves (passes/fuse_loss_casts.cc): float32 dLoss,
// half scores, half dX. They must compute exactly Cast(the float32 gradient of the widened scores).
TEST(HalfMixed, LossGradHalfScoresEqualFloatGradientRounded) {
  struct Case {
    const char* op;
    std::vector<int64_t> dims;  // scores (N, C[, D])
    const char* reduction;
  };
  const std::vector<Case> cases = {{ops::kSoftmaxCrossEntropyLossGrad, {5, 37}, "mean"},
                                   {ops::kSoftmaxCrossEntropyLossGrad, {3, 7, 4}, "sum"},
                                   {ops::kSoftmaxCrossEntropyLossGrad, {4, 9}, "none"},
                                   {ops::kNegativeLogLikelihoodLossGrad, {5, 11}, "mean"}};
  for (DType t : {DType::kFloat16, DType::kBFloat16})
    for (const Case& c : cases) {
      const std::vector<int64_t> ldims = c.dims.size() == 3 ? std::vector<int64_t>{c.dims[0], c.dims[2]}
                                                            : std::vector<int64_t>{c.dims[0]};
      const bool none = std::string(c.reduction) == "none";
      const std::vector<int64_t> dl_dims = none ? ldims : std::vector<int64_t>{};
      Tensor x = RandomHalf(t, c.dims, 11, 4.0f);
      Tensor labels(DType::kInt64, ldims);
      for (int64_t i = 0; i < labels.numel(); ++i) labels.data<int64_t>()[i] = i == 1 ? -100 : (i * 5 + 2) % c.dims[1];
      Tensor dl(DType::kFloat32, dl_dims);
      for (int64_t i = 0; i < dl.numel(); ++i) dl.data<float>()[i] = 0.75f - 0.125f * static_cast<float>(i);
      Tensor xf(DType::kFloat32, c.dims);
      for (int64_t i = 0; i < x.numel(); ++i) xf.data<float>()[i] = static_cast<float>(Wide(x, i));
      std::vector<Tensor> got;
      for (DType xt : {t, DType::kFloat32}) {
        Graph g;
        Node* n = g.AddNode(c.op, {g.AddInput("dl", Typed(DType::kFloat32, dl_dims)), g.AddInput("x", Typed(xt, c.dims)),
                                   g.AddInput("t", Typed(DType::kInt64, ldims))},
                            {"dx"}, kDscDomain);
        n->SetAttr("reduction", std::string(c.reduction));
        n->SetAttr("ignore_index", int64_t{-100});
        n->output(0)->type = Typed(xt, c.dims);
        StatusOr<std::vector<Tensor>> y = RunNodeOnCpu(*n, {&dl, xt == t ? &x : &xf, &labels});
        ASSERT_TRUE(y.ok()) << c.op << ": " << y.status().ToString();
        got.push_back((*y)[0]);
      }
      const bool bf16 = t == DType::kBFloat16;
      for (int64_t i = 0; i < x.numel(); ++i)
        ASSERT_EQ(got[0].data<uint16_t>()[i], half::Round(got[1].data<float>()[i], bf16))
            << c.op << " " << DTypeName(t) << " " << c.reduction << " element " << i;
    }
}

// ------------------------------------------------------------------ the adaptor's own behaviour

TEST(HalfAdaptor, MissingFloatKernelNamesTheNode) {
  Graph g;
  Node* node = g.AddNode("NoSuchOp", {g.AddInput("x", Typed(DType::kBFloat16, {2}))}, {"y"}, "", "my_node");
  node->output(0)->type = Typed(DType::kBFloat16, {2});
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(k.status().message().find("my_node"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find("bfloat16"), std::string::npos) << k.status().message();
}

TEST(HalfAdaptor, InitErrorsOfTheFloatKernelNameTheNode) {
  Graph g;  // inner dims differ: the float32 MatMul's Init refuses it
  Node* node = g.AddNode("MatMul", {g.AddInput("a", Typed(DType::kFloat16, {2, 3})), g.AddInput("b", Typed(DType::kFloat16, {4, 5}))},
                         {"y"}, "", "bad_matmul");
  node->output(0)->type = Typed(DType::kFloat16, {2, 5});
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("bad_matmul"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find("inner dims"), std::string::npos) << k.status().message();
}

TEST(HalfAdaptor, ChoosesNativeKernelsWhereTheyExist) {
  KernelRegistry& r = KernelRegistry::Global();
  Graph g;
  Value* h = g.AddInput("h", Typed(DType::kFloat16, {4}));
  Value* f = g.AddInput("f", Typed(DType::kFloat32, {4}));
  Node* cast = g.AddNode("Cast", {f}, {"c"});
  cast->output(0)->type = h->type;
  EXPECT_FALSE(NeedsHalfAdaptor(*cast, r, DeviceKind::kCpu)) << "Cast float -> float16 is native";
  Node* tr = g.AddNode("Transpose", {h}, {"t"});
  tr->output(0)->type = h->type;
  EXPECT_FALSE(NeedsHalfAdaptor(*tr, r, DeviceKind::kCpu)) << "data movement copies 2-byte words";
  Node* acc = g.AddNode("Accumulate", {f, h}, {}, kDscDomain);
  EXPECT_FALSE(NeedsHalfAdaptor(*acc, r, DeviceKind::kCpu)) << "Accumulate takes mixed dtypes";
  Node* relu = g.AddNode("Relu", {h}, {"r"});
  relu->output(0)->type = h->type;
  EXPECT_TRUE(NeedsHalfAdaptor(*relu, r, DeviceKind::kCpu));
  Node* mul = g.AddNode("Mul", {f, h}, {"m"});
  mul->output(0)->type = f->type;
  EXPECT_TRUE(NeedsHalfAdaptor(*mul, r, DeviceKind::kCpu)) << "float32-selected with a half input";
  Node* frelu = g.AddNode("Relu", {f}, {"fr"});
  frelu->output(0)->type = f->type;
  EXPECT_FALSE(NeedsHalfAdaptor(*frelu, r, DeviceKind::kCpu));
  EXPECT_FALSE(NeedsHalfAdaptor(*relu, r, DeviceKind::kCuda)) << "CPU only";
}

// A value used twice (x * x) and a half initializer operand (x * c) both work; the initializer
// is widened once when the kernel is created.
TEST(HalfAdaptor, RepeatedInputsAndHalfInitializers) {
  const DType t = DType::kBFloat16;
  Graph g;
  Value* x = g.AddInput("x", Typed(t, {3}));
  Tensor c(t, {3});
  for (int i = 0; i < 3; ++i) c.data<uint16_t>()[i] = FloatToBFloat16(static_cast<float>(i + 2));
  Value* cv = g.AddInitializer("c", c);
  Node* sq = g.AddNode("Mul", {x, x}, {"sq"});
  sq->output(0)->type = x->type;
  Node* mc = g.AddNode("Mul", {x, cv}, {"mc"});
  mc->output(0)->type = x->type;
  Tensor xv(t, {3});
  const float vals[] = {1.5f, -3.0f, 0.1015625f};
  for (int i = 0; i < 3; ++i) xv.data<uint16_t>()[i] = FloatToBFloat16(vals[i]);
  StatusOr<std::vector<Tensor>> a = RunNodeOnCpu(*sq, {&xv, &xv});
  StatusOr<std::vector<Tensor>> b = RunNodeOnCpu(*mc, {&xv, &c});
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 3; ++i) {
    const float v = BFloat16ToFloat(xv.data<uint16_t>()[i]);
    EXPECT_EQ((*a)[0].data<uint16_t>()[i], FloatToBFloat16(v * v)) << i;
    EXPECT_EQ((*b)[0].data<uint16_t>()[i], FloatToBFloat16(v * static_cast<float>(i + 2))) << i;
  }
}

}  // namespace
}  // namespace dsc
