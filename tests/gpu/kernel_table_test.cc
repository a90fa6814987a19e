// The CPU-vs-CUDA kernel table: every gradient-check case (tests/autodiff/grad_cases.txt) and every
// odd-shape case (tests/gpu/odd_shape_cases.txt), run forward and backward on the CPU device and on
// CUDA GPU 0, in float32 and converted to float16 and bfloat16, outputs and gradients compared.
// One line per case, a summary with the CUDA kernel keys no case reached, and
// $DSC_GPU_REPORT_DIR/kernel_table.json when that variable is set. Without a GPU it skips, saying
// why; KernelTableHarness runs the same table with a second CPU device in place of the GPU so the
// harness itself (case building, half conversion, copies, comparison) is checked on any machine.
//
// Environment: DSC_REPO_ROOT (where tests/ is; default: the source tree this was built from),
// DSC_GPU_TABLE_FILTER (run only cases whose name contains it), DSC_GPU_REPORT_DIR.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/module.h"
#include "ir/shape_inference.h"
#include "ir/text.h"
#include "passes/pass.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "tests/autodiff/grad_case.h"

namespace dsc {
namespace {

std::string RepoRoot() {
  const char* env = std::getenv("DSC_REPO_ROOT");
  return env && *env ? env : DSC_SOURCE_DIR;
}

// Per-dtype tolerances, |gpu - cpu| <= atol + rtol * |cpu| elementwise. Half runs round every op's
// result once on both sides, so they differ where an internal float sum lands on the other side of
// a rounding boundary, and that propagates through the backward graph: a few ulps.
struct Tolerance {
  double rtol, atol;
};
Tolerance TolFor(const std::string& dtype) {
  if (dtype == "f32") return {1e-4, 1e-5};
  if (dtype == "f16") return {5e-3, 1e-3};
  return {4e-2, 1e-2};  // bf16 and mixed (which hold bf16 or f16 tensors)
}

DType DTypeOfLabel(const std::string& label) {
  if (label == "f16") return DType::kFloat16;
  if (label == "bf16") return DType::kBFloat16;
  return DType::kFloat32;
}

std::set<std::string> SplitComma(const std::string& s) {
  std::set<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.insert(item);
  return out;
}

std::string Option(const GradCaseText& t, const std::string& k, const std::string& dflt) {
  auto it = t.options.find(k);
  return it == t.options.end() ? dflt : it->second;
}

// Seeded data for train=0 inputs: CaseRng (tests/autodiff/grad_case.h).

Tensor ConvertTensor(const Tensor& t, DType to) {
  Tensor out(to, t.dims());
  for (int64_t i = 0; i < t.numel(); ++i) out.SetFromDouble(i, t.GetAsDouble(i));
  return out;
}

// The whole graph in `to`: every float32 value (inputs, initializers, node outputs) but those in
// `keep`, Cast/CastLike targets of float32 and float32 tensor attributes. The same graph a model
// converted with .half()/.bfloat16() would give, so every op runs its half kernel.
void ConvertFloats(Graph& g, DType to, const std::set<std::string>& keep) {
  auto conv = [&](Value* v) {
    if (!v || v->type.dtype != DType::kFloat32 || keep.count(v->name())) return;
    v->type.dtype = to;
    if (v->is_initializer()) v->set_initializer(ConvertTensor(v->initializer(), to));
  };
  for (Value* v : g.inputs()) conv(v);
  for (Value* v : g.initializers()) conv(v);
  for (const auto& n : g.nodes()) {
    for (Value* v : n->outputs()) conv(v);
    if (n->op_type() == "Cast" && n->GetInt("to", 0) == DTypeToOnnx(DType::kFloat32))
      n->SetAttr("to", int64_t{DTypeToOnnx(to)});
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& [name, attr] : n->attrs())
      if (KindOf(attr) == AttrKind::kTensor && std::get<Tensor>(attr).dtype() == DType::kFloat32)
        tensors.emplace_back(name, ConvertTensor(std::get<Tensor>(attr), to));
    for (auto& [name, t] : tensors) n->SetAttr(name, std::move(t));
  }
}

bool AllZero(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t.GetAsDouble(i) != 0.0) return false;
  return true;
}

// A case ready to run on any device: the graph with its outputs set, host values for its inputs,
// and the names compared after the run (outputs, and inputs that in-place ops update).
struct Prepared {
  std::unique_ptr<Graph> graph;
  std::map<std::string, Tensor> inputs;
  std::vector<std::string> compare;
  std::string note;  // how the case was built, when not the plain way
};

