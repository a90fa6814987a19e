#include "runtime/run_summary.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "backend/plan_summary.h"  // HumanBytes

namespace dsc {
namespace {

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Share(double part, double whole) {
  return Fixed(part, 3) + " s (" + Fixed(whole > 0 ? 100 * part / whole : 0, 0) + "%)";
}

}  // namespace

std::string RenderRunSummary(const TrainSummary& s) {
  std::ostringstream out;
  const int64_t steps = std::max<int64_t>(0, s.steps - s.resumed_from);
  const int64_t samples = steps * s.train_batch_size;
  const double secs = s.seconds;
  auto rate = [&](double n) { return secs > 0 ? n / secs : 0.0; };
  out << "dsrun: summary (rank 0, " << s.device << "): " << steps << " step" << (steps == 1 ? "" : "s") << ", "
      << samples << " samples";
  if (s.tokens_per_sample > 0) out << ", " << samples * s.tokens_per_sample << " tokens";
  out << " in " << Fixed(secs, 3) << " s: " << Fixed(rate(static_cast<double>(steps)), 2) << " steps/s, "
      << Fixed(rate(static_cast<double>(samples)), 1) << " samples/s";
  if (s.tokens_per_sample > 0) out << ", " << Fixed(rate(static_cast<double>(samples * s.tokens_per_sample)), 0) << " tokens/s";
  out << "; skipped steps " << s.skipped_steps << "\n";
  const double idle = std::max(0.0, secs - s.data_seconds - s.compute_seconds - s.comm_seconds);
  out << "dsrun: time: compute " << Share(s.compute_seconds, secs) << ", communication " << Share(s.comm_seconds, secs)
      << ", data " << Share(s.data_seconds, secs) << ", idle/other " << Share(idle, secs);
  if (s.device_async) out << " (the host's view: GPU kernels run asynchronously, their time shows where the host waits)";
  out << "\n";
  out << "dsrun: memory per rank, planned / allocated:";
  const char* sep = " ";
  for (const auto& [kind, planned] : s.memory_planned.items()) {
    if (!planned.is_number_integer()) continue;
    out << sep << kind << " " << HumanBytes(planned.get<int64_t>());
    if (s.memory_allocated.contains(kind)) {
      out << " / " << HumanBytes(s.memory_allocated[kind].get<int64_t>());
    } else if (kind == "communication_buffers") {
      out << " (inside the arenas)";
    }
    sep = ", ";
  }
  out << "; device peak allocated " << HumanBytes(s.peak_allocated_bytes) << ", peak resident "
      << HumanBytes(s.peak_resident_bytes) << "\n";
  return out.str();
}

}  // namespace dsc
