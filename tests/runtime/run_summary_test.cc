// The end-of-run summary's arithmetic: steps of this run (a resumed run counts from its start),
// samples and tokens from the batch and the sequence, each share of the wall time, idle/other as
// the remainder, memory planned next to allocated.
#include <gtest/gtest.h>

#include "runtime/run_summary.h"

namespace dsc {
namespace {

TEST(RunSummary, ThroughputTimeSplitAndMemory) {
  TrainSummary s;
  s.steps = 30;
  s.resumed_from = 10;  // 20 steps in this run
  s.skipped_steps = 2;
  s.seconds = 4.0;
  s.train_batch_size = 8;
  s.tokens_per_sample = 64;
  s.device = "cpu";
  s.data_seconds = 0.2;
  s.compute_seconds = 2.0;
  s.comm_seconds = 1.0;
  s.memory_planned = {{"parameters", 2048}, {"activations_peak", 3 << 20}, {"communication_buffers", 512}};
  s.memory_allocated = {{"parameters", 2048}, {"activations_peak", 3 << 20}};
  s.peak_allocated_bytes = 5 << 20;
  s.peak_resident_bytes = int64_t{3} << 30;
  const std::string text = RenderRunSummary(s);
  // 20 steps x 8 = 160 samples, x 64 = 10240 tokens, over 4 s.
  EXPECT_NE(text.find("dsrun: summary (rank 0, cpu): 20 steps, 160 samples, 10240 tokens in 4.000 s: 5.00 steps/s, "
                      "40.0 samples/s, 2560 tokens/s; skipped steps 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("dsrun: time: compute 2.000 s (50%), communication 1.000 s (25%), data 0.200 s (5%), "
                      "idle/other 0.800 s (20%)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("dsrun: memory per rank, planned / allocated: activations_peak 3.0 MiB / 3.0 MiB, "
                      "communication_buffers 512 B (inside the arenas), parameters 2.0 KiB / 2.0 KiB; device peak allocated 5.0 MiB, peak resident 3.0 GiB\n"),
            std::string::npos)
      << text;
  // Not a token model: no tokens.
  s.tokens_per_sample = 0;
  EXPECT_EQ(RenderRunSummary(s).find("tokens"), std::string::npos);
}

}  // namespace
}  // namespace dsc
