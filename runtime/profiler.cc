// The training profiler: node times folded into per-program, per-op-kind and per-node tables.
//
// Report keys (schema_version 1):
//   {schema_version, timing, steps, step_ms, kernel_ms, phases_ms: {forward, backward, step},
//    programs: [{name, nodes, runs_per_step, ms_per_step, total_ms, flops_per_run,
//                flops_unknown_nodes, bytes_per_run, gflops_per_s,
//                op_kinds: [{op, nodes, calls, total_ms, percent, flops, gflops_per_s, bytes}],
//                top_nodes: [{name, op, shapes, phase, calls, total_ms, percent, flops,
//                             gflops_per_s, bytes}]}]}
// Times are totals over the steps profiled; *_ms_per_step and step_ms are means per step; flops
// and bytes are static counts per run of the program (null FLOPs: an op the table does not know);
// gflops_per_s is flops times calls over the time, null when unknown. The warm-up step is kept
// apart under "warmup" ({steps, step_ms, kernel_ms}) by TrainingProfiler.
#include "runtime/profiler.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

namespace dsc {
namespace {

const char* PhaseName(Phase p) { return p == Phase::kForward ? "forward" : p == Phase::kBackward ? "backward" : "step"; }

// Nodes whose outputs the loss depends on (the micro-step's forward).
std::set<const Node*> LossAncestors(const Graph& g) {
  std::set<const Node*> seen;
  const Value* loss = g.FindValue(g.training.loss);
  if (!loss) return seen;
  std::vector<const Node*> work;
  if (loss->producer()) work.push_back(loss->producer());
  while (!work.empty()) {
    const Node* n = work.back();
    work.pop_back();
    if (!seen.insert(n).second) continue;
    for (const Value* v : n->inputs())
      if (v && v->producer()) work.push_back(v->producer());
  }
  return seen;
}

nlohmann::json NullIfUnknown(bool known, double v) { return known ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Per-second rate of `flop_exec` FLOPs in GFLOP/s; null when unknown or untimed.
nlohmann::json Rate(bool known, double flop_exec, double seconds) {
  if (!known || seconds <= 0) return nullptr;
  return flop_exec / seconds / 1e9;
}

std::string Si(double v) {
  char buf[32];
  const char* units[] = {"", "k", "M", "G", "T", "P"};
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.2f%s", v, units[u]);
  return buf;
}

std::string Fixed(const nlohmann::json& v, int decimals) {
  if (v.is_null()) return "?";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v.get<double>());
  return buf;
}

std::string Pad(const std::string& s, size_t width, bool left = false) {
  if (s.size() >= width) return s;
  return left ? s + std::string(width - s.size(), ' ') : std::string(width - s.size(), ' ') + s;
}

std::string Clip(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

std::string Count(const nlohmann::json& v) { return v.is_null() ? "?" : Si(v.get<double>()); }

}  // namespace

StatusOr<std::vector<ProfiledProgram>> ProfiledPrograms(const Plan& plan) {
  std::vector<ProfiledProgram> out;
  for (const char* name : {"micro_step", "step"}) {
    const PlanProgram* p = plan.FindProgram(name);
    if (!p) return FailedPrecondition("the plan has no ", name, " program to profile");
    const bool micro = out.empty();
    const std::set<const Node*> forward = micro ? LossAncestors(*p->graph) : std::set<const Node*>{};
    if (micro && forward.empty()) return FailedPrecondition("the micro_step program has no loss to profile against");
    ProfiledProgram prog{name, {}};
    for (const auto& n : p->graph->nodes()) {
      const Phase phase = !micro ? Phase::kStep : forward.count(n.get()) ? Phase::kForward : Phase::kBackward;
      // Passes name few of the nodes they add: those are shown by position and what they write.
      std::string name = n->name();
      if (name.empty()) {
        const Value* v = n->num_outputs() > 0 ? n->output(0) : n->input(0);
        name = StrCat("#", prog.nodes.size(), v ? " " + v->name() : "");
      }
      prog.nodes.push_back({name, OpKind(*n), NodeShapes(*n), StaticNodeCost(*n), phase});
    }
    out.push_back(std::move(prog));
  }
  return out;
}

nlohmann::json ProfileReport(const std::vector<ProfiledProgram>& programs,
                             const std::vector<std::vector<NodeTime>>& times, int64_t steps, double step_seconds,
                             int64_t top_nodes, const std::string& timing) {
  const double per_step = steps > 0 ? 1.0 / static_cast<double>(steps) : 0.0;
  nlohmann::json report = {{"schema_version", 1}, {"timing", timing}, {"steps", steps},
                           {"step_ms", step_seconds * 1e3 * per_step}};
  double kernel_seconds = 0, phase_seconds[3] = {0, 0, 0};
  nlohmann::json progs = nlohmann::json::array();
  for (size_t p = 0; p < programs.size(); ++p) {
    const ProfiledProgram& prog = programs[p];
    const std::vector<NodeTime>& t = times[p];
    auto at = [&](size_t i) { return i < t.size() ? t[i] : NodeTime{}; };
    double seconds = 0, flop_exec = 0;
    int64_t runs = 0, flops = 0, bytes = 0, unknown = 0;
    struct Kind {
      int64_t nodes = 0, calls = 0, flops = 0, bytes = 0;
      double seconds = 0, flop_exec = 0;
      bool known = true;
    };
    std::map<std::string, Kind> kinds;
    for (size_t i = 0; i < prog.nodes.size(); ++i) {
      const ProfiledNode& n = prog.nodes[i];
      const NodeTime nt = at(i);
      seconds += nt.seconds;
      phase_seconds[static_cast<int>(n.phase)] += nt.seconds;
      runs = std::max(runs, nt.calls);
      const int64_t b = n.cost.bytes_read + n.cost.bytes_written;
      bytes += b;
      Kind& k = kinds[n.op];
      ++k.nodes;
      k.calls += nt.calls;
      k.seconds += nt.seconds;
      k.bytes += b;
      if (n.cost.flops_known) {
        flops += n.cost.flops;
        k.flops += n.cost.flops;
        const double e = static_cast<double>(n.cost.flops) * static_cast<double>(nt.calls);
        k.flop_exec += e;
        flop_exec += e;
      } else {
        ++unknown;
        k.known = false;
      }
    }
    kernel_seconds += seconds;
    auto percent = [&](double s) { return seconds > 0 ? 100.0 * s / seconds : 0.0; };
    std::vector<std::pair<std::string, Kind>> sorted(kinds.begin(), kinds.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
    nlohmann::json kind_rows = nlohmann::json::array();
    for (const auto& [op, k] : sorted)
      kind_rows.push_back({{"op", op}, {"nodes", k.nodes}, {"calls", k.calls}, {"total_ms", k.seconds * 1e3},
                           {"percent", percent(k.seconds)}, {"flops", NullIfUnknown(k.known, static_cast<double>(k.flops))},
                           {"gflops_per_s", Rate(k.known, k.flop_exec, k.seconds)}, {"bytes", k.bytes}});
    std::vector<size_t> order(prog.nodes.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return at(a).seconds > at(b).seconds; });
    if (static_cast<int64_t>(order.size()) > top_nodes) order.resize(static_cast<size_t>(top_nodes));
    nlohmann::json top = nlohmann::json::array();
    for (size_t i : order) {
      const ProfiledNode& n = prog.nodes[i];
      const NodeTime nt = at(i);
      const bool known = n.cost.flops_known;
      top.push_back({{"name", n.name}, {"op", n.op}, {"shapes", n.shapes}, {"phase", PhaseName(n.phase)},
                     {"calls", nt.calls}, {"total_ms", nt.seconds * 1e3}, {"percent", percent(nt.seconds)},
                     {"flops", NullIfUnknown(known, static_cast<double>(n.cost.flops))},
                     {"gflops_per_s", Rate(known, static_cast<double>(n.cost.flops) * static_cast<double>(nt.calls), nt.seconds)},
                     {"bytes", n.cost.bytes_read + n.cost.bytes_written}});
    }
    progs.push_back({{"name", prog.name}, {"nodes", prog.nodes.size()},
                     {"runs_per_step", steps > 0 ? static_cast<double>(runs) * per_step : 0.0},
                     {"ms_per_step", seconds * 1e3 * per_step}, {"total_ms", seconds * 1e3},
                     {"flops_per_run", flops}, {"flops_unknown_nodes", unknown}, {"bytes_per_run", bytes},
                     {"gflops_per_s", Rate(true, flop_exec, seconds)}, {"op_kinds", kind_rows}, {"top_nodes", top}});
  }
  report["kernel_ms"] = kernel_seconds * 1e3 * per_step;
  report["phases_ms"] = {{"forward", phase_seconds[0] * 1e3 * per_step},
                         {"backward", phase_seconds[1] * 1e3 * per_step},
                         {"step", phase_seconds[2] * 1e3 * per_step}};
  report["programs"] = progs;
  return report;
}

std::string FormatProfile(const nlohmann::json& r, bool detailed) {
  std::ostringstream s;
  const double step_ms = r["step_ms"].get<double>(), kernel_ms = r["kernel_ms"].get<double>();
  s << "profile of " << r["steps"].get<int64_t>() << " optimizer step" << (r["steps"].get<int64_t>() == 1 ? "" : "s");
  if (r.contains("warmup") && !r["warmup"].is_null())
    s << " (the warm-up step " << r["warmup"]["step"].get<int64_t>() << " apart: " << Fixed(r["warmup"]["step_ms"], 3)
      << " ms)";
  s << "; timing: " << r["timing"].get<std::string>() << "\n";
  s << "  per step: " << Fixed(step_ms, 3) << " ms wall clock, " << Fixed(kernel_ms, 3) << " ms in kernels ("
    << Fixed(step_ms > 0 ? 100 * kernel_ms / step_ms : 0.0, 1) << "%): forward " << Fixed(r["phases_ms"]["forward"], 3)
    << ", backward " << Fixed(r["phases_ms"]["backward"], 3) << ", optimizer step " << Fixed(r["phases_ms"]["step"], 3)
    << " ms\n";
  for (const nlohmann::json& p : r["programs"]) {
    s << "\nprogram " << p["name"].get<std::string>() << ": " << p["nodes"].get<int64_t>() << " nodes, "
      << Fixed(p["runs_per_step"], 0) << " run(s) per step, " << Fixed(p["ms_per_step"], 3) << " ms per step; per run "
      << Si(p["flops_per_run"].get<double>()) << "FLOP";
    if (p["flops_unknown_nodes"].get<int64_t>() > 0)
      s << " (+ " << p["flops_unknown_nodes"].get<int64_t>() << " nodes of unknown FLOPs)";
    s << ", " << Si(p["bytes_per_run"].get<double>()) << "B moved; " << Fixed(p["gflops_per_s"], 2) << " GFLOP/s\n";
    s << "  " << Pad("op kind", 40, true) << Pad("nodes", 7) << Pad("calls", 9) << Pad("total ms", 11)
      << Pad("%", 7) << Pad("FLOP/run", 10) << Pad("GFLOP/s", 9) << Pad("bytes/run", 11) << "\n";
    for (const nlohmann::json& k : p["op_kinds"])
      s << "  " << Pad(k["op"].get<std::string>(), 40, true) << Pad(std::to_string(k["nodes"].get<int64_t>()), 7)
        << Pad(std::to_string(k["calls"].get<int64_t>()), 9) << Pad(Fixed(k["total_ms"], 3), 11)
        << Pad(Fixed(k["percent"], 1), 7) << Pad(Count(k["flops"]), 10) << Pad(Fixed(k["gflops_per_s"], 2), 9)
        << Pad(Si(k["bytes"].get<double>()), 11) << "\n";
    if (!detailed) continue;
    s << "  top " << p["top_nodes"].size() << " nodes by time:\n";
    s << "  " << Pad("node", 40, true) << " " << Pad("op", 42, true) << Pad("calls", 7) << Pad("total ms", 11)
      << Pad("%", 7) << Pad("FLOP/run", 10) << Pad("GFLOP/s", 9) << Pad("bytes/run", 11) << "  phase     shapes\n";
    for (const nlohmann::json& n : p["top_nodes"])
      s << "  " << Pad(Clip(n["name"].get<std::string>(), 60), 40, true) << " " << Pad(n["op"].get<std::string>(), 42, true)
        << Pad(std::to_string(n["calls"].get<int64_t>()), 7) << Pad(Fixed(n["total_ms"], 3), 11)
        << Pad(Fixed(n["percent"], 1), 7) << Pad(Count(n["flops"]), 10) << Pad(Fixed(n["gflops_per_s"], 2), 9)
        << Pad(Si(n["bytes"].get<double>()), 11) << "  " << Pad(n["phase"].get<std::string>(), 9, true) << " "
        << Clip(n["shapes"].get<std::string>(), 160) << "\n";
  }
  return s.str();
}

StatusOr<std::unique_ptr<TrainingProfiler>> TrainingProfiler::Create(const Plan& plan, const DsConfig& cfg,
                                                                      const ProfileOptions& opts) {
  if (!opts.profile && !cfg.wall_clock_breakdown && !cfg.flops_profiler.enabled) return std::unique_ptr<TrainingProfiler>();
  std::unique_ptr<TrainingProfiler> p(new TrainingProfiler());
  ASSIGN_OR_RETURN(p->programs_, ProfiledPrograms(plan));
  p->opts_ = opts;
  p->breakdown_ = cfg.wall_clock_breakdown;
  p->flops_ = cfg.flops_profiler;
  p->gas_ = std::max<int64_t>(cfg.gradient_accumulation_steps, 1);
  p->timing_ = opts.on_gpu ? "host steady_clock per node, the GPU synchronized after each (kernels serialized)"
                           : "host steady_clock around each kernel";
  p->current_.resize(p->programs_.size());
  p->total_.resize(p->programs_.size());
  p->warmup_.resize(p->programs_.size());
  auto open = [](std::ofstream& f, const std::string& path, const std::string& what) -> Status {
    errno = 0;
    f.open(path, std::ios::trunc);
    if (!f) return InvalidArgument(what, " ", path, ": cannot open for writing: ", std::strerror(errno ? errno : EIO));
    return Status::OK();
  };
  if (!opts.json_path.empty()) RETURN_IF_ERROR(open(p->json_, opts.json_path, "--profile"));
  if (p->flops_.enabled && p->flops_.output_file)
    RETURN_IF_ERROR(open(p->flops_file_, *p->flops_.output_file, "flops_profiler.output_file"));
  if (p->flops_.enabled && opts.log && (p->flops_.profile_step < opts.first_step || p->flops_.profile_step > opts.last_step))
    *opts.log << "dsrun: note: flops_profiler.profile_step " << p->flops_.profile_step << " is outside this run's steps "
              << opts.first_step << ".." << opts.last_step << ": no flops profile will be printed\n";
  return p;
}

bool TrainingProfiler::BreakdownDue(int64_t step) const {
  return breakdown_ && opts_.log &&
         (step % opts_.print_every == 0 || step == opts_.first_step || step == opts_.last_step);
}

bool TrainingProfiler::Timed(int64_t step) const {
  return opts_.profile || BreakdownDue(step) || (flops_.enabled && step == flops_.profile_step);
}

std::vector<NodeTime>* TrainingProfiler::Times(size_t program, int64_t step) {
  return Timed(step) ? &current_[program] : nullptr;
}

Status TrainingProfiler::EndStep(int64_t step, double seconds) {
  if (!Timed(step)) return Status::OK();
  nlohmann::json report = ProfileReport(programs_, current_, 1, seconds, flops_.top_modules, timing_);
  if (BreakdownDue(step)) {
    // DeepSpeed's engine timers (utils/timer.py): the micro timers per micro-step, the global ones
    // summed over the step's micro-steps.
    const nlohmann::json& ph = report["phases_ms"];
    const double fwd = ph["forward"].get<double>(), bwd = ph["backward"].get<double>(), upd = ph["step"].get<double>();
    char line[256];
    std::snprintf(line, sizeof line,
                  "[Rank 0] time (ms) | fwd_microstep: %.2f | bwd_microstep: %.2f | step_microstep: %.2f\n"
                  "[Rank 0] time (ms) | fwd: %.2f | bwd: %.2f | step: %.2f\n",
                  fwd / static_cast<double>(gas_), bwd / static_cast<double>(gas_), upd, fwd, bwd, upd);
    *opts_.log << line;
  }
  if (flops_.enabled && step == flops_.profile_step) {
    std::ostream* out = flops_file_.is_open() ? &flops_file_ : opts_.out;
    if (out) {
      *out << "flops profiler: optimizer step " << step << " (" << gas_ << " micro-step" << (gas_ == 1 ? "" : "s")
           << (step == opts_.first_step ? "; the run's first step, warm-up costs included" : "") << ")\n"
           << FormatProfile(report, flops_.detailed) << std::flush;
      if (!*out)
        return Internal("flops_profiler.output_file ", flops_.output_file.value_or("(standard output)"),
                        ": write failed");
    }
  }
  if (opts_.profile) {
    const bool warmup = !warmup_done_ && step == opts_.first_step;
    std::vector<std::vector<NodeTime>>& into = warmup ? warmup_ : total_;
    for (size_t p = 0; p < current_.size(); ++p) {
      into[p].resize(current_[p].size());
      for (size_t i = 0; i < current_[p].size(); ++i) {
        into[p][i].calls += current_[p][i].calls;
        into[p][i].seconds += current_[p][i].seconds;
      }
    }
    if (warmup) {
      warmup_seconds_ = seconds;
      warmup_done_ = true;
    } else {
      ++measured_steps_;
      measured_seconds_ += seconds;
    }
  }
  for (std::vector<NodeTime>& t : current_) std::fill(t.begin(), t.end(), NodeTime{});
  return Status::OK();
}

Status TrainingProfiler::Finish() {
  if (!opts_.profile) return Status::OK();
  // A run of one step has nothing but its warm-up to show.
  const bool only_warmup = measured_steps_ == 0;
  nlohmann::json report = only_warmup ? ProfileReport(programs_, warmup_, warmup_done_ ? 1 : 0, warmup_seconds_, 20, timing_)
                                      : ProfileReport(programs_, total_, measured_steps_, measured_seconds_, 20, timing_);
  report["warmup"] = nullptr;
  if (warmup_done_ && !only_warmup) {
    double kernel = 0;
    for (const auto& t : warmup_)
      for (const NodeTime& n : t) kernel += n.seconds;
    report["warmup"] = {{"step", opts_.first_step}, {"steps", 1}, {"step_ms", warmup_seconds_ * 1e3}, {"kernel_ms", kernel * 1e3}};
  }
  report["only_warmup"] = only_warmup;
  if (opts_.out) {
    if (only_warmup) *opts_.out << "dsrun --profile: the run had only its warm-up step; its times follow\n";
    *opts_.out << FormatProfile(report, true) << std::flush;
  }
  if (json_.is_open()) {
    json_ << report.dump(2) << "\n" << std::flush;
    if (!json_) return Internal("--profile ", opts_.json_path, ": write failed");
  }
  return Status::OK();
}

}  // namespace dsc
