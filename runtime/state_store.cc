// The training state on a device.
#include "runtime/state_store.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "ir/swap_ops.h"
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
  for (auto& [n, v] : host_views_) FreeOnHost(v.ptr);
}

void StateStore::PlaceForHostStep(HostStepLayout layout, Device* host, bool pinned) {
  layout_ = std::move(layout);
  host_ = host;
  pinned_ = pinned;
}

StatusOr<void*> StateStore::AllocateOnHost(size_t bytes) {
  return pinned_ ? device_->AllocateHost(bytes) : host_->Allocate(bytes);
}

void StateStore::FreeOnHost(void* p) {
  if (pinned_) {
    device_->FreeHost(p);
  } else {
    host_->Free(p);
  }
}

Status StateStore::Allocate(const Plan& plan) {
  const std::set<std::string> swapped = ops::SwappedStates(plan);
  for (const StateInfo& s : plan.state) {
    TensorView v{s.dtype, s.dims, nullptr};
    if (swapped.count(s.name)) {
      swapped_[s.name] = v;
      swap_order_.push_back(s.name);
      if (s.kind == StateKind::kParameter) swapped_params_.insert(s.name);
      swapped_by_kind_[StateKindName(s.kind)] += static_cast<int64_t>(v.nbytes());
      continue;
    }
    bytes_by_kind_[StateKindName(s.kind)] += static_cast<int64_t>(v.nbytes());
    auto place = layout_.place.find(s.name);
    const StatePlace where = host_ && place != layout_.place.end() ? place->second : StatePlace::kDevice;
    if (where != StatePlace::kHost) {
      ASSIGN_OR_RETURN(v.ptr, device_->Allocate(v.nbytes()));
      views_[s.name] = v;
      RETURN_IF_ERROR(device_->Memset(v.ptr, 0, v.nbytes()));
    }
    if (where != StatePlace::kDevice) {
      ASSIGN_OR_RETURN(v.ptr, AllocateOnHost(v.nbytes()));
      host_views_[s.name] = v;
      std::memset(v.ptr, 0, v.nbytes());
      host_bytes_ += static_cast<int64_t>(v.nbytes());
      if (where == StatePlace::kMirrored) mirror_bytes_ += static_cast<int64_t>(v.nbytes());
    }
  }
  return Status::OK();
}

const TensorView* StateStore::FindOnHost(const std::string& name) const {
  auto it = host_views_.find(name);
  return it == host_views_.end() ? nullptr : &it->second;
}

const TensorView* StateStore::FindForStep(const std::string& name) const {
  return host_ ? FindOnHost(name) : Find(name);
}

Status StateStore::MirrorToHost(const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    const TensorView *d = Find(n), *h = FindOnHost(n);
    if (!d || !h) return Internal("state '", n, "' has no host mirror");
    RETURN_IF_ERROR(device_->CopyDeviceToHost(h->ptr, d->ptr, d->nbytes()));
    moved_to_host_ += static_cast<int64_t>(d->nbytes());
  }
  return Status::OK();
}

Status StateStore::MirrorToDevice(const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    const TensorView *d = Find(n), *h = FindOnHost(n);
    if (!d || !h) return Internal("state '", n, "' has no host mirror");
    RETURN_IF_ERROR(device_->CopyHostToDevice(d->ptr, h->ptr, d->nbytes()));
    moved_to_device_ += static_cast<int64_t>(d->nbytes());
  }
  return Status::OK();
}

Status StateStore::ZeroOnDevice(const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    const TensorView* d = Find(n);
    if (!d) return Internal("state '", n, "' has no device buffer");
    RETURN_IF_ERROR(device_->Memset(d->ptr, 0, d->nbytes()));
  }
  return Status::OK();
}

