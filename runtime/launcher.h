// `dsrun --nproc N`: starts N local ranks by re-running this same dsrun under Open MPI's mpirun.
//
//   if (nproc > 1 && !LaunchedUnderMpi()) return RelaunchUnderMpirun(nproc, argc, argv, threads);
#pragma once

#include <string>
#include <vector>

#include "ir/status.h"

namespace dsc {

// The mpirun command line that runs `exe` with `args` on `nproc` ranks of this machine, each
// with `threads_per_rank` OpenMP/BLAS threads (0: the cores this process may use / nproc, at
// least 1). Exposed for tests; `mpirun` is the path of the launcher.
std::vector<std::string> MpirunCommand(const std::string& mpirun, int nproc, const std::string& exe,
                                       const std::vector<std::string>& args, int threads_per_rank);

// `argv[1..]` without `--nproc N` / `--nproc=N`.
std::vector<std::string> ArgsWithoutNproc(int argc, char** argv);

// Replaces this process with mpirun running /proc/self/exe on `nproc` ranks with the original
// arguments minus --nproc. Returns only on error (mpirun missing from PATH, exec failure, or a
// relaunched rank that still is not under MPI).
Status RelaunchUnderMpirun(int nproc, int argc, char** argv, int threads_per_rank);

}  // namespace dsc
