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
// least 1), and Open MPI's session directory at `session_dir` (none given when empty). Exposed
// for tests; `mpirun` is the path of the launcher.
std::vector<std::string> MpirunCommand(const std::string& mpirun, int nproc, const std::string& exe,
                                       const std::vector<std::string>& args, int threads_per_rank,
                                       const std::string& session_dir = "");

// Where the mpirun that `dsrun --nproc` becomes (same pid: it execs) keeps Open MPI's session files:
// TMP/dsrun-ompi.UID/PID, so concurrent launches share no directory that Open MPI creates or removes
// (by default every mpirun of a user creates, and the last one out removes, TMP/ompi.HOST.UID, and
// two starting while one ends fail with "File exists"). Creates TMP/dsrun-ompi.UID (mode 0700; it
// stays); Open MPI creates PID and removes it when done. Empty, leaving Open MPI's default, when the
// environment already chooses (OMPI_MCA_orte_top_session_dir, OMPI_MCA_orte_tmpdir_base or
// OMPI_MCA_orte_local_tmpdir_base) or the folder is not usable (not ours, not a directory).
std::string LaunchSessionDir(int pid);

// `argv[1..]` without `--nproc N` / `--nproc=N`.
std::vector<std::string> ArgsWithoutNproc(int argc, char** argv);

// Replaces this process with mpirun running /proc/self/exe on `nproc` ranks with the original
// arguments minus --nproc. Returns only on error (mpirun missing from PATH, exec failure, or a
// relaunched rank that still is not under MPI).
Status RelaunchUnderMpirun(int nproc, int argc, char** argv, int threads_per_rank);

}  // namespace dsc
