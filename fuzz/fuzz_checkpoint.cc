// libFuzzer target: the checkpoint files dsrun will read (runtime/checkpoint_format.h,
// runtime/safetensors.h). Input starting like a manifest.json goes through ParseManifest with its
// self-checksum recomputed, so the fuzzer gets past the checksum to the structure checks; anything
// else is a safetensors rank file: the header's validation, every tensor read, the data checksums.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "runtime/checkpoint_format.h"
#include "runtime/safetensors.h"

namespace {

// One scratch file per fuzzing process: SafetensorsFile reads a path.
const std::string& ScratchPath() {
  static const std::string path = [] {
    char name[] = "/tmp/fuzz_checkpoint_XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) {
      std::perror("fuzz_checkpoint: mkstemp");
      std::abort();
    }
    close(fd);
    return std::string(name);
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  static const std::string kPrefix = "{\"manifest_crc32c\": \"";
  if (bytes.rfind(kPrefix, 0) == 0 && bytes.size() >= kPrefix.size() + 8) {
    bytes.replace(kPrefix.size(), 8, "00000000");
    bytes.replace(kPrefix.size(), 8, dsc::Crc32cHex(dsc::Crc32c(bytes.data(), bytes.size())));
    (void)dsc::ParseManifest(bytes, "fuzz/manifest.json");
    return 0;
  }
  {
    std::ofstream out(ScratchPath(), std::ios::binary | std::ios::trunc);  // no fsync: a scratch file
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return 0;
  }
  dsc::StatusOr<dsc::SafetensorsFile> f = dsc::SafetensorsFile::Open(ScratchPath());
  if (!f.ok()) return 0;
  for (const dsc::SafetensorsEntry& e : f->entries()) {
    dsc::StatusOr<dsc::Tensor> t = f->ReadTensor(e.name);
    // Open checked every tensor against the file's size: none can claim more bytes than it holds.
    if (t.ok() && t->nbytes() > size) {
      std::cerr << "fuzz_checkpoint: a " << t->nbytes() << "-byte tensor from a " << size << "-byte file\n";
      std::abort();
    }
  }
  (void)f->VerifyData();
  return 0;
}
