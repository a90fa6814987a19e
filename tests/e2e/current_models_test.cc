// End-to-end on models exported by current PyTorch (models/current/, written by
// models/export_current.py with torch 2.15 and transformers 5 in every exporter mode): every file
// compiles and trains; a file that keeps one initializer per PyTorch parameter trains on exactly
// PyTorch's parameters (count and elements) and follows PyTorch's 30-step Adam trajectory within
// 1e-4 relative. So does a file whose exporter's optimizer merged or folded parameters, once the
// import has restored them (frontend/restore_parameters.h): it trains PyTorch's parameter count and
// follows the trajectory. The files whose folds cannot be undone (kNotRestored) draw a warning
// naming a merged parameter instead.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ShellQuote;

using e2e::kRtol;
using e2e::ReadJson;

const fs::path& CurrentDir() {
  static const fs::path dir = fs::path(DSC_SOURCE_DIR) / "models" / "current";
  return dir;
}

std::vector<nlohmann::json> ExportedFiles() {
  std::vector<nlohmann::json> out;
  const nlohmann::json manifest = ReadJson(CurrentDir() / "manifest.json");
  for (const auto& f : manifest.at("files"))
    if (f.at("status") == "ok") out.push_back(f);
  return out;
}

std::string CaseName(const nlohmann::json& f) {
  std::string s = f.at("model").get<std::string>() + "_" + f.at("mode").get<std::string>();
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

int64_t MatchInt(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(pattern))) return -1;
  return std::stoll(m[1].str());
}

// One exported file of the manifest; printed by its path.
struct ExportCase {
  nlohmann::json f;
};
void PrintTo(const ExportCase& c, std::ostream* os) { *os << c.f.at("file").get<std::string>(); }

// Files whose optimizer folded a parameter through an op the import cannot undo (they warn, naming
// it), or whose restored parameters still differ from PyTorch's (they need not warn), and why.
struct NotRestoredFile {
  const char* why;
  bool warns;
};
const std::map<std::string, NotRestoredFile>& NotRestored() {
  static const std::map<std::string, NotRestoredFile> files = {
      {"gemma2/gemma2.dynamo_default.onnx", {"Gemma's RMSNorm scale 1 + w folded into one constant", true}},
      {"wav2vec2/wav2vec2.dynamo_default.onnx", {"weight_norm's parametrization folded into the conv weight", true}},
      {"deberta/deberta.dynamo_default.onnx", {"relative-position projections of a constant table, folded", true}},
      // Restored, the encoder's sinusoidal positions train: PyTorch sets requires_grad=False on
      // them, which torch.export's signature (PARAMETER) does not record.
      {"whisper/whisper.dynamo_default.onnx", {"a frozen parameter the file cannot mark as frozen", false}}};
  return files;
}

class CurrentExport : public ::testing::TestWithParam<ExportCase> {};

TEST_P(CurrentExport, CompilesTrainsAndKeepsPyTorchsParameters) {
  const nlohmann::json& f = GetParam().f;
  const fs::path model = CurrentDir() / f.at("file").get<std::string>();
  const fs::path model_dir = CurrentDir() / f.at("model").get<std::string>();
  const fs::path config = fs::path(DSC_SOURCE_DIR) / "models" / "reference_configs" / "adam.json";
  const nlohmann::json params = ReadJson(model_dir / "reference" / "parameters.json");
  const auto want = ReadJson(model_dir / "reference" / "trajectories" / "adam.json").at("loss").get<std::vector<double>>();

  testing::TempDir tmp;
  const std::string plan = tmp.File("plan.dsplan");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model.string()) + " --config " +
                                        ShellQuote(config.string()) + " -o " + ShellQuote(plan));
  ASSERT_EQ(c.rc, 0) << c.output;

  const std::string file = f.at("file").get<std::string>();
  const bool own = f.at("every_parameter_own_initializer").get<bool>();
  const bool restored = !own && !NotRestored().count(file);
  if (own || restored) {
    if (own) {
      EXPECT_EQ(c.output.find("warning:"), std::string::npos) << c.output;
    }
    EXPECT_EQ(c.output.find("no initializer of their own"), std::string::npos) << c.output;
    EXPECT_EQ(MatchInt(c.output, R"(trainable parameters \((\d+)\):)"), params.at("trainable_count").get<int64_t>())
        << c.output;
    // A restored lookup table holds only the rows the file kept.
    if (own) {
      EXPECT_EQ(MatchInt(c.output, R"(total (\d+) elements)"), params.at("trainable_elements").get<int64_t>()) << c.output;
    }
  } else if (NotRestored().at(file).warns) {
    // The warning names at least one parameter the exporter merged or folded away.
    std::vector<std::string> names = f.at("parameters_without_initializer").get<std::vector<std::string>>();
    for (const auto& [kept, merged] : f.at("merged_initializers").items()) {
      names.push_back(kept);
      for (const auto& n : merged) names.push_back(n.get<std::string>());
    }
    for (const auto& m : f.at("mapped_by_value")) names.push_back(m.at("torch_name").get<std::string>());
    bool named = false;
    for (const std::string& n : names) named |= c.output.find("warning:") != std::string::npos &&
                                                c.output.find("'" + n + "'") != std::string::npos;
    EXPECT_TRUE(named) << "no warning names a merged parameter:\n" << c.output;
  }

  const std::vector<double> got = e2e::DsrunLosses(plan, model_dir / "data", want.size(), tmp);
  ASSERT_EQ(got.size(), want.size());
  for (double l : got) ASSERT_TRUE(std::isfinite(l)) << "loss " << l;
  // The first step runs before any update: every file computes PyTorch's initial loss.
  EXPECT_LE(std::fabs(got[0] - want[0]), kRtol * std::fabs(want[0])) << got[0] << " vs PyTorch " << want[0];
  if (own || restored) e2e::ExpectSameTrajectory(got, want, file);
}

