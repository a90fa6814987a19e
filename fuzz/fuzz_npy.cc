// libFuzzer target: .npy bytes through the parser dsrun's data loader uses (runtime/npy.h).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

#include "runtime/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  dsc::StatusOr<dsc::Tensor> t = dsc::ParseNpy(bytes, "fuzz.npy");
  if (!t.ok()) return 0;
  // A tensor that claims more bytes than the file holds would have been read past its end.
  if (t->nbytes() > size) {
    std::cerr << "fuzz_npy: a " << t->nbytes() << "-byte tensor from a " << size << "-byte file\n";
    std::abort();
  }
  return 0;
}
