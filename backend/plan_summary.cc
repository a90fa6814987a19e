// Plan summaries and graph exports for dsinspect.
#include "backend/plan_summary.h"

#include "backend/precision_summary.h"

#include "passes/memory_plan.h"
#include "runtime/communicator.h"  // the byte model (header only)

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "ir/onnx_convert.h"
#include "ir/text.h"

namespace dsc {
namespace {

using json = nlohmann::json;

json ShapeJson(const std::optional<Shape>& shape) {
  if (!shape) return nullptr;
  json out = json::array();
  for (const Dim& d : *shape) {
    if (d.is_static()) out.push_back(d.value);
    else if (!d.symbol.empty()) out.push_back(d.symbol);
    else out.push_back(nullptr);
  }
  return out;
}

json ValueJson(const Value* v) {
  return {{"name", v->name()}, {"dtype", DTypeName(v->type.dtype)}, {"shape", ShapeJson(v->type.shape)}};
}

std::string OpKey(const Node& n) { return n.domain().empty() ? n.op_type() : n.domain() + "." + n.op_type(); }

// A JSON value that may be a number or a string ("auto" in DeepSpeed configs), or absent.
const json* Lookup(const json& obj, std::initializer_list<const char*> path) {
  const json* cur = &obj;
  for (const char* key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

bool Enabled(const json& config, const char* section) {
  const json* e = Lookup(config, {section, "enabled"});
  if (!e) return false;
  if (e->is_boolean()) return e->get<bool>();
  if (e->is_string()) return e->get<std::string>() == "true" || e->get<std::string>() == "auto";
  return false;
}

json ConfigSummary(const json& config) {
  json out = json::object();
  for (const char* key : {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"})
    if (const json* v = Lookup(config, {key})) out[key] = *v;
  if (const json* t = Lookup(config, {"optimizer", "type"})) out["optimizer"] = *t;
  if (const json* s = Lookup(config, {"zero_optimization", "stage"})) out["zero_stage"] = *s;
  // DeepSpeed accepts "bfloat16" as an alias of the "bf16" section.
  if (Enabled(config, "fp16")) out["precision"] = "fp16";
  else if (Enabled(config, "bf16") || Enabled(config, "bfloat16")) out["precision"] = "bf16";
  else out["precision"] = "fp32";
  return out;
}

json ProgramSummary(const PlanProgram& p) {
  const Graph& g = *p.graph;
  json out = json::object();
  out["name"] = p.name;
  out["num_nodes"] = g.num_nodes();
  std::map<std::string, int64_t> ops;
  for (const auto& n : g.nodes()) ++ops[OpKey(*n)];
  out["ops"] = ops;
  json inputs = json::array(), outputs = json::array();
  for (const Value* v : g.inputs()) inputs.push_back(ValueJson(v));
  for (const Value* v : g.outputs()) outputs.push_back(ValueJson(v));
  out["inputs"] = inputs;
  out["outputs"] = outputs;
  out["loss"] = g.training.loss.empty() ? json(nullptr) : json(g.training.loss);

  json params = ParameterTable(g);
  int64_t numel = 0, bytes = 0;
  for (const json& row : params) {
    if (row["numel"].is_number()) numel += row["numel"].get<int64_t>();
    if (row["bytes"].is_number()) bytes += row["bytes"].get<int64_t>();
  }
  out["parameters"] = params;
  out["num_parameter_tensors"] = params.size();
  out["num_parameters"] = numel;
  out["parameter_bytes"] = bytes;

  const std::set<std::string> trainable(g.training.parameters.begin(), g.training.parameters.end());
  int64_t constants = 0, constant_bytes = 0;
  for (const Value* v : g.initializers()) {
    if (trainable.count(v->name())) continue;
    ++constants;
    constant_bytes += static_cast<int64_t>(v->initializer().nbytes());
  }
  out["num_constants"] = constants;
  out["constant_bytes"] = constant_bytes;
  auto plan_meta = g.metadata.find(kMemoryPlanKey);
  if (plan_meta != g.metadata.end()) {
    StatusOr<MemoryPlan> mp = MemoryPlanFromJson(plan_meta->second);
    if (mp.ok()) {
      // Each aliased value with the op that made it, and how many of each kind per op type.
      json aliases = json::array();
      std::map<std::string, std::map<std::string, int64_t>> by_kind;
      for (const auto& n : g.nodes())
        for (const Value* v : n->outputs()) {
          auto a = mp->aliases.find(v->name());
          if (a == mp->aliases.end()) continue;
          const char* kind = AliasKindName(a->second.kind);
          aliases.push_back({{"value", v->name()}, {"of", a->second.of}, {"kind", kind}, {"op", n->op_type()}});
          ++by_kind[kind][n->op_type()];
        }
      out["memory"] = {{"arena_bytes", mp->arena_bytes},
                       {"unaliased_arena_bytes", mp->unaliased_arena_bytes},
                       {"unshared_bytes", mp->unshared_bytes},
                       {"constant_bytes", constant_bytes},
                       {"views", by_kind["view"]},
                       {"in_place", by_kind["in-place"]},
                       {"aliases", aliases}};
    }
  }
  return out;
}

// Bytes one rank sends per optimizer step, by collective kind, under the ring model of
// runtime/communicator.h (all-reduce 2(N-1)/N of the buffer, reduce-scatter and all-gather
// (N-1)/N of the whole padded buffer); micro_step runs gradient_accumulation_steps times.
json CommunicationPerStep(const Plan& plan) {
  const int64_t n = plan.world_size;
  int64_t gas = 1;
  if (plan.config.is_object() && plan.config.contains("gradient_accumulation_steps") &&
      plan.config["gradient_accumulation_steps"].is_number_integer())
    gas = plan.config["gradient_accumulation_steps"].get<int64_t>();
  std::map<std::string, int64_t> kinds = {{"all_reduce", 0}, {"reduce_scatter", 0}, {"all_gather", 0}};
  auto numel = [](const Value* v) {
    int64_t e = 1;
    if (v && v->type.shape)
      for (const Dim& d : *v->type.shape) e *= std::max<int64_t>(d.value, 0);
    return e;
  };
  for (const PlanProgram& p : plan.programs) {
    const int64_t times = p.name == "micro_step" ? gas : 1;
    for (const auto& node : p.graph->nodes()) {
      if (node->domain() != kDscDomain || n <= 1) continue;
      const int64_t elem = static_cast<int64_t>(DTypeSize(node->input(0)->type.dtype));
      const int size = static_cast<int>(n);
      const std::string& op = node->op_type();
      // Reduce-scatter and all-gather move the whole padded buffer: world x chunk elements.
      if (op == "AllReduce") {
        kinds["all_reduce"] += times * AllReduceBytesSent(numel(node->output(0)) * elem, size);
      } else if (op == "ReduceScatter") {
        kinds["reduce_scatter"] += times * ReduceScatterBytesSent(n * numel(node->output(0)) * elem, size);
      } else if (op == "AllGather") {
        kinds["all_gather"] += times * AllGatherBytesSent(n * numel(node->input(0)) * elem, size);
      } else if (op == "AllGatherInPlace") {
        const int64_t c = (numel(node->input(0)) + n - 1) / n;
        kinds["all_gather"] += times * AllGatherBytesSent(n * c * elem, size);
      }
    }
  }
  json out = kinds;
  out["total"] = kinds["all_reduce"] + kinds["reduce_scatter"] + kinds["all_gather"];
  return out;
}

// The state table and the per-rank bytes by kind (what every rank holds for the whole run).
void AddStateAndMemory(const Plan& plan, json* out) {
  json state = json::array();
  std::map<std::string, int64_t> by_kind;
  for (const StateInfo& st : plan.state) {
    StatusOr<int64_t> n = NumElements(st.dims);
    const int64_t numel = n.ok() ? *n : 0;
    const int64_t bytes = numel * static_cast<int64_t>(DTypeSize(st.dtype));
    state.push_back({{"name", st.name}, {"kind", StateKindName(st.kind)}, {"owner", st.owner},
                     {"dtype", DTypeName(st.dtype)}, {"shape", st.dims}, {"numel", numel}, {"bytes", bytes},
                     {"zero_init", st.zero_init}, {"shard_of_numel", st.shard_of_numel}});
    by_kind[StateKindName(st.kind)] += bytes;
  }
  (*out)["state"] = state;
  int64_t activations = 0;
  json per_program = json::object();
  for (const json& p : (*out)["programs"])
    if (p.contains("memory")) {
      activations = std::max(activations, p["memory"]["arena_bytes"].get<int64_t>());
      per_program[p["name"].get<std::string>()] = p["memory"]["arena_bytes"];
    }
  (*out)["communication"] = CommunicationPerStep(plan);
  // Values produced by collectives (gathered parameters, reduced chunks): they live in the
  // activation arena, so this is a breakdown of activations_peak, not an addition to it.
  int64_t comm_buffers = 0;
  for (const PlanProgram& p : plan.programs)
    for (const auto& node : p.graph->nodes()) {
      const std::string& op = node->op_type();
      if (node->domain() != kDscDomain || (op != "AllReduce" && op != "ReduceScatter" && op != "AllGather")) continue;
      int64_t e = static_cast<int64_t>(DTypeSize(node->output(0)->type.dtype));
      for (const Dim& d : *node->output(0)->type.shape) e *= d.value;
      comm_buffers += e;
    }
  (*out)["memory"] = {{"parameters", by_kind["parameter"]},
                      {"gradients", by_kind["gradient"]},
                      {"optimizer_states", by_kind["optimizer"]},
                      {"master_weights", by_kind["master"]},
                      {"model_states", by_kind["parameter"] + by_kind["gradient"] + by_kind["optimizer"] + by_kind["master"]},
                      {"buffers", by_kind["buffer"]},
                      {"activations_peak", activations},
                      {"communication_buffers", comm_buffers},
                      {"arena_bytes_by_program", per_program}};
}

// --- text rendering

std::string Grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string HumanBytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string HumanSeconds(double s) {
  char buf[32];
  if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.0f us", s * 1e6);
  else if (s < 1) std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

std::string ShapeText(const json& shape) {
  if (shape.is_null()) return "[?rank]";
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    const json& d = shape[i];
    out += d.is_number() ? std::to_string(d.get<int64_t>()) : d.is_string() ? d.get<std::string>() : "?";
  }
  return out + "]";
}

std::string Scalar(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string Pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }
std::string PadLeft(const std::string& s, size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }

// Rows of cells printed with each column as wide as its widest cell; `right` marks numeric columns.
void Table(std::ostream& os, const std::string& indent, const std::vector<std::vector<std::string>>& rows,
           const std::vector<bool>& right) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], r[c].size());
    }
  for (const auto& r : rows) {
    std::string line = indent;
    for (size_t c = 0; c < r.size(); ++c) {
      const bool last = c + 1 == r.size();
      const bool align_right = c < right.size() && right[c];
      line += align_right ? PadLeft(r[c], width[c]) : (last ? r[c] : Pad(r[c], width[c]));
      if (!last) line += "  ";
    }
    os << line << "\n";
  }
}

void RenderValues(std::ostream& os, const char* title, const json& values) {
  os << "  " << title << ":" << (values.empty() ? " none" : "") << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const json& v : values)
    rows.push_back({v["name"].get<std::string>(), v["dtype"].get<std::string>() + ShapeText(v["shape"])});
  Table(os, "    ", rows, {});
}

void RenderProgram(std::ostream& os, const json& p) {
  os << "\nprogram " << p["name"].get<std::string>() << " (" << p["num_nodes"].get<int64_t>() << " nodes)\n";
  std::vector<std::pair<std::string, int64_t>> ops;
  for (auto it = p["ops"].begin(); it != p["ops"].end(); ++it) ops.emplace_back(it.key(), it.value().get<int64_t>());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  os << "  ops:" << (ops.empty() ? " none" : "") << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& [type, count] : ops) rows.push_back({type, std::to_string(count)});
  Table(os, "    ", rows, {false, true});
  RenderValues(os, "inputs", p["inputs"]);
  RenderValues(os, "outputs", p["outputs"]);
  os << "  loss: " << (p["loss"].is_null() ? "(not chosen)" : p["loss"].get<std::string>()) << "\n";

