// libFuzzer target: plan files through what dsinspect and dsrun do with them. The input is a plan
// without its trailing checksum, which the target appends (mutations would otherwise all stop at
// the checksum); the input as given is parsed too, so the checksum check itself is covered.
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "backend/plan_file.h"
#include "backend/plan_summary.h"
#include "ir/dsc_ops.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "runtime/trainer.h"

namespace {

using namespace dsc;

// Plans may rightly declare big tensors; running those would measure the machine, not the code.
constexpr int64_t kMaxRunBytes = 64 << 20;

std::string WithChecksum(const std::string& body) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64, as backend/plan_file.cc writes it
  for (unsigned char c : body) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  std::string out = body;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((h >> (8 * i)) & 0xff));
  return out;
}

int64_t BytesOf(const Value& v) {
  if (!v.type.shape || !IsStatic(*v.type.shape)) return 0;  // the executor refuses these itself
  std::vector<int64_t> dims;
  for (const Dim& d : *v.type.shape) dims.push_back(d.value);
  StatusOr<int64_t> n = NumElements(dims);
  if (!n.ok() || *n > kMaxRunBytes) return kMaxRunBytes + 1;
  return *n * static_cast<int64_t>(DTypeSize(v.type.dtype));
}

// Everything the executors and the state store would allocate, saturating above the cap.
int64_t RunBytes(const Plan& plan) {
  int64_t total = 0;
  auto add = [&](int64_t b) { total = std::min<int64_t>(total + b, kMaxRunBytes + 1); };
  for (const StateInfo& s : plan.state) {
    StatusOr<int64_t> n = NumElements(s.dims);
    add(!n.ok() || *n > kMaxRunBytes || s.shard_of_numel > kMaxRunBytes ? kMaxRunBytes + 1
                                                                        : *n * static_cast<int64_t>(DTypeSize(s.dtype)));
  }
  for (const PlanProgram& p : plan.programs) {
    if (!p.graph) continue;
    for (const Value* in : p.graph->inputs()) add(BytesOf(*in));
    for (const auto& n : p.graph->nodes())
      for (const Value* out : n->outputs()) add(BytesOf(*out));
  }
  return total;
}

// Never destroyed: the atexit hook that removes the folder runs after static destructors.
const std::string& DataDir() {
  static const std::string* dir = [] {
    std::string templ = (std::filesystem::temp_directory_path() / "fuzz_plan.XXXXXX").string();
    if (!mkdtemp(templ.data())) std::abort();
    std::atexit([] { std::filesystem::remove_all(DataDir()); });
    return new std::string(templ);
  }();
  return *dir;
}

bool SafeFileName(const std::string& name) {
  if (name.empty() || name.size() > 100 || name[0] == '.') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

// One zero-filled NAME.npy per data input of micro_step, a batch's worth of samples; false when
// the plan's inputs cannot be written as a data folder (odd names, dtypes .npy lacks).
bool WriteZeroData(const Plan& plan, const Graph& micro) {
  std::filesystem::remove_all(DataDir());
  std::filesystem::create_directories(DataDir());
  const nlohmann::json& tbs = plan.config.is_object() ? plan.config.value("train_batch_size", nlohmann::json()) : nlohmann::json();
  if (!tbs.is_number_integer() || tbs.get<int64_t>() < 1 || tbs.get<int64_t>() > 256) return false;
  for (const Value* in : micro.inputs()) {
    if (plan.FindState(in->name()) || ops::ReservedScalarDType(in->name()) != DType::kUndefined) continue;
    if (!SafeFileName(in->name()) || !in->type.shape || !IsStatic(*in->type.shape) || in->type.shape->empty())
      return false;
    std::vector<int64_t> dims = {tbs.get<int64_t>()};
    for (size_t i = 1; i < in->type.shape->size(); ++i) dims.push_back((*in->type.shape)[i].value);
    StatusOr<int64_t> n = NumElements(dims);
    if (!n.ok() || *n * static_cast<int64_t>(DTypeSize(in->type.dtype)) > kMaxRunBytes) return false;
    if (!WriteNpy(DataDir() + "/" + in->name() + ".npy", Tensor(in->type.dtype, dims)).ok()) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)ParsePlan(bytes, "fuzz.dsplan");
  StatusOr<Plan> plan = ParsePlan(WithChecksum(bytes), "fuzz.dsplan");
  if (!plan.ok()) return 0;

  // dsinspect: the summary, and every program in each graph format.
  const nlohmann::json summary = SummarizePlan(*plan);
  (void)RenderSummaryText(summary, "fuzz.dsplan");
  for (const PlanProgram& p : plan->programs) {
    (void)SummarizePlan(*plan, p.name);
    for (GraphFormat f : {GraphFormat::kText, GraphFormat::kOnnx, GraphFormat::kDot}) (void)ExportGraph(*p.graph, f);
  }

  // dsrun: executors for every program, then one optimizer step on zero data.
  if (RunBytes(*plan) > kMaxRunBytes) return 0;
  std::unique_ptr<Device> device = CreateCpuDevice(1);
  for (const PlanProgram& p : plan->programs) (void)ProgramExecutor::Create(*p.graph, device.get());
  const PlanProgram* micro = plan->FindProgram("micro_step");
  if (plan->world_size != 1 || !micro || !WriteZeroData(*plan, *micro->graph)) return 0;
  TrainOptions opts;
  opts.data_dir = DataDir();
  opts.steps = 1;
  opts.shuffle = false;
  opts.threads = 1;
  StatusOr<TrainSummary> trained = Train(*plan, opts);
  if (std::getenv("DSC_FUZZ_VERBOSE"))  // for triage: how far an input got
    std::cerr << "fuzz_plan: one step: " << (trained.ok() ? "ok" : trained.status().message()) << "\n";
  return 0;
}
