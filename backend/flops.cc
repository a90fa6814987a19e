// The FLOP table: one rule per op, applied to the node's static shapes.
#include "backend/flops.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "ir/dsc_ops.h"
#include "ir/optim_algorithms.h"
#include "kernels/common/muon_math.h"

namespace dsc {
namespace {

enum class Rule {
  kMatMul,        // out_elems * K * 2, K the contracted dim of input 0
  kGemm,          // 2*M*N*K, plus M*N when C is given (the bias add)
  kConv,          // 2 * out_elems * Cin/groups * prod(kernel), plus out_elems with a bias
  kConvGrad,      // dX and dW each as the forward's GEMM part, dB 1 per dY element
  kConvTranspose, // 2 * in_elems * Cout/groups * prod(kernel), plus out_elems with a bias
  kConvTransposeGrad,  // dX and dW each as the forward's GEMM part, dB 1 per dY element
  kAttention,     // 2*Sq*Sk*D + Sq*Sk + 2*Sq*Sk*Dv per batch and head
  kAttentionGrad, // recomputed scores and softmax, then four GEMMs and the softmax gradient
  kPerOutput,     // factor per element of output 0
  kPerInput,      // factor per element of input 0
  kPerGradElem,   // factor per element of input 1 (optimizer steps: the gradient or its shard)
  kPerStateElem,  // factor per element of input 2 (LambApply: exp_avg, the tensor or its shard)
  kAllInputs,     // factor per element of every input
  kSgdStep,       // 5 per gradient element, +3 with momentum, +2 with nesterov
  kOptimStep,     // per gradient element: the algorithm's count (OptimStepFlops), +2 with weight decay
  kMuonApply,     // the Newton-Schulz GEMMs on the whole update (MuonApplyFlops), + 4 per element
  kResize,        // 2 per tap per element of the larger side: linear 2^k, cubic 4^k taps over the k axes
                  // whose length changes, nearest none (Resize: Y; ResizeGrad: dY, input 0)
  kGridSample,    // 2 per tap per output element and channel (nearest 0, linear 4, cubic 16 taps);
                  // GridSampleGrad twice that (dX and dGrid)
  kNone,          // data movement, collectives: no arithmetic
};

struct Entry {
  Rule rule;
  int64_t factor;
  const char* words;
};

const std::map<std::string, Entry>& Table() {
  static const std::map<std::string, Entry> table = [] {
    std::map<std::string, Entry> t;
    t["MatMul"] = {Rule::kMatMul, 2, "2*M*N*K (batched: per batch matrix)"};
    t["Gemm"] = {Rule::kGemm, 2, "2*M*N*K, + M*N when C is given"};
    t["FusedMatMul"] = {Rule::kMatMul, 2, "2*M*N*K (batched: per batch matrix), K from A as transA reads it"};
    t["Conv"] = {Rule::kConv, 2, "2*out_elems*Cin/groups*prod(kernel), + out_elems with a bias"};
    t["ConvGrad"] = {Rule::kConvGrad, 2, "dX and dW: 2*dY_elems*Cin/groups*prod(kernel) each; dB: dY_elems"};
    t["ConvTranspose"] = {Rule::kConvTranspose, 2, "2*X_elems*Cout/groups*prod(kernel), + out_elems with a bias"};
    t["ConvTransposeGrad"] = {Rule::kConvTransposeGrad, 2,
                              "dX and dW: 2*X_elems*Cout/groups*prod(kernel) each; dB: dY_elems"};
    t["Attention"] = {Rule::kAttention, 1, "2*Sq*Sk*D + Sq*Sk + 2*Sq*Sk*Dv per batch and head"};
    t["AttentionGrad"] = {Rule::kAttentionGrad, 1, "6*Sq*Sk*D + 4*Sq*Sk*Dv + 3*Sq*Sk per batch and head"};
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Reciprocal", "Pow", "Exp", "Log", "Erf",
                           "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Gelu", "Elu", "Celu", "Selu", "Mish", "HardSwish",
                           "HardSigmoid", "Softplus", "Softsign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh",
                           "Cosh", "Asinh", "Acosh", "Atanh", "Floor", "Ceil", "Round", "Sign", "Min", "Max", "Mean",
                           "Sum", "Clip", "Where", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not",
                           "And", "Or", "Xor", "IsNaN", "IsInf", "Mod", "PRelu", "Dropout", "SampleDropout",
                           "SampleRandom", "ClipScale", "Trilu", "RotaryEmbedding"})
      t[op] = {Rule::kPerOutput, 1, "1 per output element"};
    for (const char* op : {"ReluGrad", "LeakyReluGrad", "SigmoidGrad", "TanhGrad", "GeluGrad", "MishGrad",
                           "HardSwishGrad", "HardSigmoidGrad", "SoftplusGrad", "EluGrad", "CeluGrad", "SeluGrad", "SoftsignGrad",
                           "DropoutGrad"})
      t[op] = {Rule::kPerOutput, 2, "2 per output element (twice the forward's 1)"};
    for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                           "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin", "CumSum",
                           "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
      t[op] = {Rule::kPerInput, 1, "1 per input element"};
    t["TopK"] = {Rule::kPerInput, 1, "1 compare per input element, as ArgMax (keeping K sorted adds up to K more per element)"};
    t["Resize"] = {Rule::kResize, 2, "2 per tap per output element: linear 2^k, cubic 4^k, nearest 0 taps (k axes resized)"};
    t["ResizeGrad"] = {Rule::kResize, 2, "2 per tap per dY element, as the forward"};
    t["GridSample"] = {Rule::kGridSample, 2, "2 per tap per output element: nearest 0, linear 4, cubic 16 taps"};
    t["GridSampleGrad"] = {Rule::kGridSample, 4, "4 per tap per dY element (dX and dGrid)"};
    for (const char* op : {"MaxPoolGrad", "AveragePoolGrad"})
      t[op] = {Rule::kPerOutput, 2, "2 per output element (twice the forward's 1 per input element)"};
    // A scatter-add: one add per gradient element arriving.
    for (const char* op : {"GatherGrad", "GatherElementsGrad", "GatherNDGrad"})
      t[op] = {Rule::kPerInput, 1, "1 per input element (scatter-add)"};
    for (const char* op : {"Softmax", "LogSoftmax", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"})
      t[op] = {Rule::kPerInput, 1, "1 per input element"};
    for (const char* op : {"SoftmaxGrad", "LogSoftmaxGrad", "SoftmaxCrossEntropyLossGrad",
                           "NegativeLogLikelihoodLossGrad"})
      t[op] = {Rule::kPerOutput, 2, "2 per output element (twice the forward's 1)"};
    for (const char* op : {"LayerNormalization", "BatchNormalization", "RMSNormalization"})
      t[op] = {Rule::kPerOutput, 5, "5 per output element"};
    for (const char* op : {"LayerNormalizationGrad", "BatchNormalizationGrad", "RMSNormalizationGrad"})
      t[op] = {Rule::kPerOutput, 10, "10 per element of dX (twice the forward's 5)"};
    t["Accumulate"] = {Rule::kPerGradElem, 1, "1 per element added (acc += X)"};
    t["SumSquares"] = {Rule::kAllInputs, 2, "2 per element of every input (square, add)"};
    t["AdamStep"] = {Rule::kPerGradElem, 17, "17 per gradient element (the update in ir/dsc_ops.h)"};
    t["SGDStep"] = {Rule::kSgdStep, 5, "5 per gradient element, +3 with momentum, +2 with nesterov"};
    t["OptimStep"] = {Rule::kOptimStep, 0,
                      "per gradient element: lion 10, adagrad 8, rmsprop 10 (+2 momentum, +5 centered), adamax 11, "
                      "nadam 17, radam 17, adadelta 17; +2 with weight decay"};
    t["LambMoments"] = {Rule::kPerGradElem, 17, "17 per gradient element (moments, update, two squares)"};
    t["LambApply"] = {Rule::kPerStateElem, 7, "7 per element of exp_avg (update recomputed, scaled, applied)"};
    t["MuonMomentum"] = {Rule::kPerGradElem, 8, "8 per gradient element (scaled, two lerps)"};
    t["OnebitMomentum"] = {Rule::kPerGradElem, 4, "4 per gradient element (scaled, one lerp; compressed steps only)"};
    t["OnebitAdamStep"] = {Rule::kPerGradElem, 14, "14 per gradient element (moments before the freeze, update)"};
    t["ZoadamStep"] = {Rule::kPerGradElem, 19,
                       "19 per gradient element (moments or the frozen momentum, update, accumulator, sync)"};
    t["ZoadamApply"] = {Rule::kPerGradElem, 6, "6 per element of the accumulator (compressed steps only)"};
    t["ZoadamPhase"] = {Rule::kNone, 0, "0 (a step's phase; zeroes the errors once)"};
    t["OnebitLambSnapshot"] = {Rule::kPerInput, 2, "2 per element of exp_avg (copy, norm; compressed steps only)"};
    t["OnebitLambMomentum"] = {Rule::kPerGradElem, 5, "5 per gradient element (scaled, one lerp, momentum scaling)"};
    t["OnebitLambStep"] = {Rule::kPerGradElem, 20,
                           "20 per gradient element (moments or the reconstructed second moment, update, norms, "
                           "applied twice over)"};
    t["CompressedAllReduce"] = {Rule::kAllInputs, 12,
                                "12 per element compressed (error feedback, norm, sign, unpack, server side)"};
    t["MuonApply"] = {Rule::kMuonApply, 4,
                      "Newton-Schulz on each n x m matrix (n <= m), 2 per multiply-add: standard 4n^2m + 2n^3 per "
                      "step; gram 2n^2m, 2n^3 per Z and Q, 4n^3 per R update, 4n^2m at the restart, 2n^2m at the "
                      "end; + 4 per element (normalise, scale, apply)"};
    for (const char* op : {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Concat", "Split",
                           "Slice", "SliceGrad", "Gather", "GatherElements", "GatherND", "ScatterElements", "ScatterND",
                           "Pad", "Tile", "Identity", "StopGradient", "Cast", "CastLike", "ZeroFill", "Assign", "Shape",
                           "Size", "ConstantOfShape", "Range", "NonZero", "OneHot", "DepthToSpace", "SpaceToDepth",
                           "AllReduce", "ReduceScatter", "AllGather", "AllGatherInPlace", "AllReduceStart", "ReduceScatterStart",
                           "AllGatherStart", "AllGatherInPlaceStart", "CollectiveWait", "Release", "IsFinite",
                           "FloatClass"})
      t[op] = {Rule::kNone, 0, "0 (data movement)"};
    return t;
  }();
  return table;
}

bool Present(const Value* v) { return v && !v->name().empty(); }

bool StaticDims(const Value* v, std::vector<int64_t>* dims) {
  if (!Present(v) || !v->type.shape || !IsStatic(*v->type.shape)) return false;
  *dims = DimValues(*v->type.shape);
  return true;
}

int64_t Product(const std::vector<int64_t>& dims, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < dims.size(); ++i) p *= dims[i];
  return p;
}

// OptimStep's arithmetic per element, counted from kernels/common/optimizer_math.h's OptimElement
// (the gradient's scaling included).
int64_t OptimStepFlops(const Node& n) {
  static const std::map<std::string, int64_t> base = {{"lion", 10}, {"adagrad", 8}, {"rmsprop", 10}, {"adamax", 11},
                                                      {"nadam", 17}, {"radam", 17}, {"adadelta", 17}};
  const std::string algorithm = n.GetString("algorithm", "");
  auto it = base.find(algorithm);
  int64_t per = it == base.end() ? 0 : it->second;
  if (algorithm == "rmsprop") per += (n.GetFloat("momentum", 0.0f) != 0.0f ? 2 : 0) + (n.GetInt("centered", 0) != 0 ? 5 : 0);
  if (n.GetFloat("weight_decay", 0.0f) != 0.0f) per += 2;
  return per;
}

// MuonApply's GEMMs (kernels/common/muon_math.h's MuonNewtonSchulz) on the whole update `dims`.
int64_t MuonApplyFlops(const Node& n, const std::vector<int64_t>& dims, int64_t per_element) {
  const optim::MuonMatrix x = optim::MuonMatrixOf(dims);
  const int64_t steps = n.GetInt("ns_steps", 5), nn = x.n, m = x.m;
  const int64_t cube = 2 * nn * nn * nn, rect = 2 * nn * nn * m;
  int64_t per = 0;
  if (n.GetString("ns_method", "gram") == "standard" || m <= nn) {
    per = steps * (2 * rect + cube);
  } else {
    per = rect + rect;  // R = X X^T at the start, X = Q X at the end
    for (int64_t i = 0; i < steps; ++i) {
      if (i == optim::kMuonGramRestart) per += 2 * rect;
      per += cube;                                                   // Z
      if (i != 0 && i != optim::kMuonGramRestart) per += cube;       // Q = a Q + Z Q
      if (i < steps - 1 && i + 1 != optim::kMuonGramRestart) per += 2 * cube;  // R
    }
  }
  return x.batch * per + per_element * x.numel();
}

// The FLOPs by the node's rule; false when a shape the rule needs is not static.
bool Flops(const Node& n, const Entry& e, int64_t* flops) {
  std::vector<int64_t> a, b, y;
  switch (e.rule) {
    case Rule::kNone:
      *flops = 0;
      return true;
    case Rule::kPerOutput:
      if (n.num_outputs() == 0 || !StaticDims(n.output(0), &y)) return false;
      *flops = e.factor * Product(y);
      return true;
    case Rule::kPerInput:
      if (!StaticDims(n.input(0), &a)) return false;
      *flops = e.factor * Product(a);
      return true;
    case Rule::kPerGradElem:
      if (!StaticDims(n.input(1), &a)) return false;
      *flops = e.factor * Product(a);
      return true;
    case Rule::kPerStateElem:
      if (!StaticDims(n.input(2), &a)) return false;
      *flops = e.factor * Product(a);
      return true;
    case Rule::kAllInputs:
      *flops = 0;
      for (const Value* v : n.inputs()) {
        if (!Present(v)) continue;
        if (!StaticDims(v, &a)) return false;
        *flops += e.factor * Product(a);
      }
      return true;
    case Rule::kSgdStep: {
      if (!StaticDims(n.input(1), &a)) return false;
      int64_t per = e.factor;
      if (n.GetFloat("momentum", 0.0f) != 0.0f) per += 3 + (n.GetInt("nesterov", 0) != 0 ? 2 : 0);
      *flops = per * Product(a);
      return true;
    }
    case Rule::kOptimStep: {
      if (!StaticDims(n.input(1), &a)) return false;
      *flops = OptimStepFlops(n) * Product(a);
      return true;
    }
    case Rule::kMuonApply:
      if (!StaticDims(n.input(1), &a) || a.size() < 2) return false;
      *flops = MuonApplyFlops(n, a, e.factor);
      return true;
    case Rule::kResize: {
      // (X, ...) -> Y; ResizeGrad (dY, ...) -> dX: the small side and the large side swap.
      const bool grad = n.domain() == kDscDomain;
      if (!StaticDims(grad ? n.output(0) : n.input(0), &a) || !StaticDims(grad ? n.input(0) : n.output(0), &y) ||
          a.size() != y.size())
        return false;
      const std::string mode = n.GetString("mode", "nearest");
      int64_t taps = mode == "nearest" ? 0 : 1;
      for (size_t i = 0; i < a.size(); ++i)
        if (a[i] != y[i]) taps *= mode == "cubic" ? 4 : 2;
      *flops = e.factor * taps * Product(y);
      return true;
    }
    case Rule::kGridSample: {
      // GridSample (X, Grid) -> Y; GridSampleGrad (dY, X, Grid): Y's elements are dY's.
      if (!StaticDims(n.domain() == kDscDomain ? n.input(0) : n.output(0), &y)) return false;
      const std::string mode = n.GetString("mode", "linear");
      const int64_t taps = mode == "nearest" ? 0 : mode == "cubic" || mode == "bicubic" ? 16 : 4;
      *flops = e.factor * taps * Product(y);
      return true;
    }
    case Rule::kMatMul:
      if (!StaticDims(n.input(0), &a) || !StaticDims(n.output(0), &y) || a.empty()) return false;
      // FusedMatMul<transA> stores A as (..., K, M).
      *flops = 2 * Product(y) * (n.GetInt("transA", 0) != 0 && a.size() >= 2 ? a[a.size() - 2] : a.back());
      return true;
    case Rule::kGemm: {
      if (!StaticDims(n.input(0), &a) || !StaticDims(n.output(0), &y) || a.size() != 2) return false;
      const int64_t k = n.GetInt("transA", 0) != 0 ? a[0] : a[1];
      *flops = 2 * Product(y) * k + (Present(n.input(2)) ? Product(y) : 0);
      return true;
    }
    case Rule::kConv: {
      if (!StaticDims(n.input(1), &b) || !StaticDims(n.output(0), &y) || b.size() < 2) return false;
      *flops = 2 * Product(y) * Product(b, 1) + (Present(n.input(2)) ? Product(y) : 0);
      return true;
    }
    case Rule::kConvGrad: {
      // (dY, X, W) -> dX, dW, dB; W is [Cout, Cin/groups, k...].
      if (!StaticDims(n.input(0), &y) || !StaticDims(n.input(2), &b) || b.size() < 2) return false;
      const int64_t gemm = 2 * Product(y) * Product(b, 1);
      *flops = 0;
      for (size_t o = 0; o < n.num_outputs() && o < 2; ++o)
        if (Present(n.output(o))) *flops += gemm;
      if (n.num_outputs() > 2 && Present(n.output(2))) *flops += Product(y);
      return true;
    }
    case Rule::kConvTranspose: {
      // (X, W[, B]) -> Y; W is [Cin, Cout/groups, k...]: each X element meets Cout/groups*k weights.
      if (!StaticDims(n.input(0), &a) || !StaticDims(n.input(1), &b) || !StaticDims(n.output(0), &y) || b.size() < 2)
        return false;
      *flops = 2 * Product(a) * Product(b, 1) + (Present(n.input(2)) ? Product(y) : 0);
      return true;
    }
    case Rule::kConvTransposeGrad: {
      // (dY, X, W) -> dX, dW, dB.
      if (!StaticDims(n.input(0), &y) || !StaticDims(n.input(1), &a) || !StaticDims(n.input(2), &b) || b.size() < 2)
        return false;
      const int64_t gemm = 2 * Product(a) * Product(b, 1);
      *flops = 0;
      for (size_t o = 0; o < n.num_outputs() && o < 2; ++o)
        if (Present(n.output(o))) *flops += gemm;
      if (n.num_outputs() > 2 && Present(n.output(2))) *flops += Product(y);
      return true;
    }
    case Rule::kAttention:
    case Rule::kAttentionGrad: {
      // Forward (Q, K, V, mask, past_key, ...) -> Y; gradient (dY, Q, K, V, ...). Q is
      // [B, H, Sq, D] or [B, Sq, H*D] (q_num_heads attribute); K's dim -2 or 1 is Sk.
      const bool grad = e.rule == Rule::kAttentionGrad;
      const size_t q = grad ? 1 : 0, past = grad ? 5 : 4;
      std::vector<int64_t> k;
      if (!StaticDims(n.input(q), &a) || !StaticDims(n.input(q + 1), &k)) return false;
      if (!StaticDims(grad ? n.input(0) : n.output(0), &y)) return false;
      if (Present(n.input(past))) return false;  // a KV cache: Sk is not K's length alone
      int64_t d = 0, sk = 0;
      if (a.size() == 4 && k.size() == 4) {
        d = a[3];
        sk = k[2];
      } else if (a.size() == 3 && k.size() == 3) {
        const int64_t heads = n.GetInt("q_num_heads", 0);
        if (heads <= 0) return false;
        d = a[2] / heads;
        sk = k[1];
      } else {
        return false;
      }
      if (d <= 0) return false;
      const int64_t nq = Product(a), ny = Product(y), scores = nq / d * sk;
      *flops = grad ? 6 * nq * sk + 4 * ny * sk + 3 * scores : 2 * nq * sk + scores + 2 * ny * sk;
      return true;
    }
  }
  return false;
}

int64_t Bytes(const Value* v) {
  std::vector<int64_t> dims;
  if (!StaticDims(v, &dims)) return 0;
  return Product(dims) * static_cast<int64_t>(DTypeSize(v->type.dtype));
}

}  // namespace

