// End-to-end gradient check: the bundled models through the default pipeline and autodiff, every
// parameter gradient on the first 4 samples against PyTorch's (models/<name>/reference/grads).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "frontend/onnx_import.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "passes/pass.h"
#include "runtime/executor.h"
#include "runtime/npy.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kSamples = 4;

// The first `n` samples (dim 0) of a tensor.
Tensor Head(const Tensor& t, int64_t n) {
  std::vector<int64_t> dims = t.dims();
  size_t per_sample = t.nbytes() / static_cast<size_t>(dims[0]);
  dims[0] = n;
  Tensor out(t.dtype(), dims);
  std::memcpy(out.raw(), t.raw(), per_sample * static_cast<size_t>(n));
  return out;
}

class ModelGrads : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelGrads, MatchPyTorch) {
  const std::string name = GetParam();
  const fs::path dir = fs::path(DSC_MODELS_DIR) / name;
  auto imported = ImportOnnxFile((dir / (name + ".onnx")).string());
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  Module m;
  m.programs.push_back(PlanProgram{"main", std::move(*imported)});
  PassContext ctx;
  ctx.micro_batch = kSamples;
  VerifyOptions vo;
  for (PassId id : {PassId::kSpecialize, PassId::kSelectLoss, PassId::kFoldConstants, PassId::kDce, PassId::kAutodiff}) {
    auto pass = CreatePass(id);
    StatusOr<bool> ran = pass->Run(m, ctx);
    ASSERT_TRUE(ran.ok()) << PassName(id) << ": " << ran.status().ToString();
    vo.require_static_shapes |= pass->establishes_static_shapes();
    Status ok = VerifyGraph(*m.programs[0].graph, vo);
    ASSERT_TRUE(ok.ok()) << "after " << PassName(id) << ": " << ok.ToString();
  }
  Graph& g = *m.programs[0].graph;
  ASSERT_EQ(g.training.gradients.size(), g.training.parameters.size());

  std::vector<Value*> outs{g.FindValue(g.training.loss)};
  for (const std::string& grad : g.training.gradients) outs.push_back(g.FindValue(grad));
  g.SetOutputs(outs);
  std::map<std::string, Tensor> data;
  std::map<std::string, Tensor*> bind;
  for (const Value* in : g.inputs()) {
    auto t = ReadNpy((dir / "data" / (in->name() + ".npy")).string());
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    data[in->name()] = Head(*t, kSamples);
  }
  for (auto& [k, t] : data) bind[k] = &t;
  auto result = RunGraphOnCpu(g, bind);
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  double worst = 0;
  std::string worst_param;
  for (size_t k = 0; k < g.training.parameters.size(); ++k) {
    const std::string& p = g.training.parameters[k];
    auto ref = ReadNpy((dir / "reference" / "grads" / (p + ".npy")).string());
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    const Tensor& got = result->at(g.training.gradients[k]);
    ASSERT_EQ(got.dims(), ref->dims()) << p;
    double scale = 0, max_err = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
      scale = std::max(scale, std::fabs(ref->GetAsDouble(i)));
      double e = std::fabs(got.GetAsDouble(i) - ref->GetAsDouble(i));
      if (e > max_err) max_err = e, at = i;
    }
    // Relative to the tensor's largest entry (elementwise ratios of near-zero entries only measure
    // float32 noise), with a floor for gradients that are zero in exact arithmetic (a conv bias
    // feeding a training-mode BatchNorm: both sides hold ~1e-8 rounding noise there).
    double rel = max_err / std::max(scale, 1e-3);
    if (rel > worst) worst = rel, worst_param = p;
    EXPECT_LE(rel, 1e-4) << name << ": d loss/d " << p << " differs from PyTorch by " << rel << " of max|grad| "
                         << scale << " (element " << at << ": " << got.GetAsDouble(at) << " vs "
                         << ref->GetAsDouble(at) << ")";
  }
  std::printf("%s: max relative gradient error %.3g (%s) over %zu parameters\n", name.c_str(), worst,
              worst_param.c_str(), g.training.parameters.size());
  RecordProperty("max_rel_error", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(Bundled, ModelGrads, ::testing::Values("mlp", "cnn", "gpt"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace dsc
