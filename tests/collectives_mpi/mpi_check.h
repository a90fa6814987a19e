// The checks of the MPI test programs (run under mpirun, not GoogleTest): a failed CHECK_TRUE
// prints the rank, file, line and message and counts; Verdict() sums the counts over the ranks.
//
//   std::unique_ptr<Communicator> comm = JoinMpiJob();
//   if (!comm) return 1;
//   CheckSomething(comm.get());
//   return Verdict(comm.get());
#pragma once

#include <cstdio>
#include <memory>

#include "ir/status.h"
#include "runtime/communicator.h"

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

// The job's communicator (null after printing why it could not join); sets g_rank.
inline std::unique_ptr<Communicator> JoinMpiJob() {
  auto comm = CreateMpiCommunicator();
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
    return nullptr;
  }
  g_rank = (*comm)->rank();
  if ((*comm)->size() < 2) std::fprintf(stderr, "rank %d: warning: only %d rank(s)\n", g_rank, (*comm)->size());
  return std::move(*comm);
}

// Every rank's exit status: 0 when no check failed on any rank; rank 0 prints the count.
inline int Verdict(Communicator* comm) {
  int64_t failures = g_failures;
  auto h = comm->AllReduce(&failures, 1, DType::kInt64, ReduceOp::kSum);
  if (!h.ok() || !(*h)->Wait().ok()) return 1;
  if (g_rank == 0)
    std::printf("%s: %lld failed checks over %d ranks\n", failures ? "FAIL" : "PASS", static_cast<long long>(failures),
                comm->size());
  return failures ? 1 : 0;
}

}  // namespace dsc