std::vector<ExportCase> ExportCases() {
  std::vector<ExportCase> out;
  for (nlohmann::json& f : ExportedFiles()) out.push_back({std::move(f)});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Models, CurrentExport, ::testing::ValuesIn(ExportCases()),
                         [](const ::testing::TestParamInfo<ExportCase>& info) { return CaseName(info.param.f); });

// Mixed precision on real architectures: each model's helper export compiles in bf16 and in fp16
// (dynamic loss scaling) and trains with finite losses; its first loss, computed before any update
// by the half model, is PyTorch's fp32 initial loss within half-precision rounding. fp16 may skip
// early steps (gemma2's fp32-minimum mask constants overflow fp16, which the precision pass warns
// about) but the scale then settles and steps apply.
struct HalfCase {
  nlohmann::json f;
  std::string dtype;
};
void PrintTo(const HalfCase& c, std::ostream* os) { *os << c.f.at("file").get<std::string>() << " " << c.dtype; }

class CurrentExportHalf : public ::testing::TestWithParam<HalfCase> {};

TEST_P(CurrentExportHalf, CompilesAndTrains) {
  const HalfCase& c = GetParam();
  const fs::path model = CurrentDir() / c.f.at("file").get<std::string>();
  const fs::path model_dir = CurrentDir() / c.f.at("model").get<std::string>();
  const auto want = ReadJson(model_dir / "reference" / "trajectories" / "adam.json").at("loss").get<std::vector<double>>();
  nlohmann::json cfg = {{"train_batch_size", 16}, {"train_micro_batch_size_per_gpu", 16},
                        {"gradient_clipping", 0}, {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}}},
                        {c.dtype, {{"enabled", true}}}};
  testing::TempDir tmp;
  testing::WriteFileOrDie(tmp.File("ds.json"), cfg.dump());
  const std::string plan = tmp.File("plan.dsplan");
  CommandResult r = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model.string()) + " --config " +
                                        ShellQuote(tmp.File("ds.json")) + " -q -o " + ShellQuote(plan));
  ASSERT_EQ(r.rc, 0) << r.output;
  const std::string metrics = tmp.File("m.jsonl");
  r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
                          ShellQuote((model_dir / "data").string()) + " --steps 10 --no-shuffle -q --metrics " +
                          ShellQuote(metrics));
  ASSERT_EQ(r.rc, 0) << r.output;
  std::ifstream in(metrics);
  std::vector<nlohmann::json> steps;
  for (std::string line; std::getline(in, line);) steps.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(steps.size(), 10u);
  int applied = 0;
  for (const auto& s : steps) {
    ASSERT_TRUE(std::isfinite(s.at("loss").get<double>())) << s.dump();
    applied += s.at("skipped").get<bool>() ? 0 : 1;
  }
  EXPECT_GE(applied, 3) << "the loss scale never settled";
  const double first = steps[0].at("loss").get<double>();
  EXPECT_LE(std::fabs(first - want[0]), 1e-2 * std::fabs(want[0])) << first << " vs PyTorch fp32 " << want[0];
}

