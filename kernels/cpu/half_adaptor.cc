// The half-precision adaptor: runs a float16/bfloat16 node through the op's float32 CPU kernel, so
// every op computes on half tensors without a hand-written twin (KernelRegistry::Create picks it).
//
// What a half op computes, as PyTorch's CPU and CUDA half kernels do ("opmath" float): its half
// inputs widened to float32 (exact), the float32 kernel's arithmetic, and each half output rounded
// to its dtype once, to nearest even. The float32 kernel is created from a shadow node in a graph
// this kernel owns: the same domain, op, name and attributes, every half value replaced by a
// float32 value of the same shape (half initializers by their float32 values), so its Init checks
// run on the float shapes and its errors read as the node's.
//
// Buffers: every half input is converted into float scratch before the inner kernel runs and every
// half output is rounded from scratch after it, so an output that shares memory with an input (an
// arena slot reused in place) is never written before all inputs are read. Scratch is
// half::SharedScratch, one buffer per thread for every half kernel. Constant (initializer) inputs use the shadow
// graph's float copy and are not converted per call. Ops with side effects (ops::HasSideEffects:
// they update their inputs in place) get every non-constant half input written back after
// Compute; half -> float -> half is exact, so the inputs the op did not change stay bitwise equal.
// (The in-place training ops all have half kernels of their own today, computing what this
// adaptor would; tests/training/mixed_precision_ops_test.cc checks AdamStep and SGDStep against it.)
//
// Cost: one widening pass per half input and one rounding pass per half output, OpenMP-parallel
// above kParallelMin elements. Ops whose float32 kernel calls the multi-threaded OpenBLAS pay
// more than that: libgomp's workers keep spinning after the conversion loop while OpenBLAS's
// pthreads start, and a 512^3 MatMul took 24 ms instead of 0.6 ms on 16 cores. MatMul and Gemm
// therefore have their own half kernels (kernels/cpu/matmul.cc); Conv, ConvGrad and Einsum still
// come through here.
#include <map>

#include "ir/dsc_ops.h"
#include "kernels/cpu/half_convert.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

// A half value the inner kernel sees as float32.
struct Widened {
  DType dtype = DType::kUndefined;  // float16 or bfloat16
  int64_t numel = 0;
  size_t index = 0;                 // the first node input/output index that holds it
  bool constant = false;            // an initializer: `view` points at the shadow's float copy
  TensorView view;                  // float32, what the inner kernel gets; ptr into the shared scratch
};

Tensor WidenTensor(const Tensor& t) {
  Tensor f(DType::kFloat32, t.dims());
  half::ToFloat(t.dtype(), t.raw(), f.data<float>(), t.numel());
  return f;
}

StatusOr<std::vector<int64_t>> Dims(const Value* v, const std::string& node) {
  if (!v->type.shape || !IsStatic(*v->type.shape))
    return InvalidArgument(node, ": value '", v->name(), "' has no static shape");
  return DimValues(*v->type.shape);
}