  // After accumulate the parameters are plan state (listed once, below), not graph initializers.
  if (p["num_parameter_tensors"].get<int64_t>() > 0)
  os << "  parameters: " << p["num_parameter_tensors"].get<int64_t>() << " tensors, "
     << Grouped(p["num_parameters"].get<int64_t>()) << " elements, " << HumanBytes(p["parameter_bytes"].get<int64_t>())
     << "\n";
  if (!p["parameters"].empty()) {
    rows = {{"name", "dtype", "shape", "numel", "bytes"}};
    for (const json& r : p["parameters"]) {
      rows.push_back({r["name"].get<std::string>(), r["dtype"].get<std::string>(), ShapeText(r["shape"]),
                      r["numel"].is_null() ? "?" : Grouped(r["numel"].get<int64_t>()),
                      r["bytes"].is_null() ? "?" : Grouped(r["bytes"].get<int64_t>())});
    }
    Table(os, "    ", rows, {false, false, false, true, true});
  }
  os << "  constants (non-trainable initializers): " << p["num_constants"].get<int64_t>() << " tensors, "
     << HumanBytes(p["constant_bytes"].get<int64_t>()) << "\n";
  if (p.contains("memory")) {
    const json& m = p["memory"];
    os << "  activation arena: " << HumanBytes(m["arena_bytes"].get<int64_t>()) << " (without aliasing: "
       << HumanBytes(m["unaliased_arena_bytes"].get<int64_t>())
       << "; one buffer per value: " << HumanBytes(m["unshared_bytes"].get<int64_t>()) << ")\n";
    // "views: Reshape 87, Slice 2" and "in place: Add 20, ...": which ops share their input's bytes.
    for (const auto& [key, label] : {std::pair{"views", "views (not computed)"}, std::pair{"in_place", "written in place"}}) {
      if (m[key].empty()) continue;
      int64_t total = 0;
      std::string ops;
      for (const auto& [op, count] : m[key].items()) {
        total += count.get<int64_t>();
        ops += StrCat(ops.empty() ? "" : ", ", op, " ", count.get<int64_t>());
      }
      os << "    " << label << ": " << total << " (" << ops << ")\n";
    }
  }
}