StatusOr<Prepared> PrepareTrained(const GradCaseText& text, const std::string& dtype, const std::set<std::string>& keep,
                                  bool convert_after_autodiff) {
  Prepared p;
  bool half = dtype == "f16" || dtype == "bf16";
  ASSIGN_OR_RETURN(GradCase c, BuildGradCase(text));
  Module m;
  m.programs.push_back(PlanProgram{"main", std::move(c.graph)});
  Graph& g = *m.programs[0].graph;
  if (half && !convert_after_autodiff) {
    ConvertFloats(g, DTypeOfLabel(dtype), keep);
    RETURN_IF_ERROR(InferShapes(g));
  }
  ASSIGN_OR_RETURN(bool ran, CreatePass(PassId::kAutodiff)->Run(m, PassContext{}));
  (void)ran;
  if (half && convert_after_autodiff) {
    ConvertFloats(g, DTypeOfLabel(dtype), keep);
    p.note = "converted after autodiff";
  }
  std::vector<Value*> outs;
  for (const auto& [name, r] : c.weights) outs.push_back(g.FindValue(name));
  for (const std::string& grad : g.training.gradients) outs.push_back(g.FindValue(grad));
  g.SetOutputs(outs);
  for (Value* v : outs) p.compare.push_back(v->name());
  for (const std::string& name : g.training.parameters) {
    Value* v = g.FindValue(name);
    p.inputs.emplace(name, v->initializer());
    g.ConvertInitializerToInput(v);
  }
  p.graph = std::move(m.programs[0].graph);
  return p;
}

StatusOr<Prepared> Prepare(const GradCaseText& text, const std::string& dtype) {
  Prepared p;
  std::set<std::string> keep = SplitComma(Option(text, "keep", ""));
  bool half = dtype == "f16" || dtype == "bf16";
  if (Option(text, "train", "1") != "0") {
    // Converted before autodiff, as a half model is; where that graph is refused (a gradient rule
    // or shape inference that takes no half type), the float32 backward graph is converted
    // instead, which runs the same kernels.
    StatusOr<Prepared> before = PrepareTrained(text, dtype, keep, /*convert_after_autodiff=*/false);
    if (before.ok() || !half) return before;
    StatusOr<Prepared> after = PrepareTrained(text, dtype, keep, /*convert_after_autodiff=*/true);
    if (after.ok()) return after;
    return before.status();
  }

  ParseOptions popts;
  popts.allow_elided = true;
  ASSIGN_OR_RETURN(p.graph, ParseGraph(text.graph, popts));
  Graph& g = *p.graph;
  double lo = -1, hi = 1;
  std::string range = Option(text, "range", "");
  if (!range.empty()) {
    lo = std::stod(range.substr(0, range.find(':')));
    hi = std::stod(range.substr(range.find(':') + 1));
  }
  std::set<std::string> nonneg = SplitComma(Option(text, "nonneg", ""));
  auto fill = [&](const std::string& name, Tensor& t) {
    CaseRng rng(text.name + "/" + name);
    for (int64_t i = 0; i < t.numel(); ++i) {
      double x = lo + (hi - lo) * rng.Uniform01();
      t.SetFromDouble(i, nonneg.count(name) ? std::fabs(x) : x);
    }
  };
  for (Value* v : g.initializers()) {
    if (!IsFloat(v->type.dtype) || !AllZero(v->initializer())) continue;
    Tensor t(v->type.dtype, v->initializer().dims());
    fill(v->name(), t);
    v->set_initializer(std::move(t));
  }
  if (half) ConvertFloats(g, DTypeOfLabel(dtype), keep);
  // The text declares every type; ONNX's inference cannot see through our ops' outputs (it drops
  // declared intermediate types), so its refusal leaves the declared ones.
  (void)InferShapes(g);
  for (Value* v : g.inputs()) {
    std::vector<int64_t> dims;
    for (const Dim& d : *v->type.shape) dims.push_back(d.value);
    Tensor t(v->type.dtype, dims);
    if (IsFloat(v->type.dtype)) {
      fill(v->name(), t);
    } else if (v->type.dtype == DType::kBool) {
      CaseRng rng(text.name + "/" + v->name());
      for (int64_t i = 0; i < t.numel(); ++i) t.SetFromInt(i, rng.Uniform01() < 0.5 ? 1 : 0);
    } else if (IsInteger(v->type.dtype)) {
      std::string ir = Option(text, "irange", "-8:8");
      int64_t ilo = std::stoll(ir.substr(0, ir.find(':'))), ihi = std::stoll(ir.substr(ir.find(':') + 1));
      CaseRng rng(text.name + "/" + v->name());
      for (int64_t i = 0; i < t.numel(); ++i)
        t.SetFromInt(i, ilo + std::min<int64_t>(ihi - ilo, static_cast<int64_t>(rng.Uniform01() * (ihi - ilo + 1))));
    }
    p.inputs.emplace(v->name(), std::move(t));
    p.compare.push_back(v->name());
  }
  for (Value* v : g.outputs()) p.compare.push_back(v->name());
  return p;
}

