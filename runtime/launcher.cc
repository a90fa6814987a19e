// Relaunching dsrun under mpirun for `--nproc N`.
#include "runtime/launcher.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

namespace dsc {
namespace {

// Set on the ranks we start, so a rank that somehow sees no launcher fails instead of relaunching
// again (which would fork mpiruns without end).
constexpr const char* kRelaunchedVar = "DSC_RELAUNCHED_BY_DSRUN";

int UsableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= dirs.size()) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(begin, end - begin);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return "";
}

}  // namespace

std::vector<std::string> ArgsWithoutNproc(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--nproc") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

std::string LaunchSessionDir(int pid) {
  for (const char* var : {"OMPI_MCA_orte_top_session_dir", "OMPI_MCA_orte_tmpdir_base", "OMPI_MCA_orte_local_tmpdir_base"})
    if (const char* v = std::getenv(var); v && *v) return "";
  std::error_code ec;
  std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);  // $TMPDIR, as Open MPI's default
  if (ec) tmp = "/tmp";
  const std::string parent = (tmp / ("dsrun-ompi." + std::to_string(geteuid()))).string();
  // Another user may have made it first in a shared /tmp: only a real directory of ours will do.
  if (mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) return "";
  struct stat st;
  if (lstat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) return "";
  return parent + "/" + std::to_string(pid);
}

std::vector<std::string> MpirunCommand(const std::string& mpirun, int nproc, const std::string& exe,
                                       const std::vector<std::string>& args, int threads_per_rank,
                                       const std::string& session_dir) {
  const int threads = threads_per_rank > 0 ? threads_per_rank : std::max(1, UsableCores() / nproc);
  std::vector<std::string> cmd = {mpirun};
  // Open MPI refuses root unless told; containers and CI run as root.
  if (geteuid() == 0) cmd.push_back("--allow-run-as-root");
  // More ranks than cores is normal for tests (4 ranks on 2 cores); binding would pin them all
  // to the same cores and fight our own OpenMP threads.
  for (const char* a : {"--oversubscribe", "--bind-to", "none", "-np"}) cmd.push_back(a);
  cmd.push_back(std::to_string(nproc));
  if (!session_dir.empty()) {
    for (const char* a : {"--mca", "orte_top_session_dir"}) cmd.push_back(a);
    cmd.push_back(session_dir);
  }
  for (const char* var : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}) {
    cmd.push_back("-x");
    cmd.push_back(std::string(var) + "=" + std::to_string(threads));
  }
  cmd.push_back("-x");
  cmd.push_back(std::string(kRelaunchedVar) + "=1");
  cmd.push_back(exe);
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

Status RelaunchUnderMpirun(int nproc, int argc, char** argv, int threads_per_rank) {
  if (nproc < 2) return Internal("RelaunchUnderMpirun: ", nproc, " ranks need no launcher");
  if (const char* v = std::getenv(kRelaunchedVar); v && *v)
    return FailedPrecondition("dsrun was started by mpirun for --nproc but sees no MPI launcher environment "
                              "(OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK); is another MPI's mpirun first on PATH?");
  const std::string mpirun = FindOnPath("mpirun");
  if (mpirun.empty())
    return NotFound("--nproc ", nproc, " needs mpirun, which is not on PATH (install the package openmpi-bin)");
  // mpirun starts the ranks from its own daemons, where /proc/self/exe is not dsrun: resolve it now.
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Internal("cannot resolve /proc/self/exe: ", ec.message());
  std::vector<std::string> cmd =
      MpirunCommand(mpirun, nproc, exe.string(), ArgsWithoutNproc(argc, argv), threads_per_rank,
                    LaunchSessionDir(static_cast<int>(getpid())));
  std::vector<char*> cargv;
  for (std::string& s : cmd) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  std::cout.flush();
  std::cerr.flush();
  execv(mpirun.c_str(), cargv.data());
  return Internal("exec ", mpirun, " failed: ", std::strerror(errno));
}

}  // namespace dsc