void RenderState(std::ostream& os, const json& s) {
  if (s["state"].empty()) return;
  std::vector<std::vector<std::string>> rows = {{"name", "dtype", "shape", "numel", "bytes"}};
  int64_t count = 0, numel = 0;
  for (const json& r : s["state"]) {
    if (r["kind"] != "parameter") continue;
    ++count;
    numel += r["numel"].get<int64_t>();
    std::string shape = ShapeText(r["shape"]);
    if (r["shard_of_numel"].get<int64_t>() > 0) shape += " (chunk of " + Grouped(r["shard_of_numel"].get<int64_t>()) + ")";
    rows.push_back({r["name"].get<std::string>(), r["dtype"].get<std::string>(), shape, Grouped(r["numel"].get<int64_t>()),
                    Grouped(r["bytes"].get<int64_t>())});
  }
  os << "\ntrained parameters (plan state): " << count << " tensors, " << Grouped(numel) << " elements\n";
  Table(os, "  ", rows, {false, false, false, true, true});
  const json& m = s["memory"];
  os << "\nmemory per rank:\n";
  std::vector<std::vector<std::string>> mem = {
      {"parameters", HumanBytes(m["parameters"].get<int64_t>())},
      {"gradients", HumanBytes(m["gradients"].get<int64_t>())},
      {"optimizer states", HumanBytes(m["optimizer_states"].get<int64_t>())},
      {"master weights", HumanBytes(m["master_weights"].get<int64_t>())},
      {"model states (sum of the above)", HumanBytes(m["model_states"].get<int64_t>())},
      {"buffers", HumanBytes(m["buffers"].get<int64_t>())},
      {"activations (peak arena)", HumanBytes(m["activations_peak"].get<int64_t>())}};
  Table(os, "  ", mem, {false, true});
  const json& c = s["communication"];
  if (c["total"].get<int64_t>() > 0) {
    os << "\ncommunication per rank per optimizer step:\n";
    std::vector<std::vector<std::string>> comm = {{"all-reduce", HumanBytes(c["all_reduce"].get<int64_t>())},
                                                  {"reduce-scatter", HumanBytes(c["reduce_scatter"].get<int64_t>())},
                                                  {"all-gather", HumanBytes(c["all_gather"].get<int64_t>())}};
    Table(os, "  ", comm, {false, true});
  }
}