// Device buffers freed on every path out of RunOn.
class Buffers {
 public:
  explicit Buffers(Device* d) : device_(d) {}
  ~Buffers() {
    for (void* p : ptrs_) device_->Free(p);
  }
  StatusOr<void*> Allocate(size_t bytes) {
    ASSIGN_OR_RETURN(void* p, device_->Allocate(std::max<size_t>(bytes, 64)));
    ptrs_.push_back(p);
    return p;
  }

 private:
  Device* device_;
  std::vector<void*> ptrs_;
};

// Runs the case once on `device`: inputs copied in, every compared value copied back.
StatusOr<std::map<std::string, Tensor>> RunOn(const Prepared& p, Device* device) {
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> ex, ProgramExecutor::Create(*p.graph, device));
  Buffers buffers(device);
  std::map<std::string, TensorView> bound;
  for (const auto& [name, t] : p.inputs) {
    ASSIGN_OR_RETURN(void* d, buffers.Allocate(t.nbytes()));
    if (t.nbytes() > 0) RETURN_IF_ERROR(device->CopyHostToDevice(d, t.raw(), t.nbytes()));
    TensorView view{t.dtype(), t.dims(), d};
    RETURN_IF_ERROR(ex->Bind(name, view));
    bound.emplace(name, view);
  }
  RunOptions opts;
  opts.seed = 7;
  opts.step = 1;
  RETURN_IF_ERROR(ex->Run(opts));
  RETURN_IF_ERROR(device->Synchronize());
  std::map<std::string, Tensor> out;
  for (const std::string& name : p.compare) {
    const TensorView* view = ex->Output(name);
    if (!view) {
      auto it = bound.find(name);
      if (it == bound.end()) return Internal("no value '", name, "' to read back");
      view = &it->second;
    }
    Tensor t(view->dtype, view->dims);
    if (t.nbytes() > 0) RETURN_IF_ERROR(device->CopyDeviceToHost(t.raw(), view->ptr, t.nbytes()));
    out.emplace(name, std::move(t));
  }
  return out;
}

struct CaseResult {
  std::string source, name, dtype, status;  // status: pass, fail, error, unchecked
  std::string ops;                           // the case's forward op types
  double max_abs = 0, max_rel = 0;
  std::string worst;  // the value with the largest error relative to its tolerance
  std::string message;
  double seconds = 0;
};

// Worst errors over all compared values; rel = |d| / max(|cpu|, atol) so near-zero references do
// not blow it up.
void Compare(const std::map<std::string, Tensor>& got, const std::map<std::string, Tensor>& want, Tolerance tol,
             CaseResult* r) {
  double worst_ratio = -1;
  int bad = 0;
  std::string first_bad;
  for (const auto& [name, w] : want) {
    const Tensor& g = got.at(name);
    if (g.dtype() != w.dtype() || g.dims() != w.dims()) {
      ++bad;
      if (first_bad.empty()) first_bad = StrCat(name, ": dtype/shape differ");
      continue;
    }
    bool exact = !IsFloat(w.dtype());
    for (int64_t i = 0; i < w.numel(); ++i) {
      double a = g.GetAsDouble(i), b = w.GetAsDouble(i);
      if (std::isnan(a) && std::isnan(b)) continue;
      if (std::isinf(a) && std::isinf(b) && (a > 0) == (b > 0)) continue;
      double d = std::fabs(a - b);
      bool ok = exact ? a == b : d <= tol.atol + tol.rtol * std::fabs(b);
      if (std::isnan(d)) ok = false;
      double rel = d / std::max(std::fabs(b), tol.atol);
      double ratio = std::isnan(d) ? 1e300 : d / (tol.atol + tol.rtol * std::fabs(b));
      if (!std::isnan(d)) {
        r->max_abs = std::max(r->max_abs, d);
        r->max_rel = std::max(r->max_rel, rel);
      }
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        r->worst = name;
      }
      if (!ok) {
        ++bad;
        if (first_bad.empty()) first_bad = StrCat(name, "[", i, "]: device ", a, " vs cpu ", b);
      }
    }
  }
  r->status = bad == 0 ? "pass" : "fail";
  if (bad) r->message = StrCat(bad, " elements out of tolerance; first ", first_bad);
}