class HalfAdaptorKernel : public OpKernel {
 public:
  Status Init(const Node& node, const KernelRegistry& registry, DeviceKind device) {
    name_ = node.Describe();
    write_back_ = ops::HasSideEffects(node.domain(), node.op_type());
    shadow_ = std::make_unique<Graph>();
    std::map<const Value*, int> widened_of;  // a value used twice (Mul(x, x)) is widened once
    std::vector<Value*> inputs;
    input_slot_.assign(node.num_inputs(), -1);
    for (size_t i = 0; i < node.num_inputs(); ++i) {
      const Value* v = node.input(i);
      if (!v) {
        inputs.push_back(nullptr);
        continue;
      }
      if (auto it = widened_of.find(v); it != widened_of.end()) {
        input_slot_[i] = it->second;
        inputs.push_back(shadow_->FindValue(v->name()));
        continue;
      }
      if (Value* seen = shadow_->FindValue(v->name())) {  // a repeated value that is not half
        inputs.push_back(seen);
        continue;
      }
      const bool widen = IsHalf(v->type.dtype);
      Value* s = nullptr;
      if (v->is_initializer()) {
        s = shadow_->AddInitializer(v->name(), widen ? WidenTensor(v->initializer()) : v->initializer());
      } else {
        TensorType t = v->type;
        if (widen) t.dtype = DType::kFloat32;
        s = shadow_->AddInput(v->name(), t);
      }
      inputs.push_back(s);
      if (!widen) continue;
      ASSIGN_OR_RETURN(std::vector<int64_t> dims, Dims(v, name_));
      Widened w;
      w.dtype = v->type.dtype;
      w.index = i;
      w.constant = v->is_initializer();
      w.view = TensorView{DType::kFloat32, dims, nullptr};
      w.numel = w.view.numel();
      // The float copy is the inner kernel's constant input, as the executor's constants block
      // is for float nodes; kernels only read constant inputs.
      if (w.constant) w.view.ptr = const_cast<uint8_t*>(s->initializer().raw());
      input_slot_[i] = static_cast<int>(inputs_.size());
      widened_of[v] = input_slot_[i];
      inputs_.push_back(std::move(w));
    }
    std::vector<std::string> out_names;
    for (const Value* v : node.outputs()) out_names.push_back(v->name());
    Node* s = shadow_->AddNode(node.op_type(), inputs, out_names, node.domain(), node.name());
    for (const auto& [k, a] : node.attrs()) s->SetAttr(k, a);
    output_slot_.assign(node.num_outputs(), -1);
    for (size_t i = 0; i < node.num_outputs(); ++i) {
      const Value* v = node.output(i);
      s->output(i)->type = v->type;
      if (!IsHalf(v->type.dtype)) continue;
      s->output(i)->type.dtype = DType::kFloat32;
      ASSIGN_OR_RETURN(std::vector<int64_t> dims, Dims(v, name_));
      Widened w;
      w.dtype = v->type.dtype;
      w.index = i;
      w.view = TensorView{DType::kFloat32, dims, nullptr};
      w.numel = w.view.numel();
      output_slot_[i] = static_cast<int>(outputs_.size());
      outputs_.push_back(std::move(w));
    }

    KernelKey key{node.domain(), node.op_type(), device, KernelDType(*s)};
    const KernelFactory* f = registry.Find(key);
    if (!f)
      return Unimplemented(name_, ": no CPU kernel for ", DTypeName(KernelDType(node)), " inputs (nor a ",
                           DTypeName(key.dtype), " kernel to run it in float)");
    ASSIGN_OR_RETURN(inner_, (*f)(*s));
    inner_ctx_.inputs.assign(node.num_inputs(), nullptr);
    inner_ctx_.outputs.assign(node.num_outputs(), nullptr);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    inner_ctx_.seed = ctx.seed;
    inner_ctx_.step = ctx.step;
    inner_ctx_.first_sample = ctx.first_sample;
    inner_ctx_.num_threads = ctx.num_threads;
    inner_ctx_.comm = ctx.comm;
    size_t floats = 0;
    for (const Widened& w : inputs_)
      if (!w.constant) floats += static_cast<size_t>(w.numel);
    for (const Widened& w : outputs_) floats += static_cast<size_t>(w.numel);
    float* next = half::SharedScratch(floats);
    for (Widened& w : inputs_)
      if (!w.constant) {
        w.view.ptr = next;
        next += w.numel;
      }
    for (Widened& w : outputs_) {
      w.view.ptr = next;
      next += w.numel;
    }
    for (size_t i = 0; i < input_slot_.size(); ++i) {
      const TensorView* in = ctx.has_input(i) ? ctx.inputs[i] : nullptr;
      if (input_slot_[i] < 0 || !in) {
        inner_ctx_.inputs[i] = in;
        continue;
      }
      Widened& w = inputs_[static_cast<size_t>(input_slot_[i])];
      if (w.index == i && !w.constant) {
        RETURN_IF_ERROR(Check(*in, w, "input", i));
        half::ToFloat(w.dtype, in->ptr, w.view.data<float>(), w.numel);
      }
      inner_ctx_.inputs[i] = &w.view;
    }
    for (size_t i = 0; i < output_slot_.size(); ++i) {
      TensorView* out = ctx.has_output(i) ? ctx.outputs[i] : nullptr;
      if (output_slot_[i] < 0 || !out) {
        inner_ctx_.outputs[i] = out;
        continue;
      }
      Widened& w = outputs_[static_cast<size_t>(output_slot_[i])];
      RETURN_IF_ERROR(Check(*out, w, "output", i));
      inner_ctx_.outputs[i] = &w.view;
    }
    RETURN_IF_ERROR(inner_->Compute(inner_ctx_));
    for (size_t i = 0; i < output_slot_.size(); ++i) {
      if (output_slot_[i] < 0 || !ctx.has_output(i)) continue;
      const Widened& w = outputs_[static_cast<size_t>(output_slot_[i])];
      half::FromFloat(w.dtype, w.view.data<float>(), ctx.output(i).ptr, w.numel);
    }
    if (write_back_)
      for (const Widened& w : inputs_)
        if (!w.constant && ctx.has_input(w.index)) half::FromFloat(w.dtype, w.view.data<float>(), ctx.inputs[w.index]->ptr, w.numel);
    return Status::OK();
  }

 private:
  Status Check(const TensorView& t, const Widened& w, const char* what, size_t i) const {
    if (t.dtype != w.dtype || t.numel() != w.numel)
      return InvalidArgument(name_, ": ", what, " ", i, " is ", DTypeName(t.dtype), DimsToString(t.dims), ", compiled as ", DTypeName(w.dtype), " with ", w.numel, " elements");
    return Status::OK();
  }

  std::string name_;
  bool write_back_ = false;
  std::unique_ptr<Graph> shadow_;
  std::unique_ptr<OpKernel> inner_;
  std::vector<Widened> inputs_, outputs_;
  std::vector<int> input_slot_, output_slot_;  // per node input/output: index in inputs_/outputs_, or -1
  KernelContext inner_ctx_;
};

}  // namespace

bool NeedsHalfAdaptor(const Node& node, const KernelRegistry& registry, DeviceKind device) {
  if (device != DeviceKind::kCpu || !half::HasHalfValue(node)) return false;
  const DType t = KernelDType(node);
  if (!registry.Find(KernelKey{node.domain(), node.op_type(), device, t})) return true;
  if (t != DType::kFloat32) return false;
  // A float32-selected node with half values (mixed): an op with its own half kernels handles
  // mixed dtypes natively (Cast, Accumulate, SumSquares); any other op's float32 kernel would
  // read the half buffers as floats.
  for (DType h : {DType::kFloat16, DType::kBFloat16})
    if (registry.Find(KernelKey{node.domain(), node.op_type(), device, h})) return false;
  return true;
}

StatusOr<std::unique_ptr<OpKernel>> CreateHalfAdaptor(const Node& node, const KernelRegistry& registry,
                                                      DeviceKind device) {
  auto k = std::make_unique<HalfAdaptorKernel>();
  RETURN_IF_ERROR(k->Init(node, registry, device));
  return std::unique_ptr<OpKernel>(std::move(k));
}

}  // namespace dsc
