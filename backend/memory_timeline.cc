// The bytes alive at every node of a plan's programs, by kind, and their SVG picture.
#include "backend/memory_timeline.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/plan_summary.h"
#include "backend/svg_chart.h"
#include "ir/dsc_ops.h"
#include "passes/memory_plan.h"

namespace dsc {
namespace {

using json = nlohmann::json;

constexpr const char* kActivations = "activations";
constexpr const char* kGradients = "gradients";
constexpr const char* kGathered = "gathered parameters";
constexpr const char* kCommBuffers = "communication buffers";
// Drawing order, bottom to top, after the state bands.
constexpr const char* kArenaKinds[] = {kGathered, kGradients, kCommBuffers, kActivations};
// The summary's per-rank state figures, bottom to top, and how the picture names them.
constexpr std::pair<const char*, const char*> kStateKinds[] = {{"parameters", "parameters"},
                                                              {"master_weights", "master weights"},
                                                              {"gradients", "gradient accumulators"},
                                                              {"optimizer_states", "optimizer states"},
                                                              {"buffers", "buffers"}};

// The collective kind a node's outputs come from: a per-tensor collective's own op, a Wait's
// Start's kind, "" otherwise.
std::string CollectiveOutputKind(const Node& n) {
  if (n.domain() != kDscDomain) return "";
  const std::string& op = n.op_type();
  if (op == ops::kAllReduce || op == ops::kReduceScatter || op == ops::kAllGather) return op;
  if (op == ops::kCollectiveWait && n.num_inputs() > 0 && n.input(0) && n.input(0)->producer())
    return ops::KindOfStart(n.input(0)->producer()->op_type());
  return "";
}

// True when a reader takes `v` as a parameter's gradient (see the header's kinds).
bool ReadAsGradient(const Value& v) {
  for (const Use& u : v.uses()) {
    const Node& n = *u.node;
    if (n.domain() != kDscDomain) continue;
    const std::string& op = n.op_type();
    if ((op == ops::kAccumulate || ops::IsOptimizerUpdate(n.domain(), op)) && u.input_index == 1) return true;
    if (op == ops::kAllReduce || op == ops::kReduceScatter || op == ops::kAllReduceStart ||
        op == ops::kReduceScatterStart)
      return true;
  }
  return false;
}

const char* KindOf(const Value& v) {
  const Node& producer = *v.producer();
  if (producer.domain() == kDscDomain && !ops::KindOfStart(producer.op_type()).empty()) return kCommBuffers;
  const std::string collective = CollectiveOutputKind(producer);
  if (collective == ops::kAllGather) return kGathered;
  if (collective == ops::kAllReduce || collective == ops::kReduceScatter || ReadAsGradient(v)) return kGradients;
  return kActivations;
}

std::string NodeName(const Node& n) {
  if (!n.name().empty() || n.num_outputs() == 0) return n.name();
  return n.output(0)->name();
}

StatusOr<MemoryPlan> PlanOf(const PlanProgram& p) {
  const Graph& g = *p.graph;
  if (auto meta = g.metadata.find(kMemoryPlanKey); meta != g.metadata.end()) {
    StatusOr<MemoryPlan> mp = MemoryPlanFromJson(meta->second);
    if (!mp.ok()) return mp.status().WithContext("program '" + p.name + "'");
    return mp;
  }
  StatusOr<MemoryPlan> mp = ComputeMemoryPlan(g);
  if (!mp.ok()) return mp.status().WithContext("program '" + p.name + "'");
  return mp;
}

StatusOr<json> ProgramTimeline(const PlanProgram& p) {
  const Graph& g = *p.graph;
  ASSIGN_OR_RETURN(const MemoryPlan mp, PlanOf(p));
  struct Val {
    const Value* v;
    int begin, last;
    const char* kind;
  };
  std::vector<Val> vals;
  std::unordered_map<const Value*, size_t> index;
  std::vector<const Node*> nodes;
  const int n = static_cast<int>(g.num_nodes());
  for (const auto& node : g.nodes()) {
    const int pos = static_cast<int>(nodes.size());
    nodes.push_back(node.get());
    for (const Value* v : node->outputs()) {
      if (mp.host_slots.count(v->name())) continue;  // a ToHost output: the host arena, not this one
      if (!mp.slots.count(v->name()))
        return FailedPrecondition("program '", p.name, "': its memory plan has no slot for '", v->name(),
                                  "' (compile the plan again)");
      index[v] = vals.size();
      vals.push_back(Val{v, pos, v->is_graph_output() ? n - 1 : pos, KindOf(*v)});
    }
    for (const Value* v : node->inputs())
      if (auto it = v ? index.find(v) : index.end(); it != index.end()) vals[it->second].last = pos;
  }

  // Groups of values sharing bytes: the root (a value aliasing nothing) owns the slot.
  std::unordered_map<std::string, size_t> by_name;
  for (size_t i = 0; i < vals.size(); ++i) by_name[vals[i].v->name()] = i;
  auto root_of = [&](size_t i) {
    for (int hops = 0; hops <= static_cast<int>(vals.size()); ++hops) {
      auto a = mp.aliases.find(vals[i].v->name());
      if (a == mp.aliases.end()) return i;
      auto of = by_name.find(a->second.of);
      if (of == by_name.end()) return i;
      i = of->second;
    }
    return i;
  };
  struct Group {
    int64_t offset = 0, bytes = 0;
    int begin = 0, last = 0;
    std::vector<size_t> members;  // in order of their producers
  };
  std::map<size_t, Group> groups;
  for (size_t i = 0; i < vals.size(); ++i) {
    const size_t r = root_of(i);
    auto [it, fresh] = groups.try_emplace(r);
    Group& grp = it->second;
    if (fresh) {
      const MemoryPlan::Slot& s = mp.slots.at(vals[r].v->name());
      grp.offset = s.offset;
      grp.bytes = s.bytes;
      grp.begin = vals[i].begin;
      grp.last = vals[i].last;
    }
    grp.begin = std::min(grp.begin, vals[i].begin);
    grp.last = std::max(grp.last, vals[i].last);
    grp.members.push_back(i);
  }

  // Live bytes by kind through difference arrays; the extent through a sweep over begin/end events.
  std::map<std::string, std::vector<int64_t>> diff;
  std::vector<std::vector<int64_t>> starts(n + 1), ends(n + 1);  // tops (offset + bytes) of groups
  for (const auto& [root, grp] : groups) {
    for (size_t k = 0; k < grp.members.size(); ++k) {
      const Val& m = vals[grp.members[k]];
      const int from = k == 0 ? grp.begin : m.begin;
      const int to = k + 1 < grp.members.size() ? vals[grp.members[k + 1]].begin - 1 : grp.last;
      if (to < from) continue;
      std::vector<int64_t>& d = diff[m.kind];
      if (d.empty()) d.assign(n + 1, 0);
      d[from] += grp.bytes;
      d[to + 1] -= grp.bytes;
    }
    starts[grp.begin].push_back(grp.offset + grp.bytes);
    ends[grp.last + 1].push_back(grp.offset + grp.bytes);
  }
  json live = json::object();
  std::vector<int64_t> total(n, 0);
  for (const char* kind : kArenaKinds) {
    auto d = diff.find(kind);
    if (d == diff.end()) continue;
    std::vector<int64_t> series(n);
    int64_t run = 0;
    for (int i = 0; i < n; ++i) {
      run += d->second[i];
      series[i] = run;
      total[i] += run;
    }
    live[kind] = series;
  }
  std::vector<int64_t> extent(n, 0);
  std::multiset<int64_t> tops;
  int peak = -1, arena_peak = -1;
  for (int i = 0; i < n; ++i) {
    for (int64_t top : ends[i]) tops.erase(tops.find(top));
    for (int64_t top : starts[i]) tops.insert(top);
    extent[i] = tops.empty() ? 0 : *tops.rbegin();
    if (arena_peak < 0 || extent[i] > extent[arena_peak]) arena_peak = i;
    if (peak < 0 || total[i] > total[peak]) peak = i;
  }

  json labels = json::array(), op_types = json::array();
  for (const Node* node : nodes) {
    labels.push_back(NodeName(*node));
    op_types.push_back(node->op_type());
  }
  json out = {{"name", p.name},         {"num_nodes", n},      {"arena_bytes", mp.arena_bytes},
              {"nodes", labels},        {"ops", op_types},     {"live", live},
              {"arena_extent", extent}, {"peak", nullptr},     {"arena_peak", nullptr}};
  if (arena_peak >= 0)
    out["arena_peak"] = {{"index", arena_peak},
                         {"node", NodeName(*nodes[arena_peak])},
                         {"op", nodes[arena_peak]->op_type()},
                         {"arena_extent", extent[arena_peak]}};
  if (peak >= 0) {
    // The groups alive at the peak, largest first, named by the member current there.
    std::vector<std::pair<int64_t, json>> at_peak;
    for (const auto& [root, grp] : groups) {
      if (grp.begin > peak || grp.last < peak) continue;
      size_t cur = grp.members.front();
      for (size_t m : grp.members)
        if (vals[m].begin <= peak) cur = m;
      const Val& v = vals[cur];
      at_peak.push_back({grp.bytes, json{{"value", v.v->name()},
                                         {"kind", v.kind},
                                         {"bytes", grp.bytes},
                                         {"producer", v.v->producer()->op_type()}}});
    }
    std::stable_sort(at_peak.begin(), at_peak.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    json top = json::array();
    for (size_t k = 0; k < at_peak.size() && k < 5; ++k) top.push_back(at_peak[k].second);
    out["peak"] = {{"index", peak},
                   {"node", NodeName(*nodes[peak])},
                   {"op", nodes[peak]->op_type()},
                   {"arena_extent", extent[peak]},
                   {"live_bytes", total[peak]},
                   {"top", top}};
  }
  return out;
}

}  // namespace

StatusOr<json> MemoryTimeline(const Plan& plan, const std::string& only_program) {
  const json summary = SummarizePlan(plan, only_program);
  json state = json::object();
  for (const auto& [key, name] : kStateKinds) state[key] = summary["memory"].value(key, int64_t{0});
  json programs = json::array();
  for (const PlanProgram& p : plan.programs) {
    if (!p.graph || (!only_program.empty() && p.name != only_program)) continue;
    ASSIGN_OR_RETURN(json t, ProgramTimeline(p));
    programs.push_back(std::move(t));
  }
  return json{{"version", 1}, {"world_size", plan.world_size}, {"state", state}, {"programs", programs}};
}

namespace {

// The end of a long name (where exported names differ), marked as cut.
std::string Tail(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  std::string out = "...";
  out.append(s, s.size() - (width - 3), std::string::npos);
  return out;
}

// Per pixel column, the node of most bytes in it (state is the same for all, so the most arena
// bytes); every node when the program is narrower than the panel.
std::vector<int> Columns(const std::vector<int64_t>& total, const std::vector<int64_t>& extent, int width, int peak) {
  const int n = static_cast<int>(total.size());
  std::vector<int> picks;
  if (n <= width) {
    for (int i = 0; i < n; ++i) picks.push_back(i);
    return picks;
  }
  for (int c = 0; c < width; ++c) {
    const int from = static_cast<int>(static_cast<int64_t>(c) * n / width);
    const int to = static_cast<int>(static_cast<int64_t>(c + 1) * n / width);
    int best = from;
    for (int i = from; i < to; ++i) {
      if (i == peak) {
        best = i;
        break;
      }
      if (std::max(total[i], extent[i]) > std::max(total[best], extent[best])) best = i;
    }
    picks.push_back(best);
  }
  return picks;
}

}  // namespace

std::string RenderMemoryTimelineSvg(const json& timeline, const std::string& title) {
  constexpr double kWidth = 1080, kLeft = 100, kPlotWidth = 600, kPanelHeight = 260, kTop = 46, kGap = 120;
  const json& programs = timeline["programs"];
  SvgDocument doc(kWidth, kTop + static_cast<double>(programs.size()) * (kPanelHeight + kGap) - kGap + 60);
  doc.Text(kLeft, 22, "Memory per rank over each program's schedule: " + title, 15, "start", "font-weight=\"bold\"");

  int64_t state_total = 0;
  std::vector<std::pair<std::string, int64_t>> state;
  for (const auto& [key, name] : kStateKinds) {
    const int64_t b = timeline["state"].value(key, int64_t{0});
    if (b > 0) state.push_back({name, b});
    state_total += b;
  }
  // One color per kind across panels: state kinds first, then the arena's.
  std::map<std::string, std::string> colors;
  size_t next = 0;
  for (const auto& [key, name] : kStateKinds) colors[name] = PaletteColor(next++);
  for (const char* k : kArenaKinds) colors[k] = PaletteColor(next++);

  double y = kTop;
  for (const json& p : programs) {
    const std::vector<int64_t> extent = p["arena_extent"].get<std::vector<int64_t>>();
    const int n = static_cast<int>(extent.size());
    std::vector<std::pair<std::string, std::vector<int64_t>>> arena;
    std::vector<int64_t> total(n, 0);
    for (const char* k : kArenaKinds)
      if (p["live"].contains(k)) {
        arena.push_back({k, p["live"][k].get<std::vector<int64_t>>()});
        for (int i = 0; i < n; ++i) total[i] += arena.back().second[i];
      }
    const int peak = p["peak"].is_null() ? -1 : p["peak"]["index"].get<int>();
    const std::vector<int> cols = Columns(total, extent, static_cast<int>(kPlotWidth), peak);
    const double ymax =
        static_cast<double>(state_total + std::max(p["arena_bytes"].get<int64_t>(), int64_t{1})) * 1.08;
    ChartPanel panel(&doc, {kLeft, y, kPlotWidth, kPanelHeight}, 0, std::max(n, 1), 0, ymax);
    std::vector<double> xs;
    for (int c : cols) xs.push_back(c);
    // Constant state bands, then the arena's kinds stacked on them.
    std::vector<double> lower(cols.size(), 0.0), upper(cols.size(), 0.0);
    std::vector<std::pair<std::string, int64_t>> legend;
    for (const auto& [name, bytes] : state) {
      for (size_t c = 0; c < cols.size(); ++c) upper[c] = lower[c] + static_cast<double>(bytes);
      panel.StepBand(xs, lower, upper, colors[name], name + ": " + HumanBytes(bytes));
      legend.push_back({name, bytes});
      lower = upper;
    }
    for (const auto& [kind, series] : arena) {
      int64_t most = 0;
      for (int i = 0; i < n; ++i) most = std::max(most, series[i]);
      for (size_t c = 0; c < cols.size(); ++c) upper[c] = lower[c] + static_cast<double>(series[cols[c]]);
      panel.StepBand(xs, lower, upper, colors[kind], kind);
      legend.push_back({kind, -most});
      lower = upper;
    }
    std::vector<double> ext;
    for (int c : cols) ext.push_back(static_cast<double>(state_total + extent[c]));
    panel.StepLine(xs, ext, "#222", 1.2, "5,3");
    double unit = 1;
    while (ymax / unit >= 1024 && unit < 1099511627776.0) unit *= 1024;
    panel.Axes("node (schedule order)", "bytes", [](double v) { return HumanBytes(static_cast<int64_t>(v)); }, nullptr,
               unit);
    doc.Text(kLeft, y - 8,
             "program " + p["name"].get<std::string>() + ": " + std::to_string(n) + " nodes, arena " +
                 HumanBytes(p["arena_bytes"].get<int64_t>()) + " on top of " + HumanBytes(state_total) + " of state",
             13, "start", "font-weight=\"bold\"");

    // Legend and the peak's largest values, right of the panel.
    double ly = y + 4;
    const double lx = kLeft + kPlotWidth + 20;
    for (auto it = legend.rbegin(); it != legend.rend(); ++it) {
      doc.Rect(lx, ly, 12, 12, colors[it->first]);
      doc.Text(lx + 18, ly + 10,
               it->first + (it->second >= 0 ? " " + HumanBytes(it->second) : " (up to " + HumanBytes(-it->second) + ")"),
               11);
      ly += 17;
    }
    doc.Line(lx, ly + 6, lx + 12, ly + 6, "#222", 1.2, "5,3");
    doc.Text(lx + 18, ly + 10, "arena in use (highest byte)", 11);
    ly += 26;
    if (peak >= 0) {
      const json& pk = p["peak"];
      const int64_t live = pk["live_bytes"].get<int64_t>(), arena_bytes = p["arena_bytes"].get<int64_t>();
      const double px = panel.X(peak), py = panel.Y(static_cast<double>(state_total + live));
      doc.Line(px, y, px, y + kPanelHeight, "#c00", 1, "2,2");
      doc.Add("<circle cx=\"" + std::to_string(px) + "\" cy=\"" + std::to_string(py) + "\" r=\"4\" fill=\"#c00\"/>\n");
      doc.Text(lx, ly, "peak: " + HumanBytes(live) + " alive at node " + std::to_string(peak) + " (" +
                           pk["op"].get<std::string>() + ")",
               11, "start", "fill=\"#c00\" font-weight=\"bold\"");
      ly += 15;
      doc.Text(lx, ly, Tail(pk["node"].get<std::string>(), 48), 10, "start", "fill=\"#c00\"");
      ly += 15;
      if (arena_bytes > live) {
        char pct[32];
        std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * static_cast<double>(arena_bytes - live) / static_cast<double>(live));
        doc.Text(lx, ly, "arena placed in " + HumanBytes(arena_bytes) + " (+" + pct + " fragmentation)", 10);
        ly += 15;
      }
      ly += 4;
      doc.Text(lx, ly, "largest values alive at the peak:", 11);
      ly += 14;
      for (const json& t : pk["top"]) {
        doc.Text(lx + 6, ly, HumanBytes(t["bytes"].get<int64_t>()) + "  " + Tail(t["value"].get<std::string>(), 36), 10);
        ly += 13;
      }
    }
    y += kPanelHeight + kGap;
  }
  return doc.Finish();
}

}  // namespace dsc
