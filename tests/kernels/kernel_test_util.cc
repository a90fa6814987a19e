// Single-node kernel runner and tolerance checks.
#include "tests/kernels/kernel_test_util.h"

#include <cmath>
#include <fstream>
#include <map>

namespace dsc::testing {

Shape StaticShape(const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return s;
}

TensorType F32(const std::vector<int64_t>& dims) { return TensorType{DType::kFloat32, StaticShape(dims)}; }

StatusOr<std::vector<Tensor>> RunNodeOnCpu(const Node& node, const std::vector<Tensor*>& inputs, uint64_t seed,
                                           int64_t step, Communicator* comm, int64_t first_sample) {
  ASSIGN_OR_RETURN(std::unique_ptr<OpKernel> kernel, KernelRegistry::Global().Create(node, DeviceKind::kCpu));
  std::vector<TensorView> in_views(inputs.size()), out_views(node.num_outputs());
  std::vector<Tensor> outputs;
  KernelContext ctx;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) {
      ctx.inputs.push_back(nullptr);
      continue;
    }
    in_views[i] = TensorView{inputs[i]->dtype(), inputs[i]->dims(), inputs[i]->raw()};
    ctx.inputs.push_back(&in_views[i]);
  }
  outputs.reserve(node.num_outputs());
  for (size_t i = 0; i < node.num_outputs(); ++i) {
    const Value* v = node.output(i);
    if (v->name().rfind("__omit", 0) == 0) {
      outputs.emplace_back();
      ctx.outputs.push_back(nullptr);
      continue;
    }
    if (!v->type.shape || !IsStatic(*v->type.shape))
      return InvalidArgument("output '", v->name(), "' needs a static type for the test runner");
    std::vector<int64_t> dims;
    for (const Dim& d : *v->type.shape) dims.push_back(d.value);
    outputs.emplace_back(v->type.dtype, dims);
    out_views[i] = TensorView{v->type.dtype, dims, outputs.back().raw()};
    ctx.outputs.push_back(&out_views[i]);
  }
  ctx.seed = seed;
  ctx.first_sample = first_sample;
  ctx.step = step;
  ctx.comm = comm;
  RETURN_IF_ERROR(kernel->Compute(ctx));
  return outputs;
}

::testing::AssertionResult AllClose(const Tensor& actual, const std::vector<double>& expected, double rtol,
                                    double atol) {
  if (actual.numel() != static_cast<int64_t>(expected.size()))
    return ::testing::AssertionFailure() << "size " << actual.numel() << " != expected " << expected.size();
  for (int64_t i = 0; i < actual.numel(); ++i) {
    double a = actual.GetAsDouble(i), b = expected[static_cast<size_t>(i)];
    if (std::isnan(a) != std::isnan(b) || std::fabs(a - b) > atol + rtol * std::fabs(b))
      return ::testing::AssertionFailure() << "index " << i << ": got " << a << ", expected " << b;
  }
  return ::testing::AssertionSuccess();
}

const std::vector<nlohmann::json>& JsonCases(const std::string& path) {
  static std::map<std::string, std::vector<nlohmann::json>> read;
  auto it = read.find(path);
  if (it != read.end()) return it->second;
  std::vector<nlohmann::json> cases;
  std::ifstream in(path);
  if (in) cases = nlohmann::json::parse(in).at("cases").get<std::vector<nlohmann::json>>();
  return read.emplace(path, std::move(cases)).first->second;
}

Tensor TensorOf(DType dtype, const std::vector<int64_t>& dims, const std::vector<double>& values) {
  Tensor t(dtype, dims);
  for (size_t i = 0; i < values.size(); ++i) t.SetFromDouble(static_cast<int64_t>(i), values[i]);
  return t;
}

}  // namespace dsc::testing