// The ops that update inputs in place (ir/dsc_ops.h): which inputs they write, and whether they
// read them first (ZeroFill does not).
struct InPlace {
  std::vector<size_t> written;
  bool reads_written;
};
const std::map<std::string, InPlace>& InPlaceOps() {
  static const std::map<std::string, InPlace> ops = {
      {"Accumulate", {{0}, true}}, {"ZeroFill", {{0}, false}},     {"Assign", {{0}, false}},
      {"AdamStep", {{0, 2, 3}, true}}, {"SGDStep", {{0, 2}, true}}, {"AllGatherInPlace", {{0}, true}},
      {"LambMoments", {{2, 3}, true}}, {"LambApply", {{0}, true}}, {"MuonMomentum", {{2}, true}},
      {"MuonApply", {{0}, true}}};
  return ops;
}

// What `n` updates in place: InPlaceOps' entry, or for OptimStep its param and its k states.
static InPlace InPlaceOf(const Node& n) {
  if (n.domain() != kDscDomain) return {{}, true};
  if (n.op_type() == ops::kOptimStep) {
    InPlace r{{0}, true};
    for (size_t i = 0; i < OptimStateSuffixesOf(n).size(); ++i) r.written.push_back(2 + i);
    return r;
  }
  auto it = InPlaceOps().find(n.op_type());
  return it == InPlaceOps().end() ? InPlace{{}, true} : it->second;
}

