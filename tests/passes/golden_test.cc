// Golden tests for passes: every tests/passes/<pass>/*.txt holds an input graph in IR text, the
// context to run with, and the expected output (text, "unchanged", or an error substring).
//
// File layout:
//   # context: micro_batch=4 dim=seq=16 loss=NAME freeze=REGEX     (optional; keys repeatable)
//   # ----- input
//   <graph>
//   # ----- expect                 (graph text; compared after print(parse()) normalisation)
//   # ----- expect-unchanged       (the pass must report no change and leave the text identical)
//   # ----- expect-error           (the next non-empty line is a substring of the error)
// The input is shape-inferred first, as the importer does for every model.
// Set DSC_UPDATE_GOLDEN=1 to rewrite `expect` sections from the current output (then review the diff).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/shape_inference.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "passes/pass.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;

struct GoldenCase {
  fs::path path;
  std::string pass;
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
        else if (k == "loss") c.ctx.loss = v;
        else if (k == "freeze") c.ctx.freeze.push_back(v);
        else if (k == "dim") {
          auto e2 = v.find('=');
          c.ctx.dims[v.substr(0, e2)] = std::stoll(v.substr(e2 + 1));
        } else ADD_FAILURE() << p << ": unknown context key " << k;
      }
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
  auto g = ParseGraph(c.input, popts);
  ASSERT_TRUE(g.ok()) << c.path << ": input does not parse: " << g.status().ToString();
  // Every pass sees a typed graph in the pipeline (the importer infers types), so the input does too.
  Status typed = InferShapes(**g);
  ASSERT_TRUE(typed.ok()) << c.path << ": " << typed.ToString();
  const std::string before = PrintGraph(**g);
  auto id = PassIdFromName(c.pass);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto pass = CreatePass(*id);
  Module module;
  module.programs.push_back(PlanProgram{"main", std::move(*g)});
  Graph* graph = module.programs[0].graph.get();
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
  EXPECT_TRUE(VerifyGraph(*graph, v).ok()) << VerifyGraph(*graph, v).ToString();
  const std::string after = PrintGraph(*graph);
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
  auto expected = ParseGraph(c.expected, popts);
  ASSERT_TRUE(expected.ok()) << c.path << ": expected text does not parse: " << expected.status().ToString();
  EXPECT_EQ(PrintGraph(**expected), after) << c.path;
}

INSTANTIATE_TEST_SUITE_P(Passes, GoldenTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string n = info.param.parent_path().filename().string() + "_" + info.param.stem().string();
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace dsc
