// Golden tests for passes: every tests/passes/<pass>/*.txt holds an input graph in IR text, the
// context to run with, and the expected output (text, "unchanged", or an error substring).
//
// File layout:
//   # context: micro_batch=4 dim=seq=16 loss=NAME freeze=REGEX trainable=REGEX add_trainable=REGEX world=2
//              fuse_disabled=REWRITE   (optional; keys repeatable)
//   # context: pre=accumulate     (passes run before the one under test; comma-separated)
//   # config: {"train_batch_size": 8, ...}   (optional: a DeepSpeed config for PassContext::config)
//   # ----- input
//   <graph>                        (one program, named "main"), or several, each after a
//                                  "# ===== program NAME" line, as PrintModule prints them
//   # ----- expect                 (graph text; compared after print(parse()) normalisation)
//   # ----- expect-unchanged       (the pass must report no change and leave the text identical)
//   # ----- expect-error           (the next non-empty line is a substring of the error)
// The input is shape-inferred first, as the importer does for every model. The output is the
// module as PrintModule prints it, then, when the module has state, a "# ===== state" block with
// one line per state tensor: NAME KIND TYPE [owner=P] init|zeros.
// Set DSC_UPDATE_GOLDEN=1 to rewrite `expect` sections from the current output (then review the diff).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "frontend/config/ds_config.h"
#include "ir/shape_inference.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "passes/pass.h"
#include "passes/optimizer.h"
#include "passes/pass_manager.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;

struct GoldenCase {
  fs::path path;
  std::string pass;
  std::vector<std::string> pre;  // passes run first
  std::shared_ptr<DsConfig> config;
  PassContext ctx;
  std::string input;
  std::string mode;  // expect | expect-unchanged | expect-error
  std::string expected;
};

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

GoldenCase LoadCase(const fs::path& p) {
  GoldenCase c;
  c.path = p;
  c.pass = p.parent_path().filename().string();
  std::istringstream in(ReadAll(p));
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.rfind("# context:", 0) == 0 && section.empty()) {
      std::istringstream kv(line.substr(10));
      std::string item;
      while (kv >> item) {
        auto eq = item.find('=');
        std::string k = item.substr(0, eq), v = item.substr(eq + 1);
        if (k == "micro_batch") c.ctx.micro_batch = std::stoll(v);
        else if (k == "world") c.ctx.world_size = std::stoi(v);
        else if (k == "loss") c.ctx.loss = v;
        else if (k == "freeze") c.ctx.freeze.push_back(v);
        else if (k == "trainable") c.ctx.trainable.push_back(v);
        else if (k == "add_trainable") c.ctx.add_trainable.push_back(v);
        else if (k == "fuse_disabled") c.ctx.fuse_disabled.push_back(v);
        else if (k == "pre") {
          std::istringstream names(v);
          std::string name;
          while (std::getline(names, name, ',')) c.pre.push_back(name);
        }
        else if (k == "dim") {
          auto e2 = v.find('=');
          c.ctx.dims[v.substr(0, e2)] = std::stoll(v.substr(e2 + 1));
        } else ADD_FAILURE() << p << ": unknown context key " << k;
      }
      continue;
    }
    if (line.rfind("# config:", 0) == 0 && section.empty()) {
      std::vector<std::string> warnings;
      auto cfg = ParseDsConfig(line.substr(9), ConfigOptions{}, &warnings, p.string());
      if (!cfg.ok()) ADD_FAILURE() << p << ": config does not parse: " << cfg.status().ToString();
      else c.config = std::make_shared<DsConfig>(std::move(*cfg));
      c.ctx.config = c.config.get();
      continue;
    }
    if (line.rfind("# ----- ", 0) == 0) {
      section = line.substr(8);
      if (section != "input") c.mode = section;
      continue;
    }
    if (section == "input") c.input += line + "\n";
    else if (!section.empty()) c.expected += line + "\n";
  }
  return c;
}

constexpr const char* kProgramHeader = "# ===== program ";
constexpr const char* kStateHeader = "# ===== state";

// Splits module text into (program name, graph text); text without headers is one program "main".
std::vector<std::pair<std::string, std::string>> SplitPrograms(const std::string& text, std::string* state) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  bool in_state = false;
  while (std::getline(in, line)) {
    if (line.rfind(kProgramHeader, 0) == 0) {
      out.emplace_back(line.substr(std::string(kProgramHeader).size()), "");
      in_state = false;
    } else if (line.rfind(kStateHeader, 0) == 0) {
      in_state = true;
    } else if (in_state) {
      while (!line.empty() && line.back() == ' ') line.pop_back();
      if (!line.empty() && state) *state += line + "\n";
    } else {
      if (out.empty()) out.emplace_back("main", "");
      out.back().second += line + "\n";
    }
  }
  return out;
}

