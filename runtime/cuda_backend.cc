// Finds and loads the CUDA module (runtime/cuda_backend.h) and answers CudaDeviceCount and
// CreateCudaDevice through it; on a host without the NVIDIA driver the module is never opened.
#include "runtime/cuda_backend.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "runtime/device.h"

// Defined when a program links the module's objects itself; else null and the module is opened.
extern "C" const dsc::CudaBackendApi* dsc_cuda_backend_v1() __attribute__((weak));

namespace dsc {
namespace {

inline constexpr const char* kModuleName = "libdsc_cuda.so";

#ifdef DSC_CUDA_ABI
inline constexpr const char* kAbi = DSC_CUDA_ABI;
#else
inline constexpr const char* kAbi = nullptr;
#endif

std::string DlError() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

bool IsFile(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string ProgramDir() {
  std::string buf(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return "";
  buf.resize(static_cast<size_t>(n));
  const size_t slash = buf.rfind('/');
  return slash == std::string::npos ? "" : buf.substr(0, slash);
}

// The bundle's launcher (scripts/bundle.sh) names the host GPU libraries it did not find.
std::string MissingLibrariesHint() {
  const char* missing = std::getenv("DSC_CUDA_LIBS_MISSING");
  if (!missing || !*missing) return "";
  return StrCat(" (the bundle's launcher found no ", missing, " on this host: install the CUDA toolkit or "
                "PyTorch's nvidia packages, or set DSC_CUDA_LIBS to the folder that holds them)");
}

StatusOr<const CudaBackendApi*> Checked(const CudaBackendApi* api, const std::string& where) {
  if (!api) return Internal(where, ": dsc_cuda_backend_v1 returned no entry points");
  if (!kAbi || std::strcmp(api->abi, kAbi) != 0)
    return FailedPrecondition(where, " is the CUDA module of another build (build id ", api->abi, ", this program's ",
                              kAbi ? kAbi : "none", "): use the ", kModuleName, " built with this program");
  return api;
}

// Opens one candidate. Returns nullopt-like (ok, null) when the candidate does not exist, so the
// search goes on; a module that exists but cannot be loaded (a library it needs is missing, a
// symbol is unresolved) ends the search with the loader's message.
StatusOr<const CudaBackendApi*> TryOpen(const std::string& candidate, bool by_name) {
  if (!by_name && !IsFile(candidate)) return static_cast<const CudaBackendApi*>(nullptr);
  void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const std::string error = DlError();
    // The loader's "not found" for the module itself (not for a library it needs).
    if (by_name && error.rfind(StrCat(candidate, ": cannot open shared object file"), 0) == 0)
      return static_cast<const CudaBackendApi*>(nullptr);
    return FailedPrecondition("cannot load the CUDA module ", candidate, ": ", error, MissingLibrariesHint());
  }
  dlerror();
  auto entry = reinterpret_cast<const CudaBackendApi* (*)()>(dlsym(handle, "dsc_cuda_backend_v1"));
  if (!entry) return FailedPrecondition(candidate, " is not a dscompile CUDA module: ", DlError());
  return Checked(entry(), candidate);
}

StatusOr<const CudaBackendApi*> Load() {
  if (dsc_cuda_backend_v1) return Checked(dsc_cuda_backend_v1(), "the CUDA backend linked into this program");
  if (!CudaBackendBuilt())
    return FailedPrecondition("the CUDA backend is not built into this program (nvcc was not found when it was "
                              "configured)");
  if (const char* env = std::getenv("DSC_CUDA_BACKEND"); env && *env) {
    ASSIGN_OR_RETURN(const CudaBackendApi* api, TryOpen(env, /*by_name=*/false));
    if (!api) return FailedPrecondition("DSC_CUDA_BACKEND=", env, ": no such file");
    return api;
  }
  std::vector<std::pair<std::string, bool>> candidates = {{kModuleName, true}};
  if (std::string dir = ProgramDir(); !dir.empty()) candidates.push_back({StrCat(dir, "/", kModuleName), false});
#ifdef DSC_CUDA_MODULE_DIR
  candidates.push_back({StrCat(DSC_CUDA_MODULE_DIR, "/", kModuleName), false});
#endif
  std::string tried;
  for (const auto& [candidate, by_name] : candidates) {
    ASSIGN_OR_RETURN(const CudaBackendApi* api, TryOpen(candidate, by_name));
    if (api) return api;
    tried += StrCat(tried.empty() ? "" : ", ", candidate, by_name ? " on the loader's path" : "");
  }
  return FailedPrecondition("the CUDA module ", kModuleName, " was not found (tried ", tried,
                            "; DSC_CUDA_BACKEND names it explicitly)");
}

}  // namespace

StatusOr<const CudaBackendApi*> LoadCudaBackend() {
  static std::once_flag once;
  static StatusOr<const CudaBackendApi*>* loaded = nullptr;
  std::call_once(once, [] { loaded = new StatusOr<const CudaBackendApi*>(Load()); });
  return *loaded;
}

bool CudaBackendBuilt() { return kAbi != nullptr || dsc_cuda_backend_v1 != nullptr; }

int CudaDeviceCount(std::string* why) {
  if (!CudaBackendBuilt()) {
    if (why) *why = "the CUDA backend is not built into this program";
    return 0;
  }
  // Without the driver there is no GPU, and the module (the CUDA runtime, cuBLASLt, NCCL) is not
  // worth mapping to find that out: the CUDA runtime would fail the same way.
  if (!dsc_cuda_backend_v1 && !dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
    if (why) *why = StrCat("the NVIDIA driver is not installed (", DlError(), ")");
    return 0;
  }
  StatusOr<const CudaBackendApi*> api = LoadCudaBackend();
  if (!api.ok()) {
    if (why) *why = api.status().message();
    return 0;
  }
  return (*api)->device_count(why);
}

StatusOr<std::unique_ptr<Device>> CreateCudaDevice(int ordinal) {
  ASSIGN_OR_RETURN(const CudaBackendApi* api, LoadCudaBackend());
  return api->create_device(ordinal);
}

}  // namespace dsc
