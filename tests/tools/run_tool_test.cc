// RunTool, the top-level handler of every tool: exceptions become "TOOL: error: ..." and exit 1.
#include "tools/cli_args.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <new>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

namespace dsc {
namespace {

// Runs `body` under RunTool; returns the exit code and what went to standard error.
std::pair<int, std::string> RunGuarded(const std::function<int()>& body, std::string* seen = nullptr) {
  ::testing::internal::CaptureStderr();
  const int rc = RunTool("tool", body, [&](const std::string& what) {
    if (seen) *seen = what;
  });
  return {rc, ::testing::internal::GetCapturedStderr()};
}

TEST(RunTool, PassesTheBodysExitCodeThrough) {
  EXPECT_EQ(RunGuarded([] { return 0; }).first, 0);
  EXPECT_EQ(RunGuarded([] { return 2; }).first, 2);
}

TEST(RunTool, EveryExceptionBecomesAnErrorLine) {
  auto [rc, err] = RunGuarded([]() -> int { throw std::bad_alloc(); });
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(err, "tool: error: out of memory (std::bad_alloc)\n");

  std::string seen;
  std::tie(rc, err) = RunGuarded(
      []() -> int {
        throw std::filesystem::filesystem_error("status", "/some/dir", std::make_error_code(std::errc::too_many_symbolic_link_levels));
      },
      &seen);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("tool: error: "), std::string::npos) << err;
  EXPECT_NE(err.find("/some/dir"), std::string::npos) << err;
  EXPECT_NE(seen.find("/some/dir"), std::string::npos) << seen;  // dsrun's hook gets the message

  std::tie(rc, err) = RunGuarded([]() -> int { return static_cast<int>(nlohmann::json::parse("{").size()); });
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("tool: error: [json.exception.parse_error"), std::string::npos) << err;

  std::tie(rc, err) = RunGuarded([]() -> int { throw 42; });
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(err, "tool: error: an unknown exception\n");
}

// An exception escaping a worker thread never reaches RunTool's catch; the terminate handler still
// names it and exits 1 (under mpirun, a rank exiting non-zero ends the job) instead of aborting.
TEST(RunToolDeathTest, ExceptionsInOtherThreadsExitWithTheMessage) {
  EXPECT_EXIT(RunTool("tool",
                      [] {
                        std::thread([] { throw std::runtime_error("boom in a worker"); }).join();
                        return 0;
                      }),
              ::testing::ExitedWithCode(1), "tool: error: boom in a worker");
}

}  // namespace
}  // namespace dsc
