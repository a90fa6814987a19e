// The single-rank communicator, the bytes model, the launcher's command line and dsrun --nproc.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <filesystem>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "runtime/communicator.h"
#include "runtime/launcher.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using testing::CommandResult;
using testing::ShellQuote;

TEST(LocalCommunicator, IsOneRankAndCollectivesKeepOrCopyData) {
  std::unique_ptr<Communicator> c = CreateLocalCommunicator();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);

  std::vector<float> x = {1.5f, -2.0f, 3.0f};
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
    auto h = c->AllReduce(x.data(), 3, DType::kFloat32, op);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_TRUE((*h)->Wait().ok());
    EXPECT_EQ(x, (std::vector<float>{1.5f, -2.0f, 3.0f}));
  }
  std::vector<int64_t> i64 = {int64_t{1} << 40, -7};
  ASSERT_TRUE(c->AllReduce(i64.data(), 2, DType::kInt64, ReduceOp::kSum).ok());
  EXPECT_EQ(i64, (std::vector<int64_t>{int64_t{1} << 40, -7}));

  std::vector<float> recv(3, 0.f);
  auto rs = c->ReduceScatter(x.data(), recv.data(), 3, DType::kFloat32, ReduceOp::kAvg);
  ASSERT_TRUE(rs.ok() && (*rs)->Wait().ok());
  EXPECT_EQ(recv, x);
  std::fill(recv.begin(), recv.end(), 0.f);
  auto ag = c->AllGather(x.data(), recv.data(), 3, DType::kFloat32);
  ASSERT_TRUE(ag.ok() && (*ag)->Wait().ok());
  EXPECT_EQ(recv, x);
  // In place: send is the rank's own block of recv.
  ASSERT_TRUE(c->AllGather(recv.data(), recv.data(), 3, DType::kFloat32).ok());
  EXPECT_EQ(recv, x);
  std::vector<uint16_t> half = {1, 2, 3};  // float16 bits: gathers move any dtype
  std::vector<uint16_t> half_out(3);
  ASSERT_TRUE(c->AllGather(half.data(), half_out.data(), 3, DType::kFloat16).ok());
  EXPECT_EQ(half_out, half);
  ASSERT_TRUE(c->Broadcast(x.data(), 3, DType::kFloat32, 0).ok());
  ASSERT_TRUE(c->AllReduce(nullptr, 0, DType::kFloat32, ReduceOp::kSum).ok());  // empty is fine
  EXPECT_TRUE(c->Barrier().ok());
  for (const auto& [kind, bytes] : c->bytes_sent()) EXPECT_EQ(bytes, 0) << kind;
  EXPECT_EQ(c->bytes_sent(), ZeroCollectiveCounts());
  EXPECT_EQ(c->bytes_sent().size(), 5u);
}

TEST(LocalCommunicator, RejectsBadArguments) {
  std::unique_ptr<Communicator> c = CreateLocalCommunicator();
  std::vector<int64_t> i(4);
  std::vector<float> f(4);
  auto avg_int = c->AllReduce(i.data(), 4, DType::kInt64, ReduceOp::kAvg);
  ASSERT_FALSE(avg_int.ok());
  EXPECT_NE(avg_int.status().message().find("avg needs a floating dtype"), std::string::npos);
  auto bytes = c->AllReduce(f.data(), 4, DType::kUInt8, ReduceOp::kSum);  // no reduction on uint8
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(c->AllReduce(f.data(), 2, DType::kBFloat16, ReduceOp::kAvg).ok());  // half reductions are
  EXPECT_FALSE(c->AllReduce(f.data(), -1, DType::kFloat32, ReduceOp::kSum).ok());
  EXPECT_FALSE(c->AllReduce(nullptr, 4, DType::kFloat32, ReduceOp::kSum).ok());
  auto root = c->Broadcast(f.data(), 4, DType::kFloat32, 1);
  ASSERT_FALSE(root.ok());
  EXPECT_NE(root.status().message().find("root 1"), std::string::npos);
}

// The numbers in communicator.h's table, worked by hand.
TEST(BytesModel, RingFormulas) {
  EXPECT_EQ(AllReduceBytesSent(4000, 1), 0);
  EXPECT_EQ(AllReduceBytesSent(4000, 2), 4000);
  EXPECT_EQ(AllReduceBytesSent(4000, 4), 6000);
  EXPECT_EQ(AllReduceBytesSent(4, 3), 5);  // 2·2·4/3 = 5.33, rounded down
  EXPECT_EQ(ReduceScatterBytesSent(1200, 3), 800);
  EXPECT_EQ(AllGatherBytesSent(1200, 4), 900);
  EXPECT_EQ(AllGatherBytesSent(1200, 1), 0);
  EXPECT_EQ(BroadcastBytesSent(100, 4, true), 100);
  EXPECT_EQ(BroadcastBytesSent(100, 4, false), 0);
  EXPECT_EQ(BroadcastBytesSent(100, 1, true), 0);
}

