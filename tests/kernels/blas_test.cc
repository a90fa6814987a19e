// The BLAS the kernels link: which one and which kernel set it runs, and the warning when its
// kernels are narrower than the CPU's vector units.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "ir/status.h"
#include "kernels/cpu/blas.h"

namespace dsc::cpu {
namespace {

TEST(Blas, DescriptionNamesTheLibraryAndItsKernels) {
  const std::string text = BlasDescription();
  EXPECT_EQ(text.rfind("OpenBLAS 0.3.", 0), 0u) << text;
  EXPECT_NE(text.find(StrCat(", ", openblas_get_corename(), " kernels")), std::string::npos) << text;
}

// On a CPU with AVX2 or AVX-512, the linked OpenBLAS (a release that knows current CPUs) picks
// kernels that use them without OPENBLAS_CORETYPE: the reason it replaced Debian's 0.3.21.
TEST(Blas, KernelsMatchThisCpu) {
  __builtin_cpu_init();
  EXPECT_EQ(BlasKernelWarning(openblas_get_corename(), __builtin_cpu_supports("avx512f"),
                              __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")),
            "")
      << "corename " << openblas_get_corename() << "; OPENBLAS_CORETYPE="
      << (std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(unset)");
}

TEST(Blas, WarnsWhenKernelsFallBehindTheCpu) {
  struct Case {
    const char* corename;
    bool avx512, avx2;
    const char* expect;  // a substring of the warning; "" for none
  };
  const Case cases[] = {
      {"Prescott", true, true, "has AVX-512 but OpenBLAS chose its Prescott kernels"},
      {"Haswell", true, true, "OPENBLAS_CORETYPE=SkylakeX"},
      {"SkylakeX", true, true, ""},
      {"COOPERLAKE", true, true, ""},  // core names compare without case
      {"SapphireRapids", true, true, ""},
      {"Prescott", false, true, "has AVX2 but OpenBLAS chose its Prescott kernels"},
      {"Sandybridge", false, true, "OPENBLAS_CORETYPE=Haswell"},
      {"Zen", false, true, ""},
      {"Haswell", false, true, ""},
      {"Prescott", false, false, ""},  // nothing wider to use
      {"Nehalem", false, false, ""},
  };
  for (const Case& c : cases) {
    const std::string w = BlasKernelWarning(c.corename, c.avx512, c.avx2);
    SCOPED_TRACE(StrCat(c.corename, " avx512=", c.avx512, " avx2=", c.avx2, ": '", w, "'"));
    if (*c.expect == '\0') {
      EXPECT_EQ(w, "");
    } else {
      EXPECT_NE(w.find(c.expect), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace dsc::cpu
