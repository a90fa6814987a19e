// Crash safety of checkpoint saves (issue 12): dsrun loses a rank to SIGKILL at every crash point
// of the commit protocol (DSC_DEBUG_KILL_IN_SAVE, runtime/checkpoint_format.h), on 1 and 2 ranks,
// and at random moments while it saves every step. After each kill `latest` names a complete
// checkpoint, ResolveCheckpoint returns exactly the one the protocol promises and it verifies,
// no .tmp-* folder ever opens, and a resume into the same folder saves over the leftovers and
// ends on the uninterrupted run's losses, bit for bit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/status.h"
#include "runtime/checkpoint_format.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

const fs::path kModels = fs::path(DSC_SOURCE_DIR) / "models";
const fs::path kData = kModels / "mlp" / "data";

// The crash points in the order a rank passes them in one save (checkpoint_format.h); rank 0
// passes all of them, the other ranks the first four. `resolves` is the step ResolveCheckpoint
// must return after a kill in the save of step 4 (with global_step2 complete), `left` a path the
// kill must leave behind (R: the killed rank).
struct CrashPoint {
  const char* name;
  int resolves;
  const char* left;
};
constexpr CrashPoint kPoints[] = {
    {"tmp-created", 2, ".tmp-global_step4"},
    {"rank-half", 2, ".tmp-global_step4/rank-R.safetensors.tmp"},
    {"rank-synced", 2, ".tmp-global_step4/rank-R.safetensors.tmp"},
    {"rank-done", 2, ".tmp-global_step4/rank-R.safetensors"},
    {"manifest-half", 2, ".tmp-global_step4/manifest.json.tmp"},
    {"manifest-synced", 2, ".tmp-global_step4/manifest.json.tmp"},
    {"manifest-done", 2, ".tmp-global_step4/manifest.json"},
    // The folder is in place, but `latest` still names global_step2, which is complete.
    {"renamed", 2, "global_step4/manifest.json"},
    {"latest-half", 2, "latest.tmp"},
    {"latest-synced", 2, "latest.tmp"},
    {"latest-moved", 4, "global_step4/manifest.json"},
};
constexpr int kRankZeroPoints = 11, kOtherRankPoints = 4;

std::string ReadBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// Every metrics line's step and loss.
std::vector<std::pair<int, double>> Losses(const std::string& metrics) {
  std::vector<std::pair<int, double>> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const json m = json::parse(line);
    out.emplace_back(m.at("step").get<int>(), m.at("loss").get<double>());
  }
  return out;
}

// One world size: the mlp compiled at ZeRO-2 (ranks write different shards) and its losses
// uninterrupted.
struct Job {
  int world = 1;
  std::string plan;
  std::vector<std::pair<int, double>> reference;  // step 1.. of an uninterrupted run

  std::string Dsrun(const std::string& args, const std::string& metrics) const {
    return ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " + std::to_string(world) + " --data " +
           ShellQuote(kData.string()) + " -q --threads 1 --metrics " + ShellQuote(metrics) + " " + args;
  }
};

Job MakeJob(const testing::TempDir& tmp, int world, int steps) {
  Job job;
  job.world = world;
  const std::string name = StrCat("w", world);
  job.plan = tmp.File(name + ".dsplan");
  const fs::path cfg = kModels / "zero_configs" / StrCat("stage2_w", world, ".json");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                        ShellQuote((kModels / "mlp" / "mlp.onnx").string()) + " --config " +
                                        ShellQuote(cfg.string()) + " --world-size " + std::to_string(world) +
                                        " -q -o " + ShellQuote(job.plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  const std::string metrics = tmp.File(name + "-ref.jsonl");
  CommandResult r = testing::RunCommand(job.Dsrun(StrCat("--steps ", steps), metrics));
  EXPECT_EQ(r.rc, 0) << r.output;
  job.reference = Losses(metrics);
  EXPECT_EQ(job.reference.size(), static_cast<size_t>(steps));
  return job;
}

// What every crash must leave: `latest` names a complete checkpoint, which ResolveCheckpoint
// returns and which verifies; every published folder verifies; no .tmp-* folder opens. Returns
// the resolved step (-1 after a failed check).
int64_t CheckAfterCrash(const std::string& dir, const std::string& what) {
  auto resolved = ResolveCheckpoint(dir);
  EXPECT_TRUE(resolved.ok()) << what << ": " << resolved.status().ToString();
  if (!resolved.ok()) return -1;
  EXPECT_EQ(fs::path(*resolved).filename().string(), ReadBytes(fs::path(dir) / "latest")) << what;
  auto ckpt = Checkpoint::Open(*resolved);
  EXPECT_TRUE(ckpt.ok()) << what << ": " << ckpt.status().ToString();
  if (!ckpt.ok()) return -1;
  const Status verified = ckpt->VerifyAll();
  EXPECT_TRUE(verified.ok()) << what << ": " << verified.ToString();
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    auto opened = Checkpoint::Open(e.path().string());
    if (name.rfind(".tmp-", 0) == 0) {
      EXPECT_FALSE(opened.ok()) << what << ": " << name << " opened";
      EXPECT_FALSE(ResolveCheckpoint(e.path().string()).ok()) << what << ": " << name << " resolved";
    } else {
      EXPECT_TRUE(opened.ok() && opened->VerifyAll().ok()) << what << ": published " << name << " does not verify";
    }
  }
  return verified.ok() ? ckpt->manifest().meta.step : -1;
}