std::string PrintState(const Module& m) {
  if (m.state.empty()) return "";
  std::string out = std::string(kStateHeader) + "\n";
  for (const StateInfo& s : m.state) {
    Shape shape;
    for (int64_t d : s.dims) shape.push_back(Dim::Static(d));
    out += s.name + " " + StateKindName(s.kind) + " " + TypeToString(TensorType{s.dtype, shape});
    if (!s.owner.empty()) out += " owner=" + s.owner;
    out += s.zero_init ? " zeros\n" : " init\n";
  }
  return out;
}

std::string PrintAll(const Module& m) { return PrintModule(m, -1) + PrintState(m); }

// The expected text in printed form: each program parsed and printed, the state block as written.
StatusOr<std::string> NormalizeExpected(const std::string& text, const ParseOptions& popts) {
  std::string state;
  auto programs = SplitPrograms(text, &state);
  Module m;
  for (auto& [name, body] : programs) {
    ASSIGN_OR_RETURN(auto g, ParseGraph(body, popts));
    m.programs.push_back(PlanProgram{name, std::move(g)});
  }
  return PrintModule(m, -1) + (state.empty() ? "" : std::string(kStateHeader) + "\n" + state);
}

std::vector<fs::path> AllCases() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(DSC_GOLDEN_DIR))
    if (e.path().extension() == ".txt" && e.path().parent_path() != fs::path(DSC_GOLDEN_DIR))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

class GoldenTest : public ::testing::TestWithParam<fs::path> {};

TEST_P(GoldenTest, Matches) {
  GoldenCase c = LoadCase(GetParam());
  ParseOptions popts;
  popts.allow_elided = true;
  Module module;
  for (auto& [name, body] : SplitPrograms(c.input, nullptr)) {
    auto g = ParseGraph(body, popts);
    ASSERT_TRUE(g.ok()) << c.path << ": input program " << name << " does not parse: " << g.status().ToString();
    // Every pass sees a typed graph in the pipeline (the importer infers types), so the input does too.
    Status typed = InferShapes(**g);
    ASSERT_TRUE(typed.ok()) << c.path << ": " << typed.ToString();
    module.programs.push_back(PlanProgram{name, std::move(*g)});
  }
  for (const std::string& name : c.pre) {
    auto pre_id = PassIdFromName(name);
    ASSERT_TRUE(pre_id.ok()) << pre_id.status().ToString();
    StatusOr<bool> ran = CreatePass(*pre_id)->Run(module, c.ctx);
    ASSERT_TRUE(ran.ok()) << c.path << ": pre pass " << name << ": " << ran.status().ToString();
  }
  const std::string before = PrintAll(module);
  auto id = PassIdFromName(c.pass);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto pass = CreatePass(*id);
  StatusOr<bool> changed = pass->Run(module, c.ctx);

  if (c.mode == "expect-error") {
    ASSERT_FALSE(changed.ok()) << c.path << ": expected an error, the pass succeeded";
    std::string needle;
    std::istringstream in(c.expected);
    while (needle.empty() && std::getline(in, needle)) {}
    EXPECT_NE(changed.status().message().find(needle), std::string::npos)
        << c.path << ": error was: " << changed.status().message();
    return;
  }
  ASSERT_TRUE(changed.ok()) << c.path << ": " << changed.status().ToString();
  VerifyOptions v;
  v.require_static_shapes = pass->establishes_static_shapes();
  EXPECT_TRUE(VerifyModule(module, v).ok()) << VerifyModule(module, v).ToString();
  const std::string after = PrintAll(module);
  if (c.mode == "expect-unchanged") {
    EXPECT_FALSE(*changed) << c.path << ": pass reported a change";
    EXPECT_EQ(before, after) << c.path;
    return;
  }
  ASSERT_EQ(c.mode, "expect") << c.path << ": no expect section";
  EXPECT_TRUE(*changed) << c.path << ": pass reported no change";
  if (std::getenv("DSC_UPDATE_GOLDEN")) {
    std::string text = ReadAll(c.path);
    text = text.substr(0, text.find("# ----- expect")) + "# ----- expect\n" + after;
    std::ofstream(c.path) << text;
    return;
  }
  auto expected = NormalizeExpected(c.expected, popts);
  ASSERT_TRUE(expected.ok()) << c.path << ": expected text does not parse: " << expected.status().ToString();
  EXPECT_EQ(*expected, after) << c.path;
}

