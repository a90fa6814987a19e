// The checks of the MPI test programs (run under mpirun, not GoogleTest): a failed CHECK_TRUE
// prints the rank, file, line and message and counts; main() sums g_failures over the ranks.
#pragma once

#include <cstdio>

#include "ir/status.h"

namespace dsc {

inline int g_failures = 0;
inline int g_rank = 0;

#define CHECK_TRUE(cond, ...)                                                                              \
  do {                                                                                                     \
    if (!(cond)) {                                                                                         \
      ++::dsc::g_failures;                                                                                 \
      std::fprintf(stderr, "rank %d: %s:%d: check failed: %s: %s\n", ::dsc::g_rank, __FILE__, __LINE__, #cond, \
                   ::dsc::StrCat(__VA_ARGS__).c_str());                                                    \
    }                                                                                                      \
  } while (0)

}  // namespace dsc