std::string KeyString(const KernelKey& k) {
  return StrCat(k.domain.empty() ? "" : k.domain + ".", k.op_type, " ", DTypeName(k.dtype));
}

// Each node's CUDA key that has no kernel, for a clearer message than the executor's.
std::string MissingKeys(const Graph& g, DeviceKind device) {
  std::set<std::string> missing;
  for (const auto& n : g.nodes()) {
    KernelKey key{n->domain(), n->op_type(), device, KernelDType(*n)};
    if (!KernelRegistry::Global().Find(key)) missing.insert(KeyString(key));
  }
  std::string out;
  for (const std::string& m : missing) out += (out.empty() ? "" : ", ") + m;
  return out;
}

struct TableRun {
  std::vector<CaseResult> results;
  std::set<KernelKey> exercised;
  std::string context_lost;  // the run after which the CUDA context was unusable
};

// CUDA errors that leave the context unusable: every later call fails the same way, so the runs
// after one are not run rather than reported as failures of their own.
bool StickyCudaError(const std::string& message) {
  for (const char* e : {"cudaErrorIllegalAddress", "cudaErrorLaunchFailure", "cudaErrorIllegalInstruction",
                        "cudaErrorMisalignedAddress", "cudaErrorHardwareStackError", "cudaErrorInvalidPc",
                        "cudaErrorAssert", "cudaErrorLaunchTimeout", "illegal memory access",
                        "unspecified launch failure"})
    if (message.find(e) != std::string::npos) return true;
  return false;
}

TableRun RunTable(Device* reference, Device* device) {
  TableRun run;
  const char* filter_env = std::getenv("DSC_GPU_TABLE_FILTER");
  std::string filter = filter_env ? filter_env : "";
  const std::pair<std::string, std::string> tables[] = {
      {"grad_cases", RepoRoot() + "/tests/autodiff/grad_cases.txt"},
      {"odd_shapes", RepoRoot() + "/tests/gpu/odd_shape_cases.txt"},
  };
  for (const auto& [source, path] : tables) {
    std::vector<GradCaseText> texts = LoadGradCaseTexts(path);
    if (texts.empty()) {
      CaseResult r;
      r.source = source;
      r.name = "(table)";
      r.dtype = "-";
      r.status = "error";
      r.message = "no cases read from " + path + " (set DSC_REPO_ROOT to the repository root)";
      std::printf("[ ERROR ] %s\n", r.message.c_str());
      run.results.push_back(r);
      continue;
    }
    for (const GradCaseText& text : texts) {
      if (!filter.empty() && text.name.find(filter) == std::string::npos) continue;
      std::vector<std::string> dtypes;
      std::stringstream list(Option(text, "dtypes", "f32,f16,bf16"));
      for (std::string d; std::getline(list, d, ',');) dtypes.push_back(d);
      for (const std::string& dtype_opt : dtypes) {
        std::string dtype = dtype_opt == "as_written" ? "mixed" : dtype_opt;
        CaseResult r;
        r.source = source;
        r.name = text.name;
        r.dtype = dtype;
        auto t0 = std::chrono::steady_clock::now();
        if (!run.context_lost.empty()) {
          r.status = "unchecked";
          r.message = "not run: the CUDA context was lost at " + run.context_lost;
          run.results.push_back(std::move(r));
          continue;
        }
        StatusOr<Prepared> p = Prepare(text, dtype);
        if (p.ok()) {
          std::set<std::string> ops;
          for (const auto& n : p->graph->nodes()) ops.insert(n->op_type());
          for (const std::string& o : ops) r.ops += (r.ops.empty() ? "" : ",") + o;
        }
        StatusOr<std::map<std::string, Tensor>> want =
            p.ok() ? RunOn(*p, reference) : StatusOr<std::map<std::string, Tensor>>(p.status());
        if (!want.ok()) {
          // Not a verdict on the device: the case could not be built or run on the CPU.
          r.status = "unchecked";
          r.message = StrCat(p.ok() ? "cpu reference failed: " : "case not built: ", want.status().message());
        } else {
          StatusOr<std::map<std::string, Tensor>> got = RunOn(*p, device);
          if (!got.ok()) {
            r.status = "error";
            std::string missing = MissingKeys(*p->graph, device->kind());
            r.message = missing.empty() ? got.status().ToString() : "no kernel on the device for: " + missing;
            if (StickyCudaError(r.message)) run.context_lost = source + "/" + text.name + " " + dtype;
          } else {
            Compare(*got, *want, TolFor(dtype), &r);
            if (!p->note.empty()) r.message += (r.message.empty() ? "" : "; ") + p->note;
            for (const auto& n : p->graph->nodes())
              run.exercised.insert(KernelKey{n->domain(), n->op_type(), device->kind(), KernelDType(*n)});
          }
        }
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::string status = r.status;
        std::transform(status.begin(), status.end(), status.begin(), ::toupper);
        std::string msg = r.message.substr(0, std::min<size_t>(r.message.size(), 300));
        std::replace(msg.begin(), msg.end(), '\n', ' ');
        std::printf("[%-9s] %-10s %-48s %-5s max_abs %-10.3g max_rel %-10.3g %s%s%s\n", status.c_str(), source.c_str(),
                    text.name.c_str(), dtype.c_str(), r.max_abs, r.max_rel, r.ops.c_str(),
                    r.worst.empty() ? "" : (" worst=" + r.worst).c_str(), msg.empty() ? "" : ("  -- " + msg).c_str());
        std::fflush(stdout);
        run.results.push_back(std::move(r));
      }
    }
  }
  return run;
}