INSTANTIATE_TEST_SUITE_P(Passes, GoldenTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string n = info.param.parent_path().filename().string() + "_" + info.param.stem().string();
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// A config DeepSpeed accepts with settings dscompile does not implement parses (--explain-config
// explains it), and the pipeline refuses it before its first pass, naming every such setting.
TEST(PassManager, RefusesUnsupportedConfigSettingsBeforeTheFirstPass) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"},
      "zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}, "wandb": {"enabled": true}})",
                                         ConfigOptions{}, &warnings, "ds.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto g = ParseGraph(R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x) => (float[] y) {
  y = ReduceSum <keepdims = 0> (x)
})");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  Module module;
  module.programs.push_back(PlanProgram{"train", std::move(*g)});
  const std::string before = PrintAll(module);
  PassContext ctx;
  ctx.config = &*cfg;
  StatusOr<std::vector<PassRecord>> ran = RunPipeline(module, {PassId::kSpecialize}, ctx, PipelineOptions{});
  ASSERT_FALSE(ran.ok());
  const std::string& msg = ran.status().message();
  EXPECT_EQ(ran.status().code(), StatusCode::kUnimplemented) << msg;
  EXPECT_NE(msg.find("ds.json: accepted by DeepSpeed but not supported by dscompile"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  zero_optimization.offload_param.nvme_path: device \"nvme\" needs the folder"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  wandb: "), std::string::npos) << msg;
  EXPECT_EQ(PrintAll(module), before);
}

// What --explain-config lists: the config's unsupported settings, then the optimizer pass's own
// refusals (no optimizer; a type it has no update rule for), each naming its JSON path.
TEST(PassManager, CompileTimeRefusalsListWhatTheDefaultPipelineRefuses) {
  auto refusals = [](const std::string& text) {
    std::vector<std::string> warnings;
    StatusOr<DsConfig> cfg = ParseDsConfig(text, ConfigOptions{}, &warnings, "ds.json");
    EXPECT_TRUE(cfg.ok()) << text << ": " << cfg.status().ToString();
    return cfg.ok() ? CompileTimeRefusals(*cfg) : std::vector<std::string>{"<does not parse>"};
  };
  EXPECT_EQ(refusals(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW"}})"), std::vector<std::string>{});
  std::vector<std::string> r = refusals(R"({"train_batch_size": 8, "optimizer": {"params": {"lr": 1}}})");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].rfind("optimizer: no optimizer.type", 0), 0u) << r[0];
  r = refusals(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"amsgrad": true}}, "pipeline": {"stages": 2}})");
  ASSERT_EQ(r.size(), 2u);  // amsgrad once: recorded by the config, so the pass's own refusal is not repeated
  EXPECT_EQ(r[0].rfind("optimizer.params.amsgrad: ", 0), 0u) << r[0];
  EXPECT_EQ(r[1].rfind("pipeline: ", 0), 0u) << r[1];
  // A type that parses is listed exactly when the optimizer pass refuses it (none of these today).
  for (const char* type : {"Adam", "SGD", "Lamb", "Lion", "Adagrad", "RMSprop", "NAdam"}) {
    std::vector<std::string> warnings;
    StatusOr<DsConfig> cfg = ParseDsConfig(StrCat(R"({"train_batch_size": 8, "optimizer": {"type": ")", type, R"("}})"),
                                           ConfigOptions{}, &warnings);
    ASSERT_TRUE(cfg.ok()) << type << ": " << cfg.status().ToString();
    if (!cfg->unsupported.empty()) continue;  // refused before the pass
    const Status lowerable = CheckOptimizerLowerable(*cfg);
    EXPECT_EQ(CompileTimeRefusals(*cfg), lowerable.ok() ? std::vector<std::string>{} : std::vector<std::string>{lowerable.message()})
        << type;
    if (!lowerable.ok()) EXPECT_EQ(lowerable.message().rfind("optimizer.type: ", 0), 0u) << lowerable.message();
  }
  // OneCycle's cycle_momentum cycles betas: DeepSpeed disables it, with a warning, for an optimizer
  // without betas in its defaults (it trains; MuonWithAuxAdam's defaults are empty); with them every
  // optimizer cycles, NAdam too (its mu_product, a product over every step's beta1, is a state).
  for (const char* type : {"SGD", "Adagrad", "RMSprop", "Adadelta", "Muon", "Adam", "Lamb", "Lion", "Adamax", "NAdam",
                           "RAdam"}) {
    std::vector<std::string> warnings;
    StatusOr<DsConfig> cfg = ParseDsConfig(
        StrCat(R"({"train_batch_size": 8, "optimizer": {"type": ")", type,
               R"("}, "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.001, "cycle_max_lr": 0.01,
               "cycle_first_step_size": 10, "cycle_momentum": true}}})"),
        ConfigOptions{}, &warnings);
    ASSERT_TRUE(cfg.ok()) << type << ": " << cfg.status().ToString();
    const std::string t = type;
    const bool betas = cfg->optimizer.has_betas();
    EXPECT_EQ(betas, t != "SGD" && t != "Adagrad" && t != "RMSprop" && t != "Adadelta" && t != "Muon") << type;
    const std::vector<std::string> r = CompileTimeRefusals(*cfg);
    bool warned = false;
    for (const std::string& w : warnings) warned = warned || w.find("scheduler.params.cycle_momentum") != std::string::npos;
    EXPECT_EQ(warned, !betas) << type;
    EXPECT_EQ(r, std::vector<std::string>{}) << type;
  }
}

}  // namespace
}  // namespace dsc