NodeCost StaticNodeCost(const Node& n) {
  NodeCost c;
  const InPlace in_place = InPlaceOf(n);
  // An update's param_copy (ir/dsc_ops.h) is only written: param's elements, in the copy's dtype.
  const int copy = ops::ParamCopyInput(n);
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    if (copy >= 0 && i == static_cast<size_t>(copy) && n.input(i) && n.input(0)) {
      const size_t from = DTypeSize(n.input(0)->type.dtype);
      if (from > 0) c.bytes_written += Bytes(n.input(0)) / static_cast<int64_t>(from) *
                                       static_cast<int64_t>(DTypeSize(n.input(i)->type.dtype));
      continue;
    }
    bool written = false;
    for (size_t w : in_place.written) written |= w == i;
    if (written) c.bytes_written += Bytes(n.input(i));
    if (!written || in_place.reads_written) c.bytes_read += Bytes(n.input(i));
  }
  for (const Value* v : n.outputs()) c.bytes_written += Bytes(v);
  auto it = Table().find(n.op_type());
  if (it != Table().end()) c.flops_known = Flops(n, it->second, &c.flops);
  if (!c.flops_known) c.flops = 0;
  return c;
}

const std::vector<FlopRule>& FlopRules() {
  static const std::vector<FlopRule> rules = [] {
    std::vector<FlopRule> r;
    for (const auto& [op, e] : Table()) r.push_back({op.c_str(), e.words});
    return r;
  }();
  return rules;
}