// Resumes from `dir` into `dir` (saving every `every` steps over whatever the crash left) up to
// the reference's last step; the losses must be the reference's exactly.
void ExpectResumeFinishes(const Job& job, const std::string& dir, int64_t from, int every, const std::string& metrics,
                          const std::string& what) {
  const int steps = static_cast<int>(job.reference.size());
  CommandResult r = testing::RunCommand(job.Dsrun(
      StrCat("--steps ", steps, " --resume ", ShellQuote(dir), " --save-dir ", ShellQuote(dir), " --save-every ", every),
      metrics));
  ASSERT_EQ(r.rc, 0) << what << "\n" << r.output;
  const auto got = Losses(metrics);
  ASSERT_EQ(got.size(), static_cast<size_t>(steps - from)) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, from + 1 + static_cast<int64_t>(i)) << what;
    EXPECT_EQ(got[i].second, job.reference[static_cast<size_t>(from) + i].second) << what << ": step " << got[i].first;
  }
  EXPECT_EQ(ReadBytes(fs::path(dir) / "latest"), StrCat("global_step", steps)) << what;
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos)
        << what << ": " << e.path() << " is left after a clean resume";
  auto four = Checkpoint::Open((fs::path(dir) / "global_step4").string());
  EXPECT_TRUE(four.ok() && four->VerifyAll().ok() && four->manifest().meta.step == 4) << what;
}

class KillAtEveryCrashPoint : public ::testing::TestWithParam<std::pair<int, int>> {};  // world, rank

