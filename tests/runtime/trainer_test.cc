// The trainer's debugging flags: --debug-inject-overflow's STEP[@RANK] list and step lists.
#include <gtest/gtest.h>

#include "runtime/trainer.h"

namespace dsc {
namespace {

TEST(OverflowInjectionSpec, StepsWithOptionalRanks) {
  StatusOr<std::vector<OverflowInjection>> s = ParseOverflowInjection("3,5@1,7@0,12@3");
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->size(), 4u);
  const std::vector<std::pair<int64_t, int>> want = {{3, 0}, {5, 1}, {7, 0}, {12, 3}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*s)[i].step, want[i].first);
    EXPECT_EQ((*s)[i].rank, want[i].second);
  }
}

TEST(OverflowInjectionSpec, MalformedSpecsNameTheFlag) {
  for (const char* bad : {"", "0", "-1", "x", "3@", "@1", "3@x", "3@-1", "3,,4", "3,", ",3", "3@1@2", "2.5", "3 "}) {
    StatusOr<std::vector<OverflowInjection>> s = ParseOverflowInjection(bad);
    EXPECT_FALSE(s.ok()) << "'" << bad << "'";
    if (!s.ok()) {
      EXPECT_NE(s.status().message().find("--debug-inject-overflow"), std::string::npos) << s.status().message();
    }
  }
}

TEST(StepList, ZeroIsTheInitialState) {
  StatusOr<std::vector<int64_t>> s = ParseStepList("0,4,2", "--debug-dump-steps");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(*s, (std::vector<int64_t>{0, 4, 2}));
  for (const char* bad : {"", "a", "1,", "-2", "1,,2", "99999999999999999999"}) {
    StatusOr<std::vector<int64_t>> b = ParseStepList(bad, "--debug-dump-steps");
    EXPECT_FALSE(b.ok()) << "'" << bad << "'";
    if (!b.ok()) {
      EXPECT_NE(b.status().message().find("--debug-dump-steps"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace dsc