std::string NodeShapes(const Node& n) {
  std::string s;
  for (const Value* v : n.inputs()) {
    if (!s.empty()) s += " x ";
    s += Present(v) ? TypeToString(v->type) : "-";
  }
  s += " -> ";
  bool first = true;
  for (const Value* v : n.outputs()) {
    if (!first) s += ", ";
    first = false;
    s += Present(v) ? TypeToString(v->type) : "-";
  }
  return s;
}

std::string FormatStaticFlops(const Plan& plan) {
  auto si = [](double v) {
    const char* units[] = {"", "k", "M", "G", "T", "P"};
    int u = 0;
    while (v >= 1000 && u < 5) {
      v /= 1000;
      ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.2f%s", v, units[u]);
    return std::string(buf);
  };
  const int64_t gas = std::max<int64_t>(plan.config.value("gradient_accumulation_steps", int64_t{1}), 1);
  std::ostringstream s;
  s << "static FLOPs, counted from the shapes (rules: backend/flops.h):\n";
  int64_t per_step = 0, unknown_total = 0;
  for (const PlanProgram& p : plan.programs) {
    struct Kind {
      int64_t nodes = 0, flops = 0, bytes = 0, unknown = 0;
    };
    std::map<std::string, Kind> kinds;
    int64_t flops = 0, bytes = 0, unknown = 0;
    for (const auto& n : p.graph->nodes()) {
      const NodeCost c = StaticNodeCost(*n);
      Kind& k = kinds[OpKind(*n)];
      ++k.nodes;
      k.flops += c.flops;
      k.bytes += c.bytes_read + c.bytes_written;
      flops += c.flops;
      bytes += c.bytes_read + c.bytes_written;
      if (!c.flops_known) {
        ++k.unknown;
        ++unknown;
      }
    }
    const int64_t runs = p.name == "micro_step" ? gas : 1;
    per_step += flops * runs;
    unknown_total += unknown;
    s << "program " << p.name << ": " << si(static_cast<double>(flops)) << "FLOP and " << si(static_cast<double>(bytes))
      << "B moved per run (" << flops << " FLOP";
    if (p.name == "micro_step") s << "; " << gas << " runs per optimizer step";
    s << ")" << (unknown > 0 ? StrCat(", ", unknown, " nodes of unknown FLOPs") : "") << "\n";
    std::vector<std::pair<std::string, Kind>> sorted(kinds.begin(), kinds.end());
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.flops > b.second.flops; });
    char line[160];
    std::snprintf(line, sizeof line, "  %-40s %6s %12s %7s %11s\n", "op kind", "nodes", "FLOP/run", "%", "bytes/run");
    s << line;
    for (const auto& [op, k] : sorted) {
      std::snprintf(line, sizeof line, "  %-40s %6lld %12s %6.1f%% %11s\n", op.c_str(), static_cast<long long>(k.nodes),
                    k.unknown > 0 ? "?" : si(static_cast<double>(k.flops)).c_str(),
                    flops > 0 ? 100.0 * static_cast<double>(k.flops) / static_cast<double>(flops) : 0.0,
                    si(static_cast<double>(k.bytes)).c_str());
      s << line;
    }
  }
  s << "per optimizer step: " << si(static_cast<double>(per_step)) << "FLOP (" << per_step << ")"
    << (unknown_total > 0 ? " plus the nodes of unknown FLOPs" : "") << "\n";
  return s.str();
}

std::string OpKind(const Node& n) { return n.domain().empty() ? n.op_type() : n.domain() + "." + n.op_type(); }

}  // namespace dsc
