// Einsum (numpy semantics: implicit and explicit output, `...` broadcasting, repeated labels in
// an operand read its diagonal). The general case is a direct loop, one dot product over the summed
// labels per output element; a float32 contraction of two operands without diagonals, broadcasts
// or labels summed within one operand (matmul, attention's "bhqd,bhkd->bhqk") is instead
// transposed to (batch, M, K) x (batch, K, N) and run as one sgemm per batch.
#include <cblas.h>

#include <algorithm>
#include <type_traits>

#include "ir/einsum_equation.h"
#include "kernels/cpu/broadcast.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::cpu {
namespace {

// The ONNX spec allows any number of operands; per-element offsets live in fixed arrays of this size.
constexpr size_t kMaxOperands = 8;

template <typename T>
class EinsumKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    std::vector<std::vector<int64_t>> shapes;
    for (size_t k = 0; k < node.num_inputs(); ++k) {
      ASSIGN_OR_RETURN(auto dims, StaticDims(node.input(k)));
      shapes.push_back(std::move(dims));
    }
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(EinsumEquation eq, ParseEinsum(node.GetString("equation", ""), shapes));
    std::vector<int64_t> expect;
    for (int l : eq.output) expect.push_back(eq.label_size[static_cast<size_t>(l)]);
    if (expect != y)
      return InvalidArgument("output ", nn::DimsToString(y), " differs from the equation's ", nn::DimsToString(expect));

    // Per operand, the element stride each label moves: the sum over the dims it labels (a repeated
    // label walks the diagonal), 0 on a broadcast ellipsis dim of size 1.
    const size_t nl = eq.label_size.size();
    strides_.assign(shapes.size(), std::vector<int64_t>(nl, 0));
    for (size_t k = 0; k < shapes.size(); ++k) {
      const std::vector<int64_t> cs = ContiguousStrides(shapes[k]);
      for (size_t d = 0; d < shapes[k].size(); ++d) {
        const size_t l = static_cast<size_t>(eq.inputs[k][d]);
        if (shapes[k][d] == 1 && eq.label_size[l] != 1) continue;
        strides_[k][l] += cs[d];
      }
    }
    out_labels_ = eq.output;
    for (int l : out_labels_) out_dims_.push_back(eq.label_size[static_cast<size_t>(l)]);
    std::vector<int> summed;
    for (size_t l = 0; l < nl; ++l)
      if (eq.label_count[l] > 0 && std::find(out_labels_.begin(), out_labels_.end(), static_cast<int>(l)) == out_labels_.end())
        summed.push_back(static_cast<int>(l));

