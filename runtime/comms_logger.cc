#include "runtime/comms_logger.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "runtime/csv_monitor.h"  // PythonFloatRepr

namespace dsc {
namespace {

// DeepSpeed's log names of the tensor collectives ZeRO calls (deepspeed/comm/comm.py), as aliases
// of dscompile's kinds in prof_ops.
std::string KindOf(const std::string& op) {
  if (op == "all_gather_into_tensor") return "all_gather";
  if (op == "reduce_scatter_tensor") return "reduce_scatter";
  if (op == "all_to_all_single") return "all_to_all";
  return op;
}

// Python's f"{v: <20.2f}" and f"{v: <20}": left-aligned in 20 columns.
std::string Left20(const std::string& s) { return s.size() >= 20 ? s : s + std::string(20 - s.size(), ' '); }
std::string Fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

Bandwidth CommBandwidth(const std::string& kind, int64_t msg_bytes, double latency_ms, int world) {
  // deepspeed/utils/comms_logging.py calc_bw_log.
  const double n = world, d = latency_ms;
  double size = static_cast<double>(msg_bytes), tput = 0, busbw = 0;
  if (d <= 0) return {};
  if (kind == "all_to_all") {  // all_to_all_single: the message is the whole send buffer
    tput = size / d;
    busbw = size / d * ((n - 1) / n);
  } else if (kind == "all_gather" || kind == "reduce_scatter") {
    size *= n;
    tput = size / d;
    busbw = size / d * ((n - 1) / n);
  } else if (kind == "all_reduce") {
    tput = size * 2 / d;
    busbw = size / d * (2 * (n - 1) / n);
  } else {  // broadcast
    tput = size / d;
    busbw = tput;
  }
  // bytes per ms -> Gbit/s
  return {tput * 8 / 1e6, busbw * 8 / 1e6};
}

std::string ConvertSize(int64_t bytes) {
  if (bytes == 0) return "0B";
  static const char* names[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  const double x = static_cast<double>(bytes);
  const int i = static_cast<int>(std::floor(std::log(x) / std::log(1024.0)));
  const double s = std::round(x / std::pow(1024.0, i) * 100) / 100;
  return PythonFloatRepr(s) + " " + names[i];
}

double TrimMean(std::vector<double> data, double trim) {
  const size_t n = data.size();
  if (n == 0) return 0;
  std::sort(data.begin(), data.end());
  const auto k = static_cast<size_t>(std::nearbyint(static_cast<double>(n) * trim));  // ties to even
  if (2 * k >= n) return 0;  // Python's mean of an empty slice raises; n*0.1 never gets here
  return std::accumulate(data.begin() + static_cast<std::ptrdiff_t>(k), data.end() - static_cast<std::ptrdiff_t>(k),
                         0.0) /
         static_cast<double>(n - 2 * k);
}

CommsLogger::CommsLogger(CommsLoggerConfig cfg, int world, std::ostream* verbose_out)
    : cfg_(std::move(cfg)), world_(world), verbose_out_(verbose_out) {}

bool CommsLogger::Profiled(const std::string& kind) const {
  if (cfg_.prof_all) return true;
  return std::any_of(cfg_.prof_ops.begin(), cfg_.prof_ops.end(), [&](const std::string& op) { return KindOf(op) == kind; });
}

void CommsLogger::Record(const CollectiveRecord& r) {
  const std::string kind = r.kind;
  if (!Profiled(kind)) return;
  const double ms = r.latency_s * 1e3;
  const Bandwidth bw = CommBandwidth(kind, r.msg_bytes, ms, world_);
  if (!records_.count(kind)) order_.push_back(kind);
  Entry& e = records_[kind][r.msg_bytes];
  ++e.count;
  e.bytes_sent += r.bytes_sent;
  e.latency_ms.push_back(ms);
  e.algbw.push_back(bw.algbw_gbps);
  e.busbw.push_back(bw.busbw_gbps);
  if (cfg_.verbose && verbose_out_)
    *verbose_out_ << "comm op: " << kind << " | time (ms): " << Fixed2(ms) << " | msg size: " << ConvertSize(r.msg_bytes)
                  << " | algbw (Gbps): " << Fixed2(bw.algbw_gbps) << " | busbw (Gbps): " << Fixed2(bw.busbw_gbps)
                  << "\n";
}

std::map<std::string, int64_t> CommsLogger::bytes_sent() const {
  std::map<std::string, int64_t> out;
  for (const auto& [kind, sizes] : records_)
    for (const auto& [size, e] : sizes) out[kind] += e.bytes_sent;
  return out;
}

std::map<std::string, int64_t> CommsLogger::counts() const {
  std::map<std::string, int64_t> out;
  for (const auto& [kind, sizes] : records_)
    for (const auto& [size, e] : sizes) out[kind] += e.count;
  return out;
}

nlohmann::json CommsLogger::SummaryJson() const {
  nlohmann::json j = nlohmann::json::object();
  for (const std::string& kind : order_) {
    for (const auto& [size, e] : records_.at(kind)) {
      j[kind][std::to_string(size)] = {
          {"count", e.count},
          {"total_latency_ms", std::accumulate(e.latency_ms.begin(), e.latency_ms.end(), 0.0)},
          {"avg_latency_ms", TrimMean(e.latency_ms, 0.1)},
          {"tput_avg_gbps", TrimMean(e.algbw, 0.1)},
          {"busbw_avg_gbps", TrimMean(e.busbw, 0.1)},
          {"msg_size_bytes", size},
          {"msg_size_str", ConvertSize(size)},
          {"bytes_sent", e.bytes_sent}};
    }
  }
  return j;
}

void CommsLogger::PrintSummary(std::ostream& out, int64_t steps) const {
  // comms_logging.py log_all: the op's name on a line of its own, then one row per message size.
  out << Left20("Comm. Op") << Left20("Message Size") << Left20("Count") << Left20("Total Latency(ms)")
      << Left20("Avg Latency(ms)") << Left20("tput_avg (Gbps)") << Left20("busbw_avg (Gbps)") << "\n";
  for (const std::string& kind : order_) {
    out << kind << "\n";
    for (const auto& [size, e] : records_.at(kind)) {
      out << Left20(" ") << Left20(ConvertSize(size)) << Left20(std::to_string(e.count))
          << Left20(Fixed2(std::accumulate(e.latency_ms.begin(), e.latency_ms.end(), 0.0)))
          << Left20(Fixed2(TrimMean(e.latency_ms, 0.1))) << Left20(Fixed2(TrimMean(e.algbw, 0.1)))
          << Left20(Fixed2(TrimMean(e.busbw, 0.1))) << "\n";
    }
  }
  for (const auto& [kind, bytes] : bytes_sent()) {
    out << "comms_logger: " << kind << " sent " << bytes << " bytes from this rank in " << steps << " step"
        << (steps == 1 ? "" : "s");
    if (steps > 0 && bytes % steps == 0) out << " (" << bytes / steps << " per step)";
    out << "\n";
  }
}

}  // namespace dsc
