// Sequence ops folded into tensor ops at import (frontend/fold_sequences.cc): the legacy exporter's
// split/unbind/stack patterns, list building, and the refusal of a structure known only at run time.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "frontend/onnx_import.h"
#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"

namespace dsc {
namespace {

StatusOr<std::unique_ptr<Graph>> ImportText(const char* text) {
  onnx::ModelProto m;
  auto st = onnx::OnnxParser::Parse(m, text);
  if (!st.IsOK()) return InvalidArgument("test model does not parse: ", st.ErrorMessage());
  return ImportOnnxBytes(m.SerializeAsString(), "", "seq.onnx");
}

const Node* ProducerOf(const Graph& g, const std::string& value) {
  const Value* v = g.FindValue(value);
  return v ? v->producer() : nullptr;
}

std::vector<int64_t> DimsOf(const Value* v) {
  std::vector<int64_t> d;
  if (v && v->type.shape)
    for (const Dim& x : *v->type.shape) d.push_back(x.value);
  return d;
}

void ExpectNoSequenceOps(const Graph& g) {
  for (const auto& n : g.nodes())
    EXPECT_EQ(n->op_type().rfind("Sequence", 0), std::string::npos) << n->Describe();
}

// torch.split(x, 2, dim=1)[1] as the legacy exporter writes it: a chunk size, then SequenceAt.
TEST(FoldSequences, SplitToSequenceChunkThenAt) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[3,6] x) => (float[3,2] y) {
      two = Constant <value = int64 {2}> ()
      seq = SplitToSequence <axis = 1> (x, two)
      one = Constant <value = int64 {1}> ()
      y = SequenceAt (seq, one)
    })");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectNoSequenceOps(**g);
  const Node* id = ProducerOf(**g, "y");
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->op_type(), "Identity");
  const Node* split = id->input(0)->producer();
  ASSERT_NE(split, nullptr);
  EXPECT_EQ(split->op_type(), "Split");
  EXPECT_EQ(id->input(0), split->output(1));  // the second of the three pieces
  ASSERT_TRUE(split->input(1)->is_initializer());
  EXPECT_EQ(split->input(1)->initializer().ToInt64Vector(), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(DimsOf((*g)->FindValue("y")), (std::vector<int64_t>{3, 2}));
}

// torch.stack(torch.unbind(x, 0), 1): keepdims=0 pieces are squeezed, new_axis=1 unsqueezes them.
TEST(FoldSequences, UnbindThenStackIsATranspose) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[3,4] x) => (float[4,3] y) {
      seq = SplitToSequence <axis = 0, keepdims = 0> (x)
      y = ConcatFromSequence <axis = 1, new_axis = 1> (seq)
    })");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectNoSequenceOps(**g);
  const Node* concat = ProducerOf(**g, "y");
  ASSERT_NE(concat, nullptr);
  EXPECT_EQ(concat->op_type(), "Concat");
  EXPECT_EQ(concat->GetInt("axis", -99), 1);
  ASSERT_EQ(concat->num_inputs(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const Node* u = concat->input(i)->producer();
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->op_type(), "Unsqueeze");
    EXPECT_EQ(DimsOf(concat->input(i)), (std::vector<int64_t>{4, 1}));
    const Node* sq = u->input(0)->producer();
    ASSERT_NE(sq, nullptr);
    EXPECT_EQ(sq->op_type(), "Squeeze");
    EXPECT_EQ(DimsOf(u->input(0)), (std::vector<int64_t>{4}));
  }
  EXPECT_EQ(DimsOf((*g)->FindValue("y")), (std::vector<int64_t>{4, 3}));
}

// A list built, grown at the front and measured: Concat sees (c, a, b), the length is a constant 3.
TEST(FoldSequences, ConstructInsertLengthConcat) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1,2] a, float[2,2] b, float[3,2] c) => (float[6,2] y, int64 n) {
      s0 = SequenceConstruct (a, b)
      zero = Constant <value = int64 {0}> ()
      s1 = SequenceInsert (s0, c, zero)
      n = SequenceLength (s1)
      y = ConcatFromSequence <axis = 0> (s1)
    })");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectNoSequenceOps(**g);
  const Node* concat = ProducerOf(**g, "y");
  ASSERT_NE(concat, nullptr);
  ASSERT_EQ(concat->num_inputs(), 3u);
  EXPECT_EQ(concat->input(0)->name(), "c");
  EXPECT_EQ(concat->input(1)->name(), "a");
  EXPECT_EQ(concat->input(2)->name(), "b");
  const Node* len = ProducerOf(**g, "n");
  ASSERT_NE(len, nullptr);
  EXPECT_EQ(len->op_type(), "Constant");
  const Tensor* t = len->GetTensor("value");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ToInt64Vector(), (std::vector<int64_t>{3}));
}