// --- dot

std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': break;
      default: out += c;
    }
  }
  return out + "\"";
}

// A label with line breaks: each part quoted-escaped, joined by Graphviz's centred newline.
std::string DotLabel(const std::vector<std::string>& lines) {
  std::string joined;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string q = DotQuote(lines[i]);
    joined += (i ? "\\n" : "") + q.substr(1, q.size() - 2);
  }
  return "\"" + joined + "\"";
}

std::string TypeLabel(const TensorType& t) { return TypeToString(t); }

}  // namespace

json ParameterTable(const Graph& g) {
  json rows = json::array();
  for (const std::string& name : g.training.parameters) {
    const Value* v = g.FindValue(name);
    json row = {{"name", name}, {"dtype", "undefined"}, {"shape", nullptr}, {"numel", nullptr}, {"bytes", nullptr}};
    if (v && v->is_initializer()) {
      const Tensor& t = v->initializer();
      row["dtype"] = DTypeName(t.dtype());
      row["shape"] = t.dims();
      row["numel"] = t.numel();
      row["bytes"] = t.nbytes();
    } else if (v) {
      // A parameter that is not (or no longer) an initializer, e.g. fed as an input: use its type.
      row["dtype"] = DTypeName(v->type.dtype);
      row["shape"] = ShapeJson(v->type.shape);
      if (v->type.shape && IsStatic(*v->type.shape)) {
        std::vector<int64_t> dims;
        for (const Dim& d : *v->type.shape) dims.push_back(d.value);
        StatusOr<int64_t> n = NumElements(dims);
        if (n.ok()) {
          row["numel"] = *n;
          row["bytes"] = *n * static_cast<int64_t>(DTypeSize(v->type.dtype));
        }
      }
    }
    rows.push_back(row);
  }
  return rows;
}

