// Text form: every malformed input gives an InvalidArgument naming line, column and the problem;
// nothing crashes on truncated or mangled text.
#include <gtest/gtest.h>

#include <random>

#include "ir/text.h"
#include "tests/ir/test_graphs.h"

namespace dsc {
namespace {

// Parses `text`, expects an InvalidArgument, and returns its message.
std::string ErrorOf(const std::string& text, const ParseOptions& opts = {}) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text, opts);
  EXPECT_FALSE(g.ok()) << "parsed unexpectedly:\n" << text;
  if (g.ok()) return "";
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << g.status().ToString();
  return g.status().message();
}

void ExpectError(const std::string& text, std::initializer_list<const char*> parts) {
  const std::string msg = ErrorOf(text);
  for (const char* part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in:\n" << msg;
}

// A graph around one node line.
std::string WithNode(const std::string& node) {
  return "main (float[2] x) => (y)\n{\n  " + node + "\n}\n";
}

TEST(TextErrors, SyntaxErrorShowsLineColumnAndCaret) {
  EXPECT_EQ(ErrorOf(WithNode("y = Relu(x x)")),
            "line 3, column 14: expected ')', found 'x'\n"
            "    y = Relu(x x)\n"
            "               ^");
}

TEST(TextErrors, EndOfInput) {
  ExpectError("main (float[2] x) => (y) {\n  y = Relu(x", {"line 2, column 13", "found end of input"});
  ExpectError("", {"line 1, column 1: expected the graph name, found end of input"});
}

TEST(TextErrors, LexicalErrors) {
  ExpectError(WithNode("y = Relu(\"x)"), {"line 3, column 12: unterminated string"});
  ExpectError(WithNode("y = Relu(\"\\q\")"), {"invalid escape sequence"});
  ExpectError(WithNode("y = Relu(x) $"), {"line 3, column 15: unexpected character"});
  ExpectError(WithNode("[unclosed y = Relu(x)"), {"expected ']' before the end of the line"});
}

TEST(TextErrors, UndefinedInputNamesNodeAndValue) {
  ExpectError(WithNode("[my_relu] y = Relu(\"fc1.weight\")"),
              {"line 3, column 22", "node 'my_relu' (Relu) uses 'fc1.weight'", "not a graph input"});
  ExpectError(WithNode("y = Relu(nope)"), {"node producing 'y' (Relu) uses 'nope'"});
}

TEST(TextErrors, ValueDefinedTwice) {
  ExpectError("main (float[2] x, float[2] x) => (x) {\n}", {"line 1, column 28", "value 'x' is defined twice"});
  ExpectError(WithNode("x = Relu(x)"), {"value 'x' is defined twice"});
  ExpectError(WithNode("y, y = Split(x)"), {"value 'y' is defined twice"});
  ExpectError("main (float[2] x) => (y)\n<\n  float[1] x = {1.0}\n>\n{\n  y = Relu(x)\n}",
              {"line 3", "value 'x' is defined twice"});
  ExpectError("main (float[2] x) => (y)\n{\n  y = Relu(x)\n  y = Neg(x)\n}", {"line 4, column 3", "defined twice"});
}

TEST(TextErrors, OutputNeverProduced) {
  ExpectError("main (float[2] x) => (float[2] z) {\n  y = Relu(x)\n}",
              {"line 1, column 32", "graph output 'z' is never produced"});
  ExpectError("main (float[2] x) => (float[3] x) {\n}", {"graph output 'x' is declared float[3] but defined as float[2]"});
}

TEST(TextErrors, TensorLiteralCountMismatch) {
  ExpectError("main () => (w)\n<\n  float[2,2] w = {1.0, 2.0, 3.0}\n>\n{\n}",
              {"line 3, column 18", "initializer 'w' has 3 values, its type float[2,2] needs 4"});
  ExpectError("main () => (w)\n<\n  float[1] w = {1.0, 2.0}\n>\n{\n}", {"has 2 values", "needs 1"});
  // A huge shape is refused without allocating it.
  ExpectError("main () => (w) <float[1000000000000] w = {1.0}> {}", {"has 1 values", "needs 1000000000000"});
  ExpectError("main () => (w) <float[4611686018427387904,4] w = {1.0}> {}", {"overflows int64"});
  ExpectError(WithNode("y = Constant <value = int64[3] {1, 2}> ()"), {"tensor attribute 'value' has 2 values"});
}

TEST(TextErrors, UnknownDType) {
  ExpectError("main (flaot[2] x) => (x) {}", {"line 1, column 7", "unknown element type 'flaot'"});
  ExpectError("main () => (w) <string[1] w = {1}> {}", {"unknown element type 'string'"});
}

TEST(TextErrors, LiteralsOutOfRange) {
  ExpectError("main () => (w) <int64[1] w = {9223372036854775808}> {}", {"integer literal out of range"});
  ExpectError(WithNode("y = Op <a = 99999999999999999999> (x)"), {"integer literal out of range"});
  ExpectError("main () => (w) <double[1] w = {1e999}> {}", {"float literal out of range"});
  ExpectError("main () => (w) <float[1] w = {1e39}> {}", {"out of range for float"});
  ExpectError("main () => (w) <float16[1] w = {70000}> {}", {"out of range for float16"});
  ExpectError("main () => (w) <int8[1] w = {128}> {}", {"value 128 is out of range for int8"});
  ExpectError("main () => (w) <uint8[1] w = {-1}> {}", {"out of range for uint8"});
  ExpectError("main () => (w) <bool[1] w = {2}> {}", {"out of range for bool"});
  ExpectError("main () => (w) <int32[1] w = {1.5}> {}", {"expected an integer for int32 data"});
  ExpectError("main (float[-1] x) => (x) {}", {"negative dimension -1"});
}

TEST(TextErrors, AttributeErrors) {
  ExpectError(WithNode("y = Op <perm = []> (x)"), {"empty list is ambiguous", "perm: ints = []"});
  ExpectError(WithNode("y = Op <a: int = 1.5> (x)"), {"attribute 'a' is declared int, found a float"});
  ExpectError(WithNode("y = Op <a: ints = [1, 2.5]> (x)"), {"expected an integer in ints attribute 'a'"});
  ExpectError(WithNode("y = Op <a = [1, \"s\"]> (x)"), {"expected a string in strings attribute 'a'"});
  ExpectError(WithNode("y = Op <a: graph = 1> (x)"), {"unknown or unsupported attribute type 'graph'"});
  ExpectError(WithNode("y = Op <a = 1, a = 2> (x)"), {"attribute 'a' is given twice"});
  ExpectError(WithNode("y = Op <a = @ref> (x)"), {"attribute references (@name) are not supported"});
  ExpectError(WithNode("y = Op <a = float {1.0}> (x)"), {"tensor attribute 'a' needs a shape"});
}

TEST(TextErrors, HeaderErrors) {
  ExpectError("<ir_version: 8, ir_version: 9> main () => () {}", {"'ir_version' is given twice"});
  ExpectError("<opset_import: [\"\" : 1, \"\" : 2]> main () => () {}", {"imported twice"});
  ExpectError("<color: 3> main () => () {}", {"unknown model header field 'color'"});
  ExpectError("<metadata_props: [\"k\" : 1]> main () => () {}", {"expected a string value, found '1'"});
}

TEST(TextErrors, ValueInfoErrors) {
  ExpectError("main (float[2] x) => (y) <float[2] z> {\n  y = Relu(x)\n}", {"value_info for 'z', which no node produces"});
  ExpectError("main (float[2] x) => (y) <float[2] x> {\n  y = Relu(x)\n}", {"a graph input or initializer"});
  ExpectError("main (float[2] x) => (y) <float[batch] w = {1.0}> {\n  y = Relu(x)\n}", {"must have a static shape"});
}

TEST(TextErrors, CycleIsReported) {
  ExpectError("main (float[2] x) => (b) {\n  a = Add(x, b)\n  b = Relu(a)\n}", {"graph has a cycle"});
}

TEST(TextErrors, TrailingText) {
  ExpectError("main () => () {}\nextra", {"line 2, column 1: expected the end of the text"});
}

// Every prefix of a real model either fails with a Status or (only when complete) parses.
TEST(TextErrors, EveryTruncationFailsCleanly) {
  const std::string text = PrintGraph(*testing::MakeMlp());
  const size_t complete = text.rfind('}') + 1;
  for (size_t len = 0; len < text.size(); ++len) {
    StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text.substr(0, len));
    if (len < complete) EXPECT_FALSE(g.ok()) << "prefix of length " << len << " parsed";
    else EXPECT_TRUE(g.ok()) << g.status().ToString();
  }
}

// Random byte edits never crash the parser (they may still parse: that is fine).
TEST(TextErrors, MangledTextNeverCrashes) {
  const std::string text = PrintGraph(*testing::MakeMlp());
  const char kBytes[] = "<>()[]{},:=?.@-\"\\#\n 0123456789e.xyz_";
  std::mt19937 rng(1);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string t = text;
    for (int k = 0; k < 3; ++k) {
      size_t at = rng() % t.size();
      switch (rng() % 3) {
        case 0: t[at] = kBytes[rng() % (sizeof kBytes - 1)]; break;
        case 1: t.erase(at, 1 + rng() % 8); break;
        default: t.insert(at, 1, kBytes[rng() % (sizeof kBytes - 1)]); break;
      }
      if (t.empty()) t.push_back('x');
    }
    StatusOr<std::unique_ptr<Graph>> g = ParseGraph(t);
    if (g.ok()) {
      // Whatever parsed prints canonically.
      const std::string printed = PrintGraph(**g);
      StatusOr<std::unique_ptr<Graph>> again = ParseGraph(printed);
      ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << printed;
      EXPECT_EQ(PrintGraph(**again), printed);
    }
  }
}

}  // namespace
}  // namespace dsc