// SequenceErase with a negative position, explicit split sizes (keepdims does not apply to them).
TEST(FoldSequences, ExplicitSizesAndErase) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2,5] x) => (float[2,4] y) {
      sizes = Constant <value = int64[3] {1, 3, 1}> ()
      seq = SplitToSequence <axis = -1, keepdims = 0> (x, sizes)
      last = Constant <value = int64 {-1}> ()
      rest = SequenceErase (seq, last)
      y = ConcatFromSequence <axis = -1> (rest)
    })");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectNoSequenceOps(**g);
  const Node* concat = ProducerOf(**g, "y");
  ASSERT_NE(concat, nullptr);
  ASSERT_EQ(concat->num_inputs(), 2u);
  EXPECT_EQ(DimsOf(concat->input(0)), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(DimsOf(concat->input(1)), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(DimsOf((*g)->FindValue("y")), (std::vector<int64_t>{2, 4}));
}

// torch.chunk under torch.jit.script: the sizes are computed from Shape(x); x's dims are static, so
// they are evaluated at import (Split into {2, 2, 2}, the third piece read).
TEST(FoldSequences, SizesComputedFromStaticShape) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[3,6] x) => (float[3,2] y) {
      shape = Shape (x)
      ax = Constant <value = int64 {1}> ()
      dim = Gather <axis = 0> (shape, ax)
      three = Constant <value = int64 {3}> ()
      chunk = Div (dim, three)
      zero = Constant <value = int64[1] {0}> ()
      c1 = Unsqueeze (chunk, zero)
      sizes = Concat <axis = 0> (c1, c1, c1)
      seq = SplitToSequence <axis = 1> (x, sizes)
      two = Constant <value = int64 {2}> ()
      y = SequenceAt (seq, two)
    })");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectNoSequenceOps(**g);
  const Node* id = ProducerOf(**g, "y");
  ASSERT_NE(id, nullptr);
  const Node* split = id->input(0)->producer();
  ASSERT_NE(split, nullptr);
  EXPECT_EQ(split->op_type(), "Split");
  EXPECT_EQ(id->input(0), split->output(2));
  ASSERT_TRUE(split->input(1)->is_initializer());
  EXPECT_EQ(split->input(1)->initializer().ToInt64Vector(), (std::vector<int64_t>{2, 2, 2}));
}

// A position computed at run time: the structure is not static, refused naming the node.
TEST(FoldSequences, DynamicPositionRefused) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[3,6] x, int64 i) => (float[3,2] y) {
      two = Constant <value = int64 {2}> ()
      seq = SplitToSequence <axis = 1> (x, two)
      y = SequenceAt (seq, i)
    })");
  ASSERT_FALSE(g.ok());
  const std::string e = g.status().ToString();
  EXPECT_NE(e.find("SequenceAt"), std::string::npos) << e;
  EXPECT_NE(e.find("not static"), std::string::npos) << e;
}

// Splitting a symbolic dim into chunks: the number of pieces is unknown, refused.
TEST(FoldSequences, DynamicPieceCountRefused) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[3,N] x) => (float[3,2] y) {
      two = Constant <value = int64 {2}> ()
      seq = SplitToSequence <axis = 1> (x, two)
      zero = Constant <value = int64 {0}> ()
      y = SequenceAt (seq, zero)
    })");
  ASSERT_FALSE(g.ok());
  const std::string e = g.status().ToString();
  EXPECT_NE(e.find("SplitToSequence"), std::string::npos) << e;
  EXPECT_NE(e.find("not static"), std::string::npos) << e;
}

// torch.chunk(x, 3, dim=1)[2] on a [batch, 7] tensor as the legacy exporter writes it: the sizes
// come from dim 1 of Shape(x), static although dim 0 is not.
TEST(FoldSequences, SizesFromAStaticDimOfADynamicShape) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[B,7] x) => (float[B,1] y) {
      shape = Shape (x)
      one = Constant <value = int64 {1}> ()
      len = Gather <axis = 0> (shape, one)
      three = Constant <value = int64 {3}> ()
      two = Constant <value = int64 {2}> ()
      lenp = Add (len, two)
      chunk = Div (lenp, three)
      zero1 = Constant <value = int64[1] {0}> ()
      chunk1 = Unsqueeze (chunk, zero1)
      twice = Mul (chunk, two)
      last = Sub (len, twice)
      last1 = Unsqueeze (last, zero1)
      sizes = Concat <axis = 0> (chunk1, chunk1, last1)
      seq = SplitToSequence <axis = 1> (x, sizes)
      y = SequenceAt (seq, two)
    })");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectNoSequenceOps(**g);
  const Node* split = ProducerOf(**g, "y")->input(0)->producer();
  ASSERT_NE(split, nullptr);
  ASSERT_TRUE(split->input(1)->is_initializer());
  EXPECT_EQ(split->input(1)->initializer().ToInt64Vector(), (std::vector<int64_t>{3, 3, 1}));
}

// torch.chunk(x, 6, dim=1)[2] on a [batch, 7] tensor gives 4 chunks in PyTorch, but the legacy
// exporter writes six sizes, the last negative: a broken file, refused with the sizes named.
TEST(FoldSequences, NegativeSizesRefused) {
  auto g = ImportText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[B,7] x) => (float[B,2] y) {
      sizes = Constant <value = int64[6] {2, 2, 2, 2, 2, -3}> ()
      seq = SplitToSequence <axis = 1> (x, sizes)
      two = Constant <value = int64 {2}> ()
      y = SequenceAt (seq, two)
    })");
  ASSERT_FALSE(g.ok());
  const std::string e = g.status().ToString();
  EXPECT_NE(e.find("[2, 2, 2, 2, 2, -3]"), std::string::npos) << e;
  EXPECT_NE(e.find("torch.chunk"), std::string::npos) << e;
}

}  // namespace
}  // namespace dsc