json SummarizePlan(const Plan& plan, const std::string& only_program) {
  json out = json::object();
  out["producer"] = plan.producer;
  out["format_version"] = plan.format_version;
  out["source_model"] = plan.source_model;
  out["world_size"] = plan.world_size;
  out["command_line"] = plan.command_line;
  json pipeline = json::array();
  for (const PassRecord& r : plan.pipeline)
    pipeline.push_back({{"name", r.name}, {"changed", r.changed}, {"seconds", r.seconds}});
  out["pipeline"] = pipeline;
  out["config"] = ConfigSummary(plan.config);
  json programs = json::array();
  for (const PlanProgram& p : plan.programs)
    if (p.graph && (only_program.empty() || p.name == only_program)) programs.push_back(ProgramSummary(p));
  out["programs"] = programs;
  AddStateAndMemory(plan, &out);
  out["precision"] = PrecisionSummary(plan);
  return out;
}

std::string RenderSummaryText(const json& s, const std::string& plan_path) {
  std::ostringstream os;
  os << "plan " << plan_path << ": format version " << s["format_version"].get<int64_t>() << ", produced by "
     << s["producer"].get<std::string>() << "\n";
  os << "source model: " << (s["source_model"].get<std::string>().empty() ? "(unknown)" : s["source_model"].get<std::string>())
     << "\n";
  os << "world size: " << s["world_size"].get<int64_t>() << "\n";
  if (!s["command_line"].empty()) {
    os << "command line:";
    for (const json& a : s["command_line"]) os << " " << a.get<std::string>();
    os << "\n";
  }

  const json& c = s["config"];
  os << "config:";
  auto item = [&](const char* label, const char* key) {
    if (c.contains(key)) os << " " << label << "=" << Scalar(c[key]);
  };
  item("train_batch_size", "train_batch_size");
  item("micro_batch_per_gpu", "train_micro_batch_size_per_gpu");
  item("grad_accum", "gradient_accumulation_steps");
  item("optimizer", "optimizer");
  item("zero_stage", "zero_stage");
  item("precision", "precision");
  os << "\n";

  const json& pipeline = s["pipeline"];
  double total = 0;
  for (const json& r : pipeline) total += r["seconds"].get<double>();
  os << "\npipeline: " << pipeline.size() << " passes, " << HumanSeconds(total) << "\n";
  std::vector<std::vector<std::string>> rows;
  if (!pipeline.empty()) rows.push_back({"#", "pass", "changed", "time"});
  int i = 0;
  for (const json& r : pipeline)
    rows.push_back({std::to_string(++i), r["name"].get<std::string>(), r["changed"].get<bool>() ? "yes" : "no",
                    HumanSeconds(r["seconds"].get<double>())});
  Table(os, "  ", rows, {true, false, false, true});

  for (const json& p : s["programs"]) RenderProgram(os, p);
  RenderState(os, s);
  if (s.contains("precision")) RenderPrecisionText(os, s["precision"]);
  return os.str();
}