std::vector<HalfCase> HalfCases() {
  std::vector<HalfCase> out;
  for (nlohmann::json& f : ExportedFiles())
    if (f.at("mode") == "helper")
      for (const char* dtype : {"bf16", "fp16"}) out.push_back({f, dtype});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Models, CurrentExportHalf, ::testing::ValuesIn(HalfCases()),
                         [](const ::testing::TestParamInfo<HalfCase>& info) {
                           return CaseName(info.param.f) + "_" + info.param.dtype;
                         });

// The recognize pass finds every exporter's attention chain (passes/recognize_attention.cc): the
// SDPA, GPT-2 and Llama exports of each mode (dynamo at opsets 18 and 20, with and without its
// optimizer, torch 1.13's legacy exporter, the helper) and the bundled gpt (hand-written, torch
// 1.13) get one causal Attention per layer and keep no Softmax, BERT (no padding in its data: the
// mask folds away) one Attention without a mask. The opset-23 exports already hold ONNX's
// Attention and are left alone. (tests/passes/recognize/ has the masked and refused cases.)
TEST(CurrentExports, AttentionChainsAreRecognized) {
  struct Want {
    std::string file;
    int attention;
    bool causal;
  };
  const std::vector<Want> wants = {
      {"sdpa/sdpa.dynamo_default.onnx", 2, true},   {"sdpa/sdpa.dynamo18.onnx", 2, true},
      {"sdpa/sdpa.dynamo_default_noopt.onnx", 2, true}, {"sdpa/sdpa.legacy17.onnx", 2, true},
      {"sdpa/sdpa.legacy18.onnx", 2, true},         {"gpt2/gpt2.dynamo_default.onnx", 2, true},
      {"gpt2/gpt2.dynamo18_noopt.onnx", 2, true},   {"gpt2/gpt2.dynamo_default_noopt.onnx", 2, true},
      {"gpt2/gpt2.helper.onnx", 2, true},           {"llama/llama.dynamo_default.onnx", 2, true},
      {"bert/bert.legacy17.onnx", 2, false},        {"sdpa/sdpa.dynamo23_noopt.onnx", 0, false},
      {"../gpt/gpt.onnx", 2, true}};
  const fs::path config = fs::path(DSC_SOURCE_DIR) / "models" / "reference_configs" / "adam.json";
  for (const Want& w : wants) {
    testing::TempDir tmp;
    CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((CurrentDir() / w.file).string()) +
                                          " --config " + ShellQuote(config.string()) +
                                          " --stop-after-pass-num=6 --print-ir-after=recognize -q -o " +
                                          ShellQuote(tmp.File("plan")));
    ASSERT_EQ(c.rc, 0) << w.file << "\n" << c.output;
    int attention = 0, causal = 0, masked = 0;
    std::istringstream in(c.output);
    for (std::string line; std::getline(in, line);) {
      if (line.find("ai.dscompile.Attention") == std::string::npos) continue;
      ++attention;
      if (line.find("is_causal = 1") != std::string::npos) ++causal;
      // A fourth input after Q, K, V: a mask.
      if (std::count(line.begin() + static_cast<std::ptrdiff_t>(line.rfind('(')), line.end(), ',') == 3) ++masked;
    }
    EXPECT_EQ(attention, w.attention) << w.file << "\n" << c.output;
    EXPECT_EQ(causal, w.causal ? w.attention : 0) << w.file;
    EXPECT_EQ(masked, 0) << w.file;
    if (w.attention) {
      EXPECT_FALSE(std::regex_search(c.output, std::regex(" = Softmax[ (<]"))) << w.file << "\n" << c.output;
    }
  }
}

// Every model the generator knows is exported by at least the helper and the dynamo exporter.
TEST(CurrentExports, EveryModelHasTheHelpersFile) {
  std::set<std::string> models, with_helper;
  const nlohmann::json manifest = ReadJson(CurrentDir() / "manifest.json");
  for (const auto& f : manifest.at("files")) {
    models.insert(f.at("model").get<std::string>());
    if (f.at("mode") == "helper" && f.at("status") == "ok") with_helper.insert(f.at("model").get<std::string>());
  }
  EXPECT_GE(models.size(), 5u);
  EXPECT_EQ(models, with_helper);
}

}  // namespace
}  // namespace dsc