Status StateStore::OpenSwap(const SwapFolders& folders, int rank, const SwapIoOptions& io) {
  if (swapped_.empty()) return Status::OK();
  const bool one_file = folders.params == folders.others;
  std::vector<SwapSlot> params, others;
  for (const std::string& n : swap_order_)
    (!one_file && swapped_params_.count(n) ? params : others).push_back(SwapSlot{n, swapped_.at(n).nbytes()});
  for (const auto& [slots, dir, key] :
       {std::tuple{&params, &folders.params, &folders.params_key}, std::tuple{&others, &folders.others, &folders.others_key}}) {
    if (slots->empty()) continue;
    ASSIGN_OR_RETURN(std::unique_ptr<NvmeSwapFile> f, NvmeSwapFile::Create(*dir, rank, *slots, io, *key));
    for (const SwapSlot& s : *slots) router_.file_of[s.name] = f.get();
    files_.push_back(std::move(f));
  }
  return Status::OK();
}

std::vector<std::string> StateStore::SwapIoNotes() const {
  std::vector<std::string> out;
  for (const auto& f : files_)
    if (!f->direct_io()) out.push_back(f->direct_io_note());
  return out;
}

StatusOr<NvmeSwapFile*> StateStore::Router::For(const std::string& name) const {
  auto it = file_of.find(name);
  if (it == file_of.end()) return Internal("state '", name, "' is not in a swap file");
  return it->second;
}

StatusOr<std::unique_ptr<CommHandle>> StateStore::Router::StartRead(const std::string& name, void* dst, size_t bytes) {
  ASSIGN_OR_RETURN(NvmeSwapFile * f, For(name));
  return f->StartRead(name, dst, bytes);
}

StatusOr<std::unique_ptr<CommHandle>> StateStore::Router::StartWrite(const std::string& name, const void* src,
                                                                    size_t bytes) {
  ASSIGN_OR_RETURN(NvmeSwapFile * f, For(name));
  return f->StartWrite(name, src, bytes);
}

const TensorView* StateStore::Describe(const std::string& name) const {
  if (const TensorView* v = Find(name)) return v;
  if (const TensorView* v = FindOnHost(name)) return v;
  auto it = swapped_.find(name);
  return it == swapped_.end() ? nullptr : &it->second;
}

Status StateStore::CopyToHost(const std::string& name, void* dst) const {
  if (const TensorView* v = Find(name)) return device_->CopyDeviceToHost(dst, v->ptr, v->nbytes());
  if (const TensorView* v = FindOnHost(name)) {
    std::memcpy(dst, v->ptr, v->nbytes());
    return Status::OK();
  }
  auto it = swapped_.find(name);
  if (it == swapped_.end()) return Internal("state '", name, "' has no buffer");
  ASSIGN_OR_RETURN(NvmeSwapFile * f, router_.For(name));
  return f->Read(name, dst, it->second.nbytes());
}

Status StateStore::CopyFromHost(const std::string& name, const void* src, size_t bytes) {
  const TensorView* d = Describe(name);
  if (!d) return Internal("state '", name, "' has no buffer");
  if (bytes > d->nbytes()) return Internal("state '", name, "': ", bytes, " bytes given, it has ", d->nbytes());
  // Both copies of a mirrored state: the mirror stays current until a program writes one.
  if (const TensorView* h = FindOnHost(name)) std::memcpy(h->ptr, src, bytes);
  if (const TensorView* v = Find(name)) return device_->CopyHostToDevice(v->ptr, src, bytes);
  if (d->ptr) return Status::OK();
  ASSIGN_OR_RETURN(NvmeSwapFile * f, router_.For(name));
  return f->Write(name, src, bytes);
}

Status StateStore::InitFromPlan(const Plan& plan, int rank) {
  for (const StateInfo& s : plan.state) {
    if (s.zero_init) continue;
    const TensorView& v = *Describe(s.name);
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
    RETURN_IF_ERROR(CopyFromHost(s.name, init->initializer().raw() + offset, bytes));
  }
  return Status::OK();
}

Status StateStore::Dump(const Plan& plan, const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return DataLoss("--debug-dump-state: cannot create ", dir, ": ", ec.message());
  for (const StateInfo& s : plan.state) {
    const TensorView& v = *Describe(s.name);
    Tensor host(v.dtype, v.dims);
    RETURN_IF_ERROR(CopyToHost(s.name, host.raw()));
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

int64_t StateStore::swapped_bytes(const char* kind) const {
  auto it = swapped_by_kind_.find(kind);
  return it == swapped_by_kind_.end() ? 0 : it->second;
}

}  // namespace dsc
