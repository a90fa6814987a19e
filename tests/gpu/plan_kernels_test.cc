// Every node of real plans gets a CUDA kernel: each bundled and current model, compiled in fp32,
// bf16 and fp16 (and ZeRO-3 on two ranks for the small ones, Lamb and Muon with fp16 at ZeRO 1
// and bf16 at ZeRO 3 on two ranks, and the 1-bit optimizers on two ranks in fp32, fp16 and bf16),
// has every node of its programs
// created by the CUDA kernel factories. Creating a kernel runs its Init on the host only (shapes,
// attributes, constant inputs), so this needs no GPU: it finds missing CUDA kernels and dtype
// mixes that a CUDA kernel refuses before a GPU-hour is spent finding them.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <tuple>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/plan_file.h"
#include "ir/dsc_ops.h"
#include "ir/swap_ops.h"
#include "kernels/kernel.h"
#include "runtime/cuda_backend.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::ShellQuote;

struct PlanCase {
  std::string model;   // relative to models/
  std::string regime;  // fp32, bf16, fp16, zero3x2, cpu_ckpt_{fp32,bf16} (gpt), {lamb,muon}_fp16_zero1x2, {lamb,muon}_bf16_zero3x2,
                       // {onebitadam,zerooneadam,onebitlamb}_{fp32,fp16,bf16}x2
};
void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.model << " " << c.regime; }

std::vector<PlanCase> Cases() {
  std::vector<PlanCase> cases;
  const fs::path models = fs::path(DSC_SOURCE_DIR) / "models";
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(models))
    if (e.path().extension() == ".onnx") files.push_back(fs::relative(e.path(), models).string());
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    const bool small = f.rfind("mlp/", 0) == 0 || f.rfind("cnn/", 0) == 0 || f.rfind("gpt/", 0) == 0;
    for (const char* r : {"fp32", "bf16"}) cases.push_back({f, r});
    if (small)
      for (const char* r : {"fp16", "zero3x2", "lamb_fp16_zero1x2", "lamb_bf16_zero3x2", "muon_fp16_zero1x2",
                            "muon_bf16_zero3x2"})
        cases.push_back({f, r});
    if (f.rfind("gpt/", 0) == 0)
      for (const char* r : {"cpu_ckpt_fp32", "cpu_ckpt_bf16"}) cases.push_back({f, r});
    if (small)
      for (const char* opt : {"onebitadam", "zerooneadam", "onebitlamb"})
        for (const char* prec : {"fp32", "fp16", "bf16"}) cases.push_back({f, StrCat(opt, "_", prec, "x2")});
  }
  return cases;
}

nlohmann::json ConfigFor(const std::string& regime) {
  nlohmann::json c = {{"train_batch_size", 4},
                      {"train_micro_batch_size_per_gpu", 4},
                      {"gradient_accumulation_steps", 1},
                      {"gradient_clipping", 1.0},
                      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.001}, {"weight_decay", 0.01}}}}}};
  if (regime == "bf16" || regime == "cpu_ckpt_bf16") c["bf16"] = {{"enabled", true}};
  // Activation checkpointing with the checkpoints in host memory (ToHost/FromHost).
  if (regime.rfind("cpu_ckpt_", 0) == 0) c["activation_checkpointing"] = {{"cpu_checkpointing", true}};
  if (regime == "fp16") c["fp16"] = {{"enabled", true}};
  const bool lamb = regime.rfind("lamb_", 0) == 0, muon = regime.rfind("muon_", 0) == 0;
  const bool zero1 = regime.find("_fp16_zero1x2") != std::string::npos;
  if (regime == "zero3x2" || lamb || muon) {
    c["train_micro_batch_size_per_gpu"] = 2;
    c["zero_optimization"] = {{"stage", zero1 ? 1 : 3}};
    c[zero1 ? "fp16" : "bf16"] = {{"enabled", true}};
  }
  if (lamb) {
    c["optimizer"] = {{"type", "Lamb"}, {"params", {{"lr", 0.001}, {"weight_decay", 0.01}}}};
    c["zero_allow_untested_optimizer"] = true;
  }
  if (muon) {  // DeepSpeed's stage 3 takes Muon without reduce_scatter only
    c["optimizer"] = {{"type", "Muon"}, {"params", {{"weight_decay", 0.01}}}};
    c["zero_optimization"]["reduce_scatter"] = false;
  }
  // The 1-bit family at ZeRO 0 (DeepSpeed's only stage for them), micro-batch 2 on each of 2 ranks.
  for (const char* opt : {"onebitadam", "zerooneadam", "onebitlamb"}) {
    if (regime.rfind(opt, 0) != 0) continue;
    c["train_micro_batch_size_per_gpu"] = 2;
    c["zero_optimization"] = {{"stage", 0}};
    if (regime.find("_fp16") != std::string::npos) c["fp16"] = {{"enabled", true}};
    if (regime.find("_bf16") != std::string::npos) c["bf16"] = {{"enabled", true}};
    const std::string o = opt;
    nlohmann::json params = {{"lr", 0.001}, {"weight_decay", 0.01}};
    if (o == "zerooneadam") {
      params["var_freeze_step"] = 4;
      params["var_update_scaler"] = 1;
    } else {
      params["freeze_step"] = 3;
    }
    c["optimizer"] = {{"type", o == "onebitadam" ? "OneBitAdam" : o == "zerooneadam" ? "ZeroOneAdam" : "OneBitLamb"},
                      {"params", params}};
    if (o == "onebitlamb" && regime.find("_fp16") != std::string::npos) c["fp16"]["loss_scale"] = 0;
  }
  return c;
}

