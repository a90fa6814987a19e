// Graph mutation: use-def bookkeeping, node removal, RAUW, topological sort, cloning.
#include <gtest/gtest.h>

#include "ir/text.h"
#include "tests/ir/test_graphs.h"

namespace dsc {
namespace {

const TensorType kF2{DType::kFloat32, Shape{Dim::Static(2)}};

TEST(Graph, AddNodeTracksUses) {
  Graph g;
  Value* x = g.AddInput("x", kF2);
  Node* a = g.AddNode("Relu", {x}, {"a"});
  Node* b = g.AddNode("Add", {a->output(0), x}, {"b"});
  EXPECT_EQ(x->uses().size(), 2u);
  EXPECT_EQ(a->output(0)->producer(), a);
  EXPECT_EQ(a->output(0)->uses(), (std::vector<Use>{{b, 0}}));
  EXPECT_EQ(g.FindValue("b"), b->output(0));
  EXPECT_EQ(g.UniqueName("b"), "b_1");
  EXPECT_EQ(g.UniqueName("fresh"), "fresh");
  b->SetInput(1, nullptr);
  EXPECT_EQ(x->uses().size(), 1u);
  EXPECT_EQ(b->input(1), nullptr);
}

TEST(Graph, AddNodeBefore) {
  Graph g;
  Value* x = g.AddInput("x", kF2);
  Node* last = g.AddNode("Neg", {x}, {"n"});
  g.AddNode("Relu", {x}, {"r"}, "", "", last);
  EXPECT_EQ(g.nodes().front()->op_type(), "Relu");
}

TEST(Graph, RemoveNode) {
  Graph g;
  Value* x = g.AddInput("x", kF2);
  Node* a = g.AddNode("Relu", {x}, {"a"});
  Node* b = g.AddNode("Neg", {a->output(0)}, {"b"});
  g.AddOutput(b->output(0));
  Status used = g.RemoveNode(a);
  EXPECT_FALSE(used.ok());
  EXPECT_NE(used.message().find("output 'a' is still used"), std::string::npos) << used.message();
  EXPECT_FALSE(g.RemoveNode(b).ok());  // a graph output
  g.SetOutputs({x});
  ASSERT_TRUE(g.RemoveNode(b).ok());
  EXPECT_TRUE(a->output(0)->uses().empty());
  EXPECT_EQ(g.FindValue("b"), nullptr);
  ASSERT_TRUE(g.RemoveNode(a).ok());
  EXPECT_EQ(g.num_nodes(), 0u);
  EXPECT_TRUE(x->uses().empty());
}

TEST(Graph, ReplaceAllUsesWithCoversGraphOutputs) {
  Graph g;
  Value* x = g.AddInput("x", kF2);
  Node* a = g.AddNode("Relu", {x}, {"a"});
  Node* b = g.AddNode("Neg", {a->output(0)}, {"b"});
  g.AddOutput(a->output(0));
  g.AddOutput(a->output(0));
  Node* c = g.AddNode("Abs", {x}, {"c"});
  g.ReplaceAllUsesWith(a->output(0), c->output(0));
  EXPECT_EQ(b->input(0), c->output(0));
  EXPECT_TRUE(a->output(0)->uses().empty());
  EXPECT_FALSE(a->output(0)->is_graph_output());
  EXPECT_TRUE(c->output(0)->is_graph_output());
  EXPECT_EQ(g.outputs(), (std::vector<Value*>{c->output(0), c->output(0)}));
  EXPECT_TRUE(g.RemoveNode(a).ok());
}

TEST(Graph, TopoSortIsStableAndFindsCycles) {
  Graph g;
  Value* x = g.AddInput("x", kF2);
  Node* late = g.AddNode("Neg", {}, {"late"});
  Node* free1 = g.AddNode("Abs", {x}, {"free1"});
  Node* early = g.AddNode("Relu", {x}, {"early"});
  late->AddInput(early->output(0));
  ASSERT_TRUE(g.TopoSort().ok());
  std::vector<std::string> order;
  for (const auto& n : g.nodes()) order.push_back(n->op_type());
  EXPECT_EQ(order, (std::vector<std::string>{"Abs", "Relu", "Neg"}));
  (void)free1;

  early->SetInput(0, late->output(0));  // Relu <-> Neg
  Status cycle = g.TopoSort();
  ASSERT_FALSE(cycle.ok());
  EXPECT_NE(cycle.message().find("cycle"), std::string::npos);
  EXPECT_EQ(g.num_nodes(), 3u);  // a failed sort leaves the graph whole
}

TEST(Graph, CloneIsIndependentAndPrintsTheSame) {
  auto g = testing::MakeMlp();
  auto c = g->Clone();
  EXPECT_EQ(PrintGraph(*c), PrintGraph(*g));
  c->nodes().front()->SetAttr("alpha", 2.0f);
  EXPECT_NE(PrintGraph(*c), PrintGraph(*g));
  for (const auto& n : c->nodes())
    for (Value* v : n->inputs()) EXPECT_EQ(c->FindValue(v->name()), v);  // no pointer into the original
}

TEST(Graph, InitializerConversionAndGarbage) {
  auto g = testing::MakeMlp();
  Value* w = g->FindValue("fc1.weight");
  g->ConvertInitializerToInput(w);
  EXPECT_TRUE(w->is_graph_input());
  EXPECT_FALSE(w->is_initializer());
  EXPECT_EQ(g->initializers().size(), 2u);
  EXPECT_EQ(g->inputs().back(), w);
  auto p = testing::ParseOrDie(PrintGraph(*g));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(PrintGraph(*p), PrintGraph(*g));

  Graph h;
  Value* unused = h.AddInitializer("unused", Tensor::Scalar(DType::kFloat32, 1));
  h.RemoveInitializer(unused);
  EXPECT_EQ(h.FindValue("unused"), nullptr);
  EXPECT_TRUE(h.initializers().empty());
}

}  // namespace
}  // namespace dsc