// `dsrun --save-every 2 --steps 8` with the rank killed at each of its crash points of the save
// of step 4 (the 2nd), then the checks and the resume.
TEST_P(KillAtEveryCrashPoint, NewestCompleteCheckpointLoadsAndTheResumeMatches) {
  const auto [world, rank] = GetParam();
  testing::TempDir tmp;
  const Job job = MakeJob(tmp, world, 8);
  const int per_save = rank == 0 ? kRankZeroPoints : kOtherRankPoints;
  for (int k = 0; k < per_save; ++k) {
    const CrashPoint& point = kPoints[k];
    const std::string what = StrCat(world, " rank(s), rank ", rank, " killed at ", point.name);
    const std::string dir = tmp.File(point.name);
    const int n = per_save + k + 1;
    CommandResult killed = testing::RunCommand(
        StrCat("DSC_DEBUG_KILL_IN_SAVE=", n, "@", rank, " ",
               job.Dsrun("--steps 8 --save-dir " + ShellQuote(dir) + " --save-every 2", tmp.File("killed.jsonl"))));
    EXPECT_NE(killed.rc, 0) << what << "\n" << killed.output;
    ASSERT_NE(killed.output.find(StrCat("rank ", rank, " killed at crash point ", n, " (", point.name,
                                        ") of saving global_step4")),
              std::string::npos)
        << what << "\n" << killed.output;
    EXPECT_TRUE(fs::exists(fs::path(dir) / Replace(point.left, "R", std::to_string(rank))))
        << what << ": " << point.left << " is missing";
    EXPECT_FALSE(fs::exists(fs::path(dir) / "global_step6")) << what;
    EXPECT_EQ(CheckAfterCrash(dir, what), point.resolves) << what;
    if (::testing::Test::HasFailure()) return;
    ExpectResumeFinishes(job, dir, point.resolves, 2, tmp.File("resumed.jsonl"), what);
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, KillAtEveryCrashPoint,
                         ::testing::Values(std::pair{1, 0}, std::pair{2, 0}, std::pair{2, 1}),
                         [](const auto& info) { return StrCat("w", info.param.first, "_rank", info.param.second); });

// A malformed DSC_DEBUG_KILL_IN_SAVE fails the save (every rank, through the commit's agreement)
// rather than silently testing nothing.
TEST(KillInSave, AMalformedValueFailsTheSave) {
  testing::TempDir tmp;
  const Job job = MakeJob(tmp, 1, 2);
  CommandResult r = testing::RunCommand(
      "DSC_DEBUG_KILL_IN_SAVE=3 " +
      job.Dsrun("--steps 2 --save-at-end --save-dir " + ShellQuote(tmp.File("ckpt")), tmp.File("m.jsonl")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("DSC_DEBUG_KILL_IN_SAVE=\"3\" must be N@R"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp.File("ckpt/latest")));
}

// The process of `rank` in the job whose command line holds `marker` (0 until it exists): the
// launcher gives each rank OMPI_COMM_WORLD_RANK; a 1-rank job is dsrun itself.
pid_t FindRank(const std::string& marker, int world, int rank) {
  // A process that exits while its /proc files are read makes libstdc++'s filebuf throw (ESRCH,
  // "No such process"): such a process is not the one we look for.
  auto read_proc = [](const fs::path& p) {
    try {
      return ReadBytes(p);
    } catch (const std::exception&) {
      return std::string();
    }
  };
  const std::string nul(1, '\0');
  std::error_code ec;  // processes come and go while we list them
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = read_proc(e.path() / "cmdline");
    if (cmdline.find(marker) == std::string::npos) continue;
    if (fs::path(cmdline.substr(0, cmdline.find('\0'))).filename() != "dsrun") continue;  // mpirun, sh
    const std::string env = nul + read_proc(e.path() / "environ");
    const bool ours = world == 1 ? env.find(nul + "OMPI_COMM_WORLD_RANK=") == std::string::npos
                                 : env.find(StrCat(nul, "OMPI_COMM_WORLD_RANK=", rank, nul)) != std::string::npos;
    if (ours) return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}

// Starts `command` under /bin/sh without waiting; returns its pid (exec'd: the job's own).
pid_t Start(const std::string& command) {
  const pid_t child = fork();
  if (child == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return child;
}

using Clock = std::chrono::steady_clock;

// Polls until `child` exits, calling `tick` (which returns true to stop polling) every half
// millisecond; returns the exit status, or -1 when `tick` stopped first.
template <typename Tick>
int PollUntilExit(pid_t child, Tick&& tick) {
  for (;;) {
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == child) return status;
    if (tick()) return -1;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

// `dsrun --save-every 1` with one rank SIGKILLed at a random moment between its first complete
// save and the end of the run: whatever the moment, the same checks hold and the resume matches.
TEST(KillAtRandomMoments, WhileSavingEveryStep) {
  testing::TempDir tmp;
  constexpr int kSteps = 40, kKills = 2, kTries = 8;
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(StrCat("random seed ", seed));
  std::mt19937 rng(seed);
  for (const int world : {2, 1}) {
    const Job job = MakeJob(tmp, world, kSteps);
    auto command = [&](const std::string& dir) {
      return job.Dsrun(StrCat("--steps ", kSteps, " --save-dir ", ShellQuote(dir), " --save-every 1"),
                       dir + ".jsonl") +
             " > " + ShellQuote(dir + ".log") + " 2>&1";
    };
    // How long an uninterrupted run goes on after its first save: the window to kill in.
    const std::string ref = tmp.File(StrCat("w", world, "-window"));
    const pid_t ref_pid = Start(command(ref));
    ASSERT_GT(ref_pid, 0);
    Clock::time_point first_save{};
    const int ref_status = PollUntilExit(ref_pid, [&] {
      if (first_save == Clock::time_point{} && fs::exists(fs::path(ref) / "latest")) first_save = Clock::now();
      return false;
    });
    ASSERT_TRUE(WIFEXITED(ref_status) && WEXITSTATUS(ref_status) == 0) << ReadBytes(ref + ".log");
    ASSERT_NE(first_save, Clock::time_point{});
    const double window_s = std::chrono::duration<double>(Clock::now() - first_save).count();
    // A busy machine can make a run shorter after its first save than the window measured here: a
    // run that ends before its kill halves the window the next delay is drawn from.
    double upper_s = window_s;

    for (const int rank : world == 2 ? std::vector<int>{1, 0} : std::vector<int>{0}) {
      int kills = 0;
      for (int attempt = 0; attempt < kTries && kills < kKills; ++attempt) {
        const double delay_s = std::uniform_real_distribution<double>(0.0, upper_s)(rng);
        const std::string what = StrCat(world, " rank(s), rank ", rank, " killed ", delay_s, " s after the first save");
        const std::string dir = tmp.File(StrCat("w", world, "r", rank, "a", attempt));
        const pid_t child = Start(command(dir));
        ASSERT_GT(child, 0);
        pid_t victim = 0;
        Clock::time_point first{};
        bool sent = false;
        int status = PollUntilExit(child, [&] {
          if (victim == 0) victim = FindRank(dir + ".jsonl", world, rank);
          if (first == Clock::time_point{} && fs::exists(fs::path(dir) / "latest")) first = Clock::now();
          if (victim == 0 || first == Clock::time_point{} ||
              std::chrono::duration<double>(Clock::now() - first).count() < delay_s)
            return false;
          sent = kill(victim, SIGKILL) == 0;
          return true;
        });
        if (status == -1) {
          ASSERT_EQ(waitpid(child, &status, 0), child);
        }
        if (!sent || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {  // the run ended first
          upper_s /= 2;
          continue;
        }
        ++kills;
        const int64_t step = CheckAfterCrash(dir, what);
        ASSERT_GE(step, 1) << what << "\n" << ReadBytes(dir + ".log");
        if (step < kSteps) ExpectResumeFinishes(job, dir, step, 1, dir + "-resumed.jsonl", what);
      }
      EXPECT_EQ(kills, kKills) << world << " rank(s), rank " << rank << ": the runs ended before the kills";
    }
  }
}

}  // namespace
}  // namespace dsc
