// comms_logger's arithmetic against DeepSpeed's own functions (deepspeed/utils/comms_logging.py
// convert_size and calc_bw_log, deepspeed/utils/timer.py trim_mean, run from the DeepSpeed source
// with deepspeed.comm stubbed to the world size), and what the log keeps, filters and prints.
#include <gtest/gtest.h>

#include <sstream>

#include "runtime/comms_logger.h"

namespace dsc {
namespace {

TEST(CommsLogger, ConvertSizeMatchesDeepSpeed) {
  const std::pair<int64_t, const char*> cases[] = {
      {0, "0B"}, {1, "1.0 B"}, {512, "512.0 B"}, {1023, "1023.0 B"}, {1024, "1.0 KB"}, {1536, "1.5 KB"},
      {1048576, "1.0 MB"}, {711836303, "678.86 MB"}, {5368709127, "5.0 GB"}};
  for (const auto& [bytes, want] : cases) EXPECT_EQ(ConvertSize(bytes), want) << bytes;
}

TEST(CommsLogger, BandwidthMatchesCalcBwLog) {
  struct Case {
    const char* kind;
    int64_t size;
    double ms;
    int world;
    double algbw, busbw;
  } cases[] = {{"all_reduce", 1048576, 2.0, 4, 8.388608, 6.291456},
               {"all_gather", 4096, 0.5, 4, 0.262144, 0.196608},
               {"reduce_scatter", 4096, 0.5, 2, 0.131072, 0.065536},
               {"broadcast", 1000, 0.25, 3, 0.032, 0.032}};
  for (const Case& c : cases) {
    const Bandwidth bw = CommBandwidth(c.kind, c.size, c.ms, c.world);
    EXPECT_DOUBLE_EQ(bw.algbw_gbps, c.algbw) << c.kind;
    EXPECT_DOUBLE_EQ(bw.busbw_gbps, c.busbw) << c.kind;
  }
}

// round(n * 0.1) ties to even: 15 values drop 2 from each end, 25 values 2 as well.
TEST(CommsLogger, TrimMeanMatchesDeepSpeed) {
  EXPECT_DOUBLE_EQ(TrimMean({1, 2, 3, 4, 5}, 0.1), 3);
  EXPECT_DOUBLE_EQ(TrimMean({5, 1, 100, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14}, 0.1), 8);
  std::vector<double> squares15, squares25;
  for (int i = 0; i < 25; ++i) (i < 15 ? squares15 : squares25).push_back(i * i);
  squares25.insert(squares25.begin(), squares15.begin(), squares15.end());
  EXPECT_DOUBLE_EQ(TrimMean(squares15, 0.1), 59);
  EXPECT_DOUBLE_EQ(TrimMean(squares25, 0.1), 180.66666666666666);
  EXPECT_EQ(TrimMean({}, 0.1), 0);
}

// Records group by kind and message size; prof_all false keeps only prof_ops (DeepSpeed's tensor
// op names count as dscompile's kinds); verbose prints DeepSpeed's per-op line.
TEST(CommsLogger, GroupsFiltersAndPrints) {
  CommsLoggerConfig cfg;
  cfg.enabled = true;
  cfg.prof_all = false;
  cfg.prof_ops = {"all_gather_into_tensor", "all_reduce"};
  cfg.verbose = true;
  std::ostringstream verbose;
  CommsLogger log(cfg, 2, &verbose);
  log.Record({"all_reduce", 1024, 1024, 0.002});
  log.Record({"reduce_scatter", 512, 512, 0.001});  // not profiled
  log.Record({"all_gather", 512, 512, 0.001});
  log.Record({"all_reduce", 1024, 1024, 0.004});
  log.Record({"all_reduce", 2048, 2048, 0.001});
  EXPECT_EQ(log.counts(), (std::map<std::string, int64_t>{{"all_gather", 1}, {"all_reduce", 3}}));
  EXPECT_EQ(log.bytes_sent(), (std::map<std::string, int64_t>{{"all_gather", 512}, {"all_reduce", 4096}}));
  const nlohmann::json j = log.SummaryJson();
  EXPECT_EQ(j["all_reduce"]["1024"]["count"], 2);
  EXPECT_DOUBLE_EQ(j["all_reduce"]["1024"]["total_latency_ms"].get<double>(), 6.0);
  EXPECT_DOUBLE_EQ(j["all_reduce"]["1024"]["avg_latency_ms"].get<double>(), 3.0);
  // calc_bw_log("all_reduce", 1024, 2.0) on 2 ranks: 2*1024/2 B/ms = 0.008192 Gbps; busbw half of it.
  EXPECT_NE(verbose.str().find("comm op: all_reduce | time (ms): 2.00 | msg size: 1.0 KB | algbw (Gbps): 0.01 | "
                               "busbw (Gbps): 0.00\n"),
            std::string::npos)
      << verbose.str();
  EXPECT_EQ(verbose.str().find("reduce_scatter"), std::string::npos);
  std::ostringstream table;
  log.PrintSummary(table, 2);
  const std::string t = table.str();
  EXPECT_EQ(t.rfind("Comm. Op            Message Size        Count               Total Latency(ms)   ", 0), 0u) << t;
  // Kinds in the order first recorded, sizes ascending.
  EXPECT_LT(t.find("\nall_reduce\n"), t.find("\nall_gather\n")) << t;
  EXPECT_NE(t.find("                    1.0 KB              2                   6.00                3.00"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("comms_logger: all_reduce sent 4096 bytes from this rank in 2 steps (2048 per step)"),
            std::string::npos)
      << t;
}

}  // namespace
}  // namespace dsc