// Prints the summary, writes the JSON, returns the number of failed or errored cases.
int Report(const TableRun& run, Device* device, const std::string& json_name) {
  std::map<std::string, std::map<std::string, int>> counts;  // dtype -> status -> n
  std::map<std::string, int> totals;
  for (const CaseResult& r : run.results) {
    ++counts[r.dtype][r.status];
    ++totals[r.status];
  }
  std::printf("\nkernel table on %s against cpu: %zu runs: %d pass, %d fail, %d error, %d unchecked\n",
              device->name().c_str(), run.results.size(), totals["pass"], totals["fail"], totals["error"],
              totals["unchecked"]);
  for (const auto& [dtype, c] : counts) {
    auto get = [&](const char* s) {
      auto it = c.find(s);
      return it == c.end() ? 0 : it->second;
    };
    std::printf("  %-5s pass %d  fail %d  error %d  unchecked %d\n", dtype.c_str(), get("pass"), get("fail"),
                get("error"), get("unchecked"));
  }
  if (!run.context_lost.empty())
    std::printf("THE CUDA CONTEXT WAS LOST at %s: every later run was skipped; rerun from there with "
                "DSC_GPU_TABLE_FILTER or fix that kernel first\n", run.context_lost.c_str());
  std::vector<std::string> unexercised;
  size_t device_keys = 0;
  for (const KernelKey& k : KernelRegistry::Global().Keys()) {
    if (k.device != device->kind()) continue;
    ++device_keys;
    if (!run.exercised.count(k)) unexercised.push_back(KeyString(k));
  }
  std::printf("coverage: %zu of %zu %s kernel keys exercised by a case that ran; not exercised (%zu):", device_keys - unexercised.size(),
              device_keys, device->kind() == DeviceKind::kCuda ? "CUDA" : "CPU", unexercised.size());
  for (const std::string& k : unexercised) std::printf(" [%s]", k.c_str());
  std::printf("\n");

  const char* dir = std::getenv("DSC_GPU_REPORT_DIR");
  if (dir && *dir) {
    nlohmann::json j;
    j["device"] = device->name();
    j["reference"] = "cpu";
    j["tolerances"] = nlohmann::json::object();
    for (const char* d : {"f32", "f16", "bf16", "mixed"}) j["tolerances"][d] = {{"rtol", TolFor(d).rtol}, {"atol", TolFor(d).atol}};
    j["summary"] = {{"runs", run.results.size()},   {"pass", totals["pass"]},        {"fail", totals["fail"]},
                    {"error", totals["error"]},    {"unchecked", totals["unchecked"]}, {"kernel_keys", device_keys},
                    {"context_lost_at", run.context_lost},
                    {"kernel_keys_exercised", device_keys - unexercised.size()}};
    j["unexercised_kernel_keys"] = unexercised;
    nlohmann::json cases = nlohmann::json::array();
    for (const CaseResult& r : run.results)
      cases.push_back({{"source", r.source}, {"case", r.name},       {"dtype", r.dtype},     {"status", r.status},
                       {"ops", r.ops},       {"max_abs", r.max_abs}, {"max_rel", r.max_rel}, {"worst", r.worst},
                       {"message", r.message}, {"seconds", r.seconds}});
    j["cases"] = cases;
    std::filesystem::create_directories(dir);
    std::ofstream(std::string(dir) + "/" + json_name) << j.dump(1) << "\n";
    std::printf("wrote %s/%s\n", dir, json_name.c_str());
  }
  return totals["fail"] + totals["error"];
}