// Scoped environment changes for the launcher probes.
class EnvGuard {
 public:
  explicit EnvGuard(std::vector<std::string> names) : names_(std::move(names)) {
    for (const std::string& n : names_) {
      const char* v = std::getenv(n.c_str());
      saved_.push_back(v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(n.c_str());
    }
  }
  ~EnvGuard() {
    for (size_t i = 0; i < names_.size(); ++i) {
      if (saved_[i]) setenv(names_[i].c_str(), saved_[i]->c_str(), 1);
      else unsetenv(names_[i].c_str());
    }
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::optional<std::string>> saved_;
};

TEST(Launcher, DetectsLaunchersFromTheirEnvironment) {
  EnvGuard guard({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID", "SLURM_NTASKS",
                  "DSC_COLLECTIVE_TIMEOUT_S"});
  EXPECT_FALSE(LaunchedUnderMpi());
  EXPECT_EQ(LauncherWorldSize(), 1);
  setenv("SLURM_PROCID", "0", 1);  // a Slurm allocation alone is not a launch
  EXPECT_FALSE(LaunchedUnderMpi());
  setenv("SLURM_NTASKS", "8", 1);
  EXPECT_TRUE(LaunchedUnderMpi());
  EXPECT_EQ(LauncherWorldSize(), 8);
  setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
  EXPECT_EQ(LauncherWorldSize(), 3);
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("SLURM_PROCID");
  unsetenv("SLURM_NTASKS");
  setenv("PMIX_RANK", "1", 1);
  EXPECT_TRUE(LaunchedUnderMpi());
  EXPECT_EQ(LauncherWorldSize(), 0);  // PMIx does not say

  EXPECT_EQ(*CollectiveTimeoutSeconds(), 300.0);
  setenv("DSC_COLLECTIVE_TIMEOUT_S", "2.5", 1);
  EXPECT_EQ(*CollectiveTimeoutSeconds(), 2.5);
  setenv("DSC_COLLECTIVE_TIMEOUT_S", "soon", 1);
  ASSERT_FALSE(CollectiveTimeoutSeconds().ok());
  EXPECT_NE(CollectiveTimeoutSeconds().status().message().find("DSC_COLLECTIVE_TIMEOUT_S"), std::string::npos);
}

TEST(Launcher, MpirunCommandDropsNprocAndSetsThreads) {
  std::vector<std::string> argv_s = {"dsrun", "p.dsplan", "--nproc", "4", "--data", "d", "--nproc=4", "--steps", "3"};
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  std::vector<std::string> args = ArgsWithoutNproc(static_cast<int>(argv.size()), argv.data());
  EXPECT_EQ(args, (std::vector<std::string>{"p.dsplan", "--data", "d", "--steps", "3"}));

  std::vector<std::string> cmd = MpirunCommand("/usr/bin/mpirun", 4, "/x/dsrun", args, 3);
  std::string line;
  for (const std::string& s : cmd) line += s + " ";
  EXPECT_EQ(cmd.front(), "/usr/bin/mpirun");
  for (const char* part : {"--oversubscribe ", "--bind-to none ", "-np 4 ", "-x OMP_NUM_THREADS=3 ",
                           "-x OPENBLAS_NUM_THREADS=3 ", "/x/dsrun p.dsplan --data d --steps 3 "})
    EXPECT_NE(line.find(part), std::string::npos) << part << " in " << line;
  EXPECT_EQ(line.find("--allow-run-as-root") != std::string::npos, geteuid() == 0) << line;
  EXPECT_EQ(line.find("--tag-output"), std::string::npos);
  EXPECT_EQ(line.find("--mca"), std::string::npos) << line;  // no session directory given
  std::vector<std::string> own = MpirunCommand("mpirun", 2, "dsrun", {"p"}, 1, "/t/dsrun-ompi.0/77");
  line.clear();
  for (const std::string& s : own) line += s + " ";
  EXPECT_NE(line.find("-np 2 --mca orte_top_session_dir /t/dsrun-ompi.0/77 "), std::string::npos) << line;
  // Without --threads: the cores shared out, at least one each.
  std::vector<std::string> many = MpirunCommand("mpirun", 1000, "dsrun", {}, 0);
  EXPECT_NE(std::find(many.begin(), many.end(), "OMP_NUM_THREADS=1"), many.end());
}

using testing::ScopedEnv;

TEST(Launcher, EachLaunchHasItsOwnSessionDirUnderTmpdir) {
  testing::TempDir tmp;
  ScopedEnv tmpdir("TMPDIR", tmp.path().c_str());
  std::optional<ScopedEnv> cleared[3];
  const char* chosen[] = {"OMPI_MCA_orte_top_session_dir", "OMPI_MCA_orte_tmpdir_base", "OMPI_MCA_orte_local_tmpdir_base"};
  for (int i = 0; i < 3; ++i) cleared[i].emplace(chosen[i], nullptr);
  const std::string parent = tmp.File("dsrun-ompi." + std::to_string(geteuid()));
  EXPECT_EQ(LaunchSessionDir(4242), parent + "/4242");
  EXPECT_EQ(LaunchSessionDir(4243), parent + "/4243");  // the parent already there is fine
  struct stat st;
  ASSERT_EQ(stat(parent.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(std::filesystem::exists(parent + "/4242"));  // Open MPI makes (and removes) that one

  // What the user's environment chose stays: dsrun gives mpirun no directory of its own.
  for (const char* var : chosen) {
    ScopedEnv user(var, "/somewhere");
    EXPECT_EQ(LaunchSessionDir(4242), "") << var;
  }
  // A file where the folder should be (someone else's, say): Open MPI's default.
  std::filesystem::remove_all(parent);
  testing::WriteFileOrDie(parent, "");
  EXPECT_EQ(LaunchSessionDir(4242), "");
}

// dsrun --nproc end to end. Plans cannot be compiled for more than one rank yet, so the
// multi-rank run checks the world-size error: every rank must report it and the job must end.
class DsrunNproc : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    CommandResult r = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(kGpt) + " --config " +
                                          ShellQuote(kConfig) + " -q -o " + ShellQuote(dir_->File("p")));
    ASSERT_EQ(r.rc, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    if (testing::RunCommand("command -v mpirun", false).rc != 0) GTEST_SKIP() << "mpirun not on PATH (openmpi-bin)";
  }
  // The tests' own mpirun, with an Open MPI session directory of its own (tests/CMakeLists.txt says why).
  static std::string Mpirun(const std::string& name) {
    return "env OMPI_MCA_orte_top_session_dir=" + ShellQuote(dir_->File("ompi-" + name)) +
           " mpirun --allow-run-as-root --oversubscribe ";
  }
  static std::string Dsrun(const std::string& args) {
    return ShellQuote(DSRUN_PATH) + " " + ShellQuote(dir_->File("p")) + " --data " + ShellQuote(kData) + " " + args;
  }
  static inline testing::TempDir* dir_ = nullptr;
  static inline const std::string kGpt = DSC_SOURCE_DIR "/models/gpt/gpt.onnx";
  static inline const std::string kConfig = DSC_SOURCE_DIR "/configs/gpt.json";
  static inline const std::string kData = DSC_SOURCE_DIR "/models/gpt/data";
};

TEST_F(DsrunNproc, WorldSizeMismatchFailsOnEveryRankWithoutHanging) {
  const auto t0 = std::chrono::steady_clock::now();
  testing::TempDir tmp;  // the launch's Open MPI session directory goes here, and goes away after
  CommandResult r = testing::RunCommand("TMPDIR=" + ShellQuote(tmp.path()) + " timeout 60 " + Dsrun("--nproc 2 --steps 2"));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_NE(r.rc, 124) << "timed out\n" << r.output;
  EXPECT_LT(s, 60);
  const std::string msg = "the plan was compiled for 1 ranks but dsrun runs on 2 (use dscompile --world-size 2)";
  EXPECT_NE(r.output.find("rank 0: " + msg), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1: " + msg), std::string::npos) << r.output;
  const std::filesystem::path sessions = tmp.File("dsrun-ompi." + std::to_string(geteuid()));
  EXPECT_TRUE(std::filesystem::is_directory(sessions));
  EXPECT_TRUE(std::filesystem::is_empty(sessions)) << "mpirun left its session directory in " << sessions;
}

TEST_F(DsrunNproc, OneRankUnderMpirunTrainsAndWritesMetricsOnce) {
  const std::string metrics = dir_->File("m.jsonl");
  CommandResult r = testing::RunCommand("timeout 120 " + Mpirun("one-rank") + "-np 1 " +
                                        Dsrun("--steps 3 --metrics " + ShellQuote(metrics)));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("step      3  loss"), std::string::npos) << r.output;
  std::ifstream in(metrics);
  int lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  EXPECT_EQ(lines, 3);
}

TEST_F(DsrunNproc, NprocMustMatchTheLauncher) {
  CommandResult r = testing::RunCommand("timeout 60 " + Mpirun("nproc-3") + "-np 2 " +
                                        Dsrun("--nproc 3 --steps 1"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("--nproc 3 but the launcher started 2 ranks"), std::string::npos) << r.output;
  CommandResult zero = testing::RunCommand(Dsrun("--nproc 0"));
  EXPECT_NE(zero.output.find("--nproc must be at least 1"), std::string::npos) << zero.output;
  CommandResult no_mpirun = testing::RunCommand("PATH=/nonexistent " + Dsrun("--nproc 2"));
  EXPECT_NE(no_mpirun.rc, 0);
  EXPECT_NE(no_mpirun.output.find("install the package openmpi-bin"), std::string::npos) << no_mpirun.output;
}

}  // namespace
}  // namespace dsc