// The CUDA kernels register when the module loads; no GPU is needed for that.
void LoadCudaKernels() {
  StatusOr<const CudaBackendApi*> api = LoadCudaBackend();
  ASSERT_TRUE(api.ok()) << api.status().message();
}

class CudaPlanKernels : public ::testing::TestWithParam<PlanCase> {};

TEST_P(CudaPlanKernels, EveryNodeHasACudaKernel) {
  ASSERT_NO_FATAL_FAILURE(LoadCudaKernels());
  const PlanCase& c = GetParam();
  testing::TempDir tmp;
  const std::string config = tmp.File("ds.json"), plan_path = tmp.File("plan.dsplan");
  std::ofstream(config) << ConfigFor(c.regime).dump();
  const std::string world = c.regime.find("x2") != std::string::npos ? " --world-size 2" : "";
  testing::CommandResult r = testing::RunCommand(
      ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((fs::path(DSC_SOURCE_DIR) / "models" / c.model).string()) +
      " --config " + ShellQuote(config) + world + " -o " + ShellQuote(plan_path));
  if (r.rc != 0) GTEST_SKIP() << "dscompile refuses this model/config (not a CUDA question): " << r.output;
  StatusOr<Plan> plan = ReadPlan(plan_path);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  std::string missing;
  int nodes = 0;
  for (const PlanProgram& p : plan->programs) {
    for (const auto& n : p.graph->nodes()) {
      ++nodes;
      StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*n, DeviceKind::kCuda);
      if (!k.ok()) missing += "\n  " + p.name + ": " + k.status().message();
    }
  }
  EXPECT_GT(nodes, 0);
  EXPECT_TRUE(missing.empty()) << "CUDA kernels missing or refusing nodes:" << missing;
}

INSTANTIATE_TEST_SUITE_P(Models, CudaPlanKernels, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<PlanCase>& i) {
                           std::string n = i.param.model + "_" + i.param.regime;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// The CUDA registry mirrors the CPU one: every op and dtype the CPU runs has a CUDA twin, and
// every floating op CUDA runs in float32 also runs in float16 and bfloat16 (CUDA has no adaptor),
// except ops whose operands the compiler always keeps in float32: ClipScale reads the global norm,
// the 1-bit family updates float32 parameters or masters (kernels/common/onebit_node.h), and grid
// sampling is on autocast's fp32 list, so the precision pass keeps GridSample and its gradient there.
// The NVMe swaps (ir/swap_ops.h) are CPU-only: dsrun refuses optimizer offload on a CUDA device
// (runtime/trainer.cc), so no plan that runs on a GPU holds them.
TEST(CudaRegistry, EveryCpuKernelHasACudaTwin) {
  ASSERT_NO_FATAL_FAILURE(LoadCudaKernels());
  const std::set<std::string> fp32_only = {"ClipScale",           ops::kOnebitMomentum,      ops::kOnebitAdamStep,
                                           ops::kCompressedAllReduce, ops::kZoadamStep,          ops::kZoadamPhase,
                                           ops::kZoadamApply,         ops::kOnebitLambSnapshot,  ops::kOnebitLambMomentum,
                                           ops::kOnebitLambStep,      ops::kGridSampleGrad};
  // dsrun refuses optimizer offload on CUDA devices (runtime/trainer.cc).
  const std::set<std::string> cpu_only = {ops::kSwapIn, ops::kSwapInWait, ops::kSwapOut, ops::kSwapOutWait};
  std::set<std::tuple<std::string, std::string, DType>> cuda;
  for (const KernelKey& k : KernelRegistry::Global().Keys())
    if (k.device == DeviceKind::kCuda) cuda.insert({k.domain, k.op_type, k.dtype});
  std::string missing;
  for (const KernelKey& k : KernelRegistry::Global().Keys()) {
    if (k.device != DeviceKind::kCpu || cpu_only.count(k.op_type)) continue;
    if (!cuda.count({k.domain, k.op_type, k.dtype})) missing += StrCat("\n  ", k.domain, " ", k.op_type, " ", DTypeName(k.dtype));
    if (k.dtype == DType::kFloat32 && !fp32_only.count(k.op_type))
      for (DType h : {DType::kFloat16, DType::kBFloat16})
        if (!cuda.count({k.domain, k.op_type, h})) missing += StrCat("\n  ", k.domain, " ", k.op_type, " ", DTypeName(h));
  }
  EXPECT_TRUE(missing.empty()) << "no CUDA kernel for:" << missing;
}

}  // namespace
}  // namespace dsc
