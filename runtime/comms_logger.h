// DeepSpeed's comms_logger in dsrun (deepspeed/utils/comms_logging.py CommsLogger): the
// communicator records every collective of the plan it finishes (runtime/communicator.h
// CollectiveRecord), grouped by kind and message size; rank 0 prints DeepSpeed's log_all table
// at the end of the run, and with `verbose` one line per collective as it finishes. Each record
// also carries the bytes this rank sent (the bytes model dsinspect's per-step figures use), summed
// per kind under the table.
//
//   CommsLogger log(cfg.comms_logger, comm->size());
//   comm->set_collective_log(&log);  // around the plan's programs only
//   ...
//   log.PrintSummary(std::cout, steps);
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/config/other_sections.h"
#include "runtime/communicator.h"

namespace dsc {

// calc_bw_log: algorithmic and bus bandwidth in Gbit/s of a collective of `msg_bytes` (the
// record's message size) that took `latency_ms`, on `world` ranks. all_gather and reduce_scatter
// count size x world bytes; all_reduce's algbw counts the buffer twice, its busbw 2(n-1)/n of it;
// broadcast's busbw equals its algbw.
struct Bandwidth {
  double algbw_gbps = 0, busbw_gbps = 0;
};
Bandwidth CommBandwidth(const std::string& kind, int64_t msg_bytes, double latency_ms, int world);
// convert_size: "0B", "512.0 B", "1.5 KB", "678.86 MB" (powers of 1024, rounded to 2 places).
std::string ConvertSize(int64_t bytes);
// trim_mean(data, 0.1) of deepspeed/utils/timer.py: the mean after dropping round(n/10) values
// (Python's round, ties to even) from each end of the sorted data.
double TrimMean(std::vector<double> data, double trim);

class CommsLogger : public CollectiveLog {
 public:
  // `verbose_out`: where verbose lines go (rank 0's progress; null on other ranks).
  CommsLogger(CommsLoggerConfig cfg, int world, std::ostream* verbose_out);
  void Record(const CollectiveRecord& r) override;

  // The log_all table ("Comm. Op", "Message Size", "Count", "Total Latency(ms)", "Avg
  // Latency(ms)", "tput_avg (Gbps)", "busbw_avg (Gbps)"), then per kind the bytes this rank sent
  // in the run and per step.
  void PrintSummary(std::ostream& out, int64_t steps) const;
  // Bytes sent and collectives per kind over the records so far (kinds without records absent).
  std::map<std::string, int64_t> bytes_sent() const;
  std::map<std::string, int64_t> counts() const;
  // The table's rows: {kind: {msg_size: {count, total_latency_ms, avg_latency_ms, tput_avg_gbps,
  // busbw_avg_gbps, bytes_sent}}}, like log_all(return_dict=True)["summary"].
  nlohmann::json SummaryJson() const;

 private:
  bool Profiled(const std::string& kind) const;
  struct Entry {
    int64_t count = 0;
    int64_t bytes_sent = 0;
    std::vector<double> latency_ms, algbw, busbw;
  };
  CommsLoggerConfig cfg_;
  int world_;
  std::ostream* verbose_out_;
  std::map<std::string, std::map<int64_t, Entry>> records_;  // kind -> message size -> entry
  std::vector<std::string> order_;  // kinds as first recorded (DeepSpeed's dict order)
};

}  // namespace dsc
