// Gradient checks of every gradient builder: one row of grad_cases.txt per op and attribute
// variant, compared with float32 central differences (a sanity bound with a per-case tolerance)
// and, where gen_reference_grads.py wrote them, torch.autograd gradients in double (tight).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "onnx/checker.h"

#include "ir/onnx_convert.h"
#include "ir/shape_inference.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "passes/pass.h"
#include "runtime/executor.h"
#include "tests/autodiff/grad_case.h"

namespace dsc {
namespace {

std::map<std::string, nlohmann::json> LoadTorchReference() {
  std::map<std::string, nlohmann::json> out;
  std::ifstream in(DSC_AUTODIFF_DIR "/reference_grads.json");
  if (!in) return out;
  nlohmann::json j = nlohmann::json::parse(in);
  for (auto& [k, v] : j.items()) out[k] = v;
  return out;
}

// loss = sum_k sum(out_k * R_k), in double on the host from the float outputs.
double HostLoss(const std::map<std::string, Tensor>& outs, const GradCase& c) {
  double loss = 0;
  for (const auto& [name, r] : c.weights) {
    const Tensor& y = outs.at(name);
    for (int64_t i = 0; i < y.numel(); ++i) loss += y.GetAsDouble(i) * r.GetAsDouble(i);
  }
  return loss;
}

class GradCheck : public ::testing::TestWithParam<std::string> {};

TEST_P(GradCheck, MatchesFiniteDifferencesAndTorch) {
  static const std::vector<GradCaseText> cases = LoadGradCaseTexts(DSC_AUTODIFF_DIR "/grad_cases.txt");
  const GradCaseText* text = nullptr;
  for (const auto& t : cases)
    if (t.name == GetParam()) text = &t;
  ASSERT_NE(text, nullptr);
  StatusOr<GradCase> built = BuildGradCase(*text);
  ASSERT_TRUE(built.ok()) << text->name << ": " << built.status().ToString();
  GradCase& c = *built;

  // Differentiate.
  Module m;
  m.programs.push_back(PlanProgram{"main", std::move(c.graph)});
  Graph& g = *m.programs[0].graph;
  StatusOr<bool> ran = CreatePass(PassId::kAutodiff)->Run(m, PassContext{});
  ASSERT_TRUE(ran.ok()) << text->name << ": autodiff: " << ran.status().ToString();
  VerifyOptions vo;
  vo.require_static_shapes = true;
  Status verified = VerifyGraph(g, vo);
  ASSERT_TRUE(verified.ok()) << verified.ToString() << "\n" << PrintGraph(g);
  // The backward nodes must take the form of the case's opset (ReduceMean's axes became an input
  // at 18, Split's sizes one at 13): the ONNX checker sees what a dump of this graph would hold.
  // Ops of our own domain have no schema and pass it.
  try {
    onnx::checker::check_model(GraphToOnnx(g));
  } catch (const std::exception& e) {
    FAIL() << text->name << ": the differentiated graph fails the ONNX checker: " << e.what() << "\n" << PrintGraph(g);
  }

  // One graph serves the analytic run and every FD run, so a Dropout mask (keyed by node and
  // seed) is the same in all of them. Parameters become inputs bound to tensors we perturb.
  std::vector<Value*> outs;
  for (const auto& [name, r] : c.weights) outs.push_back(g.FindValue(name));
  for (const std::string& grad : g.training.gradients) outs.push_back(g.FindValue(grad));
  g.SetOutputs(outs);
  std::map<std::string, Tensor> params;
  std::map<std::string, Tensor*> bind;
  for (const std::string& p : g.training.parameters) {
    Value* v = g.FindValue(p);
    const Tensor& init = v->initializer();
    Tensor copy(init.dtype(), init.dims());
    std::memcpy(copy.raw(), init.raw(), init.nbytes());
    params.emplace(p, std::move(copy));
    g.ConvertInitializerToInput(v);
  }
  for (auto& [p, t] : params) bind[p] = &t;
  RunOptions opts;
  opts.seed = 7;
  auto analytic = RunGraphOnCpu(g, bind, opts);
  ASSERT_TRUE(analytic.ok()) << text->name << ": " << analytic.status().ToString() << "\n" << PrintGraph(g);

  static const auto torch = LoadTorchReference();
  auto ref = torch.find(text->name);
  double worst_fd = 0, worst_torch = 0;
  for (size_t k = 0; k < g.training.parameters.size(); ++k) {
    const std::string& p = g.training.parameters[k];
    const Tensor& grad = analytic->at(g.training.gradients[k]);
    Tensor& x = params.at(p);
    ASSERT_EQ(grad.numel(), x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
      float x0 = x.data<float>()[i];
      float h = static_cast<float>(c.h * std::max(1.0, std::fabs(static_cast<double>(x0))));
      x.data<float>()[i] = x0 + h;
      auto plus = RunGraphOnCpu(g, bind, opts);
      x.data<float>()[i] = x0 - h;
      auto minus = RunGraphOnCpu(g, bind, opts);
      x.data<float>()[i] = x0;
      ASSERT_TRUE(plus.ok() && minus.ok()) << plus.status().ToString();
      // The step actually taken in float, not the nominal one.
      double step = static_cast<double>(x0 + h) - static_cast<double>(x0 - h);
      double fd = (HostLoss(*plus, c) - HostLoss(*minus, c)) / step;
      double got = grad.GetAsDouble(i);
      double err = std::fabs(got - fd);
      worst_fd = std::max(worst_fd, err / (c.atol + c.rtol * std::fabs(fd)));
      EXPECT_LE(err, c.atol + c.rtol * std::fabs(fd))
          << text->name << ": d/d" << p << "[" << i << "] analytic " << got << " vs finite difference " << fd;
      if (ref != torch.end() && ref->second.contains(p)) {
        double want = ref->second[p][static_cast<size_t>(i)].get<double>();
        double terr = std::fabs(got - want);
        worst_torch = std::max(worst_torch, terr / (1e-5 + 1e-4 * std::fabs(want)));
        EXPECT_LE(terr, 1e-5 + 1e-4 * std::fabs(want))
            << text->name << ": d/d" << p << "[" << i << "] analytic " << got << " vs torch " << want;
      }
    }
  }
  RecordProperty("worst_fd_ratio", std::to_string(worst_fd));
  RecordProperty("worst_torch_ratio", ref == torch.end() ? "n/a" : std::to_string(worst_torch));
}

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  for (const auto& t : LoadGradCaseTexts(DSC_AUTODIFF_DIR "/grad_cases.txt")) names.push_back(t.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Ops, GradCheck, ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace dsc