StatusOr<GraphFormat> ParseGraphFormat(const std::string& name) {
  if (name == "text") return GraphFormat::kText;
  if (name == "onnx") return GraphFormat::kOnnx;
  if (name == "dot") return GraphFormat::kDot;
  return InvalidArgument("unknown graph format '", name, "' (expected text, onnx or dot)");
}

StatusOr<std::string> ExportGraph(const Graph& g, GraphFormat format, int64_t elide_above) {
  switch (format) {
    case GraphFormat::kText: {
      PrintOptions opts;
      opts.elide_above = elide_above;
      return PrintGraph(g, opts);
    }
    case GraphFormat::kOnnx: {
      onnx::ModelProto m = GraphToOnnx(g);
      if (m.ByteSizeLong() > static_cast<size_t>(std::numeric_limits<int>::max()))
        return Unimplemented("graph '", g.name, "' is over 2 GiB as ONNX (protobuf's limit)");
      std::string bytes;
      if (!m.SerializeToString(&bytes)) return Internal("cannot serialize graph '", g.name, "' as ONNX");
      return bytes;
    }
    case GraphFormat::kDot: return GraphToDot(g);
  }
  return Internal("unhandled graph format");
}

std::string GraphToDot(const Graph& g) {
  std::ostringstream os;
  os << "digraph " << DotQuote(g.name) << " {\n";
  os << "  rankdir=TB;\n";
  os << "  node [fontname=\"Helvetica\", fontsize=11];\n";
  os << "  edge [fontname=\"Helvetica\", fontsize=9];\n";

  // Ids are synthetic (in0, w0, n0, out0) so that only labels need escaping.
  std::unordered_map<const Value*, std::string> source;  // value -> id of the dot node that defines it
  int k = 0;
  for (const Value* v : g.inputs()) {
    std::string id = StrCat("in", k++);
    source[v] = id;
    os << "  " << id << " [shape=ellipse, style=filled, fillcolor=\"#cfe2ff\", label="
       << DotLabel({v->name(), TypeLabel(v->type)}) << "];\n";
  }
  k = 0;
  for (const Value* v : g.initializers()) {
    std::string id = StrCat("w", k++);
    source[v] = id;
    os << "  " << id << " [shape=box, fontsize=8, height=0.2, style=filled, fillcolor=\"#eeeeee\", label="
       << DotLabel({v->name(), TypeLabel(v->type)}) << "];\n";
  }
  k = 0;
  std::vector<std::pair<const Node*, std::string>> node_ids;
  for (const auto& n : g.nodes()) {
    std::string id = StrCat("n", k++);
    node_ids.emplace_back(n.get(), id);
    for (const Value* o : n->outputs()) source[o] = id;
    std::vector<std::string> label = {OpKey(*n)};
    if (!n->name().empty()) label.push_back(n->name());
    os << "  " << id << " [shape=box, style=\"rounded,filled\", fillcolor=\"#fff3cd\", label=" << DotLabel(label) << "];\n";
  }
  k = 0;
  std::vector<std::string> out_ids;
  for (const Value* v : g.outputs()) {
    std::string id = StrCat("out", k++);
    out_ids.push_back(id);
    os << "  " << id << " [shape=ellipse, style=filled, fillcolor=\"#d1e7dd\", label="
       << DotLabel({v->name(), TypeLabel(v->type)}) << "];\n";
  }

  // A value with no definition (malformed graph) still gets a declared endpoint.
  int undefined = 0;
  auto source_of = [&](const Value* v) -> std::string {
    auto it = source.find(v);
    if (it != source.end()) return it->second;
    std::string id = StrCat("undef", undefined++);
    os << "  " << id << " [shape=plaintext, fontcolor=red, label=" << DotLabel({v->name(), "(undefined)"}) << "];\n";
    source[v] = id;
    return id;
  };
  auto edge_label = [](const Value* v) {
    return DotLabel({v->name(), v->type.shape ? ShapeToString(*v->type.shape) : "?"});
  };
  for (const auto& [n, id] : node_ids)
    for (const Value* in : n->inputs())
      if (in) {
        const std::string src = source_of(in);
        os << "  " << src << " -> " << id << " [label=" << edge_label(in) << "];\n";
      }
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const Value* v = g.outputs()[i];
    const std::string src = source_of(v);
    os << "  " << src << " -> " << out_ids[i] << " [label=" << edge_label(v) << "];\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace dsc