TEST(KernelTable, CpuVsCuda) {
  std::string why;
  if (CudaDeviceCount(&why) == 0) GTEST_SKIP() << "no CUDA GPU visible: " << why;
  std::unique_ptr<Device> cpu = CreateCpuDevice();
  StatusOr<std::unique_ptr<Device>> gpu = CreateCudaDevice(0);
  ASSERT_TRUE(gpu.ok()) << gpu.status().ToString();
  TableRun run = RunTable(cpu.get(), gpu->get());
  int bad = Report(run, gpu->get(), "kernel_table.json");
  EXPECT_EQ(bad, 0) << bad << " case runs failed or errored on " << (*gpu)->name() << " (lines above)";
}

// The comparison itself: equal tensors pass, a difference past the tolerance fails and is named.
TEST(KernelTableHarness, CompareFlagsDifferences) {
  Tensor a = Tensor::FromVector(DType::kFloat32, {3}, std::vector<float>{1.0f, -2.0f, 0.0f});
  Tensor b = Tensor::FromVector(DType::kFloat32, {3}, std::vector<float>{1.0f, -2.0f, 0.0f});
  CaseResult same;
  Compare({{"y", a}}, {{"y", b}}, TolFor("f32"), &same);
  EXPECT_EQ(same.status, "pass");
  Tensor c = Tensor::FromVector(DType::kFloat32, {3}, std::vector<float>{1.0f, -2.001f, 0.0f});
  CaseResult differ;
  Compare({{"y", c}}, {{"y", b}}, TolFor("f32"), &differ);
  EXPECT_EQ(differ.status, "fail");
  EXPECT_NE(differ.message.find("y[1]"), std::string::npos) << differ.message;
  EXPECT_NEAR(differ.max_abs, 1e-3, 1e-6);
  CaseResult loose;
  Compare({{"y", c}}, {{"y", b}}, TolFor("bf16"), &loose);
  EXPECT_EQ(loose.status, "pass");
  Tensor nan = Tensor::FromVector(DType::kFloat32, {3}, std::vector<float>{1.0f, NAN, 0.0f});
  CaseResult with_nan;
  Compare({{"y", nan}}, {{"y", b}}, TolFor("bf16"), &with_nan);
  EXPECT_EQ(with_nan.status, "fail");
}

// The same table with a second CPU device as the "device": every case the CPU can run must match
// itself exactly, so a failure here is the harness's, not a kernel's.
TEST(KernelTableHarness, CpuAgainstCpu) {
  std::unique_ptr<Device> a = CreateCpuDevice(1);
  std::unique_ptr<Device> b = CreateCpuDevice(1);
  TableRun run = RunTable(a.get(), b.get());
  int bad = Report(run, b.get(), "kernel_table_cpu_harness.json");
  EXPECT_EQ(bad, 0);
  int f32_unchecked = 0;
  for (const CaseResult& r : run.results) {
    if (r.status == "pass") {
      EXPECT_EQ(r.max_abs, 0.0) << r.name << " " << r.dtype << ": cpu differs from cpu";
    }
    if (r.status == "unchecked" && r.dtype == "f32") ++f32_unchecked;
  }
  EXPECT_EQ(f32_unchecked, 0) << "float32 cases the CPU could not run (lines above)";
}

}  // namespace
}  // namespace dsc
