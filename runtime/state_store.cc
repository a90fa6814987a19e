// The training state on a device.
#include "runtime/state_store.h"

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "runtime/npy.h"

namespace dsc {

std::string FileNameFor(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  if (!out.empty() && out[0] == '.') out.replace(0, 1, "%2E");  // no hidden files, no "." or ".."
  return out;
}

StateStore::~StateStore() {
  for (auto& [n, v] : views_) device_->Free(v.ptr);
}

Status StateStore::Allocate(const Plan& plan) {
  for (const StateInfo& s : plan.state) {
    TensorView v{s.dtype, s.dims, nullptr};
    ASSIGN_OR_RETURN(v.ptr, device_->Allocate(v.nbytes()));
    views_[s.name] = v;
    bytes_by_kind_[StateKindName(s.kind)] += static_cast<int64_t>(v.nbytes());
    RETURN_IF_ERROR(device_->Memset(v.ptr, 0, v.nbytes()));
  }
  return Status::OK();
}

Status StateStore::InitFromPlan(const Plan& plan, int rank) {
  for (const StateInfo& s : plan.state) {
    if (s.zero_init) continue;
    const TensorView& v = views_.at(s.name);
    const Value* init = plan.initial_state ? plan.initial_state->FindValue(s.name) : nullptr;
    const size_t elem = DTypeSize(s.dtype);
    const size_t full = s.shard_of_numel > 0 ? static_cast<size_t>(s.shard_of_numel) * elem : v.nbytes();
    if (!init || !init->is_initializer() || init->initializer().nbytes() != full)
      return DataLoss("the plan's initial value of state '", s.name, "' is missing or has the wrong size");
    size_t offset = 0, bytes = v.nbytes();
    if (s.shard_of_numel > 0) {
      offset = std::min(full, static_cast<size_t>(rank) * v.nbytes());
      bytes = std::min(v.nbytes(), full - offset);
    }
    RETURN_IF_ERROR(device_->CopyHostToDevice(v.ptr, init->initializer().raw() + offset, bytes));
  }
  return Status::OK();
}

Status StateStore::Dump(const Plan& plan, const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return DataLoss("--debug-dump-state: cannot create ", dir, ": ", ec.message());
  for (const StateInfo& s : plan.state) {
    const TensorView& v = views_.at(s.name);
    Tensor host(v.dtype, v.dims);
    RETURN_IF_ERROR(device_->CopyDeviceToHost(host.raw(), v.ptr, v.nbytes()));
    if (v.dtype == DType::kBFloat16) {  // .npy has no bfloat16; float32 holds every value exactly
      Tensor wide(DType::kFloat32, v.dims);
      for (int64_t i = 0; i < host.numel(); ++i) wide.data<float>()[i] = BFloat16ToFloat(host.data<uint16_t>()[i]);
      host = std::move(wide);
    }
    RETURN_IF_ERROR(WriteNpy(dir + "/" + FileNameFor(s.name) + ".npy", host));
  }
  return Status::OK();
}

const TensorView* StateStore::Find(const std::string& name) const {
  auto it = views_.find(name);
  return it == views_.end() ? nullptr : &it->second;
}

int64_t StateStore::bytes(const char* kind) const {
  auto it = bytes_by_kind_.find(kind);
  return it == bytes_by_kind_.end() ? 0 : it->second;
}

}  // namespace dsc
