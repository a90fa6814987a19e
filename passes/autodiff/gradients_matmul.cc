// Gradient builders of Gemm and MatMul (batched, broadcasting and 1-D operands).
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

Value* Gemm(B& b, Value* a, Value* c, bool ta, bool tc, float alpha) {
  std::vector<int64_t> da = B::Dims(a), dc = B::Dims(c);
  int64_t m = ta ? da[1] : da[0], n = tc ? dc[0] : dc[1];
  Attrs attrs;
  if (alpha != 1.0f) attrs["alpha"] = alpha;
  if (ta) attrs["transA"] = int64_t{1};
  if (tc) attrs["transB"] = int64_t{1};
  return b.Emit("Gemm", {a, c}, B::TypeOf(a->type.dtype, {m, n}), std::move(attrs));
}

// Y = alpha * op(A) op(B) + beta * C with op = transpose when transA/transB.
Status BuildGemmGrad(B& b) {
  const Node& n = b.node();
  float alpha = n.GetFloat("alpha", 1.0f), beta = n.GetFloat("beta", 1.0f);
  bool ta = n.GetInt("transA", 0) != 0, tb = n.GetInt("transB", 0) != 0;
  Value* dy = b.dY(0);
  if (b.NeedsGrad(0))  // d op(A) = alpha dY op(B)^T; dA is its transpose when transA
    b.SetGrad(0, ta ? Gemm(b, b.X(1), dy, tb, true, alpha) : Gemm(b, dy, b.X(1), false, !tb, alpha));
  if (b.NeedsGrad(1))  // d op(B) = alpha op(A)^T dY
    b.SetGrad(1, tb ? Gemm(b, dy, b.X(0), true, ta, alpha) : Gemm(b, b.X(0), dy, !ta, false, alpha));
  if (b.NeedsGrad(2)) b.SetGrad(2, b.ReduceSumTo(b.MulScalar(dy, beta), B::Dims(b.X(2))));
  return Status::OK();
}

std::vector<int64_t> SwapLast2(int64_t rank) {
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < rank; ++i) perm.push_back(i);
  std::swap(perm[static_cast<size_t>(rank - 1)], perm[static_cast<size_t>(rank - 2)]);
  return perm;
}

// numpy matmul. 1-D operands are promoted to [1,K] / [K,1] (as the forward does), the gradient is
// computed on the promoted shapes and un-broadcast back to each operand.
Status BuildMatMulGrad(B& b) {
  Value* a = b.X(0);
  Value* c = b.X(1);
  std::vector<int64_t> da = B::Dims(a), dc = B::Dims(c);
  bool a1 = da.size() == 1, c1 = dc.size() == 1;
  std::vector<int64_t> pa = a1 ? std::vector<int64_t>{1, da[0]} : da;
  std::vector<int64_t> pc = c1 ? std::vector<int64_t>{dc[0], 1} : dc;
  // Promoted output: broadcast batch dims + [M, N].
  std::vector<int64_t> batch = BroadcastDims(std::vector<int64_t>(pa.begin(), pa.end() - 2),
                                             std::vector<int64_t>(pc.begin(), pc.end() - 2));
  int64_t m = pa[pa.size() - 2], k = pa.back(), n = pc.back();
  std::vector<int64_t> py = batch;
  py.push_back(m);
  py.push_back(n);
  Value* dy = b.Reshape(b.dY(0), py);
  Value* ap = b.Reshape(a, pa);
  Value* cp = b.Reshape(c, pc);
  DType dt = a->type.dtype;
  auto matmul = [&](Value* x, Value* z) {
    std::vector<int64_t> dx = B::Dims(x), dz = B::Dims(z);
    std::vector<int64_t> out = BroadcastDims(std::vector<int64_t>(dx.begin(), dx.end() - 2),
                                             std::vector<int64_t>(dz.begin(), dz.end() - 2));
    out.push_back(dx[dx.size() - 2]);
    out.push_back(dz.back());
    return b.Emit("MatMul", {x, z}, B::TypeOf(dt, out));
  };
  if (b.NeedsGrad(0)) {  // dA = dY B^T, summed over the batch dims A was broadcast along
    Value* g = matmul(dy, b.Transpose(cp, SwapLast2(static_cast<int64_t>(pc.size()))));
    b.SetGrad(0, b.Reshape(b.ReduceSumTo(g, pa), da));
  }
  if (b.NeedsGrad(1)) {
    Value* g;
    if (pc.size() == 2 && pa.size() > 2) {
      // A 2-D weight under a batched input (Linear on 3-D): one GEMM over the flattened batch
      // instead of a batched MatMul and a reduction (A is expanded first if it was broadcast).
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < py.size(); ++i) rows *= py[i];
      std::vector<int64_t> full_a = batch;
      full_a.push_back(m);
      full_a.push_back(k);
      Value* af = b.Reshape(b.Expand(ap, full_a), {rows, k});
      Value* df = b.Reshape(dy, {rows, n});
      g = Gemm(b, af, df, true, false, 1.0f);
    } else {
      g = matmul(b.Transpose(ap, SwapLast2(static_cast<int64_t>(pa.size()))), dy);
    }
    b.SetGrad(1, b.Reshape(b.ReduceSumTo(g, pc), dc));
  }
  return Status::OK();
}

}  // namespace

void RegisterMatMulGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("Gemm", BuildGemmGrad);
  REGISTER_GRADIENT_BUILDER("MatMul", BuildMatMulGrad);
}

}  // namespace dsc::autodiff