    if constexpr (std::is_same_v<T, float>) {
      PlanGemm(eq, shapes);
      if (gemm_) return Status::OK();
    }
    // One row of operand offsets per combination of the summed labels, built once.
    int64_t combos = 1;
    for (int l : summed) combos *= eq.label_size[static_cast<size_t>(l)];
    num_ops_ = shapes.size();
    sum_offsets_.assign(static_cast<size_t>(combos) * num_ops_, 0);
    std::vector<int64_t> coord(summed.size(), 0);
    for (int64_t c = 0; c < combos; ++c) {
      for (size_t k = 0; k < num_ops_; ++k) {
        int64_t off = 0;
        for (size_t s = 0; s < summed.size(); ++s) off += coord[s] * strides_[k][static_cast<size_t>(summed[s])];
        sum_offsets_[static_cast<size_t>(c) * num_ops_ + k] = off;
      }
      for (size_t s = summed.size(); s-- > 0;) {
        if (++coord[s] < eq.label_size[static_cast<size_t>(summed[s])]) break;
        coord[s] = 0;
      }
    }
    combos_ = combos;
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    if constexpr (std::is_same_v<T, float>) {
      if (gemm_) {
        RunGemm(ctx);
        return Status::OK();
      }
    }
    const T* x[kMaxOperands] = {};
    for (size_t k = 0; k < num_ops_; ++k) x[k] = ctx.input(k).data<T>();
    T* y = ctx.output(0).data<T>();
    const int64_t n = Product(out_dims_), rank = static_cast<int64_t>(out_dims_.size());
    const size_t nops = num_ops_;
#pragma omp parallel for if (n * combos_ >= kParallelMin) schedule(static)
    for (int64_t o = 0; o < n; ++o) {
      int64_t base[kMaxOperands] = {};
      int64_t rest = o;
      for (int64_t d = rank - 1; d >= 0; --d) {
        const size_t ds = static_cast<size_t>(d);
        const int64_t i = rest % out_dims_[ds];
        rest /= out_dims_[ds];
        for (size_t k = 0; k < nops; ++k) base[k] += i * strides_[k][static_cast<size_t>(out_labels_[ds])];
      }
      double acc = 0;
      const int64_t* row = sum_offsets_.data();
      for (int64_t c = 0; c < combos_; ++c, row += nops) {
        double p = 1;
        for (size_t k = 0; k < nops; ++k) p *= static_cast<double>(x[k][base[k] + row[k]]);
        acc += p;
      }
      y[o] = static_cast<T>(acc);
    }
    return Status::OK();
  }

 private:
  // Labels of a two-operand contraction by role: batch (A, B, Y), m (A, Y), n (B, Y), k (A, B).
  void PlanGemm(const EinsumEquation& eq, const std::vector<std::vector<int64_t>>& shapes) {
    if (shapes.size() != 2) return;
    for (size_t k = 0; k < 2; ++k)
      for (size_t d = 0; d < shapes[k].size(); ++d) {
        const int l = eq.inputs[k][d];
        if (shapes[k][d] != eq.label_size[static_cast<size_t>(l)] || shapes[k][d] == 0) return;  // broadcast / empty
        if (std::count(eq.inputs[k].begin(), eq.inputs[k].end(), l) > 1) return;                // diagonal
      }
    auto in = [&](size_t k, int l) { return std::count(eq.inputs[k].begin(), eq.inputs[k].end(), l) > 0; };
    std::vector<int> batch, m, n, kk;
    for (size_t l = 0; l < eq.label_size.size(); ++l) {
      if (eq.label_count[l] == 0) continue;
      const int li = static_cast<int>(l);
      const bool a = in(0, li), b = in(1, li);
      const bool y = std::find(out_labels_.begin(), out_labels_.end(), li) != out_labels_.end();
      if (a && b && y) batch.push_back(li);
      else if (a && y) m.push_back(li);
      else if (b && y) n.push_back(li);
      else if (a && b) kk.push_back(li);
      else return;  // summed within one operand
    }
    auto sizes = [&](std::initializer_list<const std::vector<int>*> groups) {
      std::vector<int64_t> dims;
      for (const auto* g : groups)
        for (int l : *g) dims.push_back(eq.label_size[static_cast<size_t>(l)]);
      return dims;
    };
    auto strides_of = [&](size_t k, std::initializer_list<const std::vector<int>*> groups) {
      std::vector<int64_t> st;
      for (const auto* g : groups)
        for (int l : *g) st.push_back(strides_[k][static_cast<size_t>(l)]);
      return st;
    };
    batch_ = Product(sizes({&batch}));
    m_ = Product(sizes({&m}));
    n_ = Product(sizes({&n}));
    k_ = Product(sizes({&kk}));
    a_plan_ = StridedPlan(sizes({&batch, &m, &kk}), {strides_of(0, {&batch, &m, &kk})});
    b_plan_ = StridedPlan(sizes({&batch, &kk, &n}), {strides_of(1, {&batch, &kk, &n})});
    // The sgemm result is laid out (batch, m, n); the output reads it in its own label order.
    std::vector<int> tmp_labels = batch;
    tmp_labels.insert(tmp_labels.end(), m.begin(), m.end());
    tmp_labels.insert(tmp_labels.end(), n.begin(), n.end());
    const std::vector<int64_t> tmp_strides = ContiguousStrides(sizes({&tmp_labels}));
    std::vector<int64_t> y_strides;
    for (int l : out_labels_)
      y_strides.push_back(tmp_strides[static_cast<size_t>(std::find(tmp_labels.begin(), tmp_labels.end(), l) -
                                                          tmp_labels.begin())]);
    y_plan_ = StridedPlan(out_dims_, {y_strides});
    a_buf_.resize(static_cast<size_t>(batch_ * m_ * k_));
    b_buf_.resize(static_cast<size_t>(batch_ * k_ * n_));
    y_buf_.resize(static_cast<size_t>(batch_ * m_ * n_));
    gemm_ = true;
  }

  static void Gather(const BroadcastPlan& p, const float* src, float* dst) {
    ForEachRow(p, [&](int64_t o, const int64_t* off) {
      const int64_t stride = p.inner_stride(0);
      for (int64_t i = 0; i < p.inner(); ++i) dst[o + i] = src[off[0] + i * stride];
    });
  }

  void RunGemm(KernelContext& ctx) {
    Gather(a_plan_, ctx.input(0).data<float>(), a_buf_.data());
    Gather(b_plan_, ctx.input(1).data<float>(), b_buf_.data());
    for (int64_t i = 0; i < batch_; ++i)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m_), static_cast<int>(n_),
                  static_cast<int>(k_), 1.0f, a_buf_.data() + i * m_ * k_, static_cast<int>(k_),
                  b_buf_.data() + i * k_ * n_, static_cast<int>(n_), 0.0f, y_buf_.data() + i * m_ * n_,
                  static_cast<int>(n_));
    Gather(y_plan_, y_buf_.data(), ctx.output(0).data<float>());
  }

  bool gemm_ = false;
  int64_t batch_ = 1, m_ = 1, n_ = 1, k_ = 1;
  BroadcastPlan a_plan_, b_plan_, y_plan_;
  std::vector<float> a_buf_, b_buf_, y_buf_;  // sized once in Init

  size_t num_ops_ = 0;
  std::vector<std::vector<int64_t>> strides_;  // [operand][label]
  std::vector<int> out_labels_;
  std::vector<int64_t> out_dims_;
  int64_t combos_ = 1;
  std::vector<int64_t> sum_offsets_;  // [combo][operand]
};

template <typename T>
KernelFactory EinsumFactory() {
  return [](const Node& n) -> StatusOr<std::unique_ptr<OpKernel>> {
    if (n.num_inputs() < 1 || n.num_inputs() > kMaxOperands)
      return Unimplemented(n.Describe(), ": Einsum with ", n.num_inputs(), " operands (1 to ", kMaxOperands,
                           " supported)");
    return MakeFactory<EinsumKernel<T>>()(n);
  };
}

DSC_REGISTER_KERNEL("", "Einsum", kCpu, kFloat32, EinsumFactory<float>());
DSC_REGISTER_KERNEL("", "Einsum", kCpu, kFloat64, EinsumFactory<double>());

}  // namespace
}  // namespace dsc::cpu
