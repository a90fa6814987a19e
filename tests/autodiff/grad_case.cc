// Parsing grad_cases.txt and completing a case into a differentiable graph with seeded data.
#include "tests/autodiff/grad_case.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "frontend/decompose_ops.h"
#include "ir/onnx_convert.h"
#include "ir/shape_inference.h"
#include "ir/text.h"

namespace dsc {
namespace {

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

bool AllZero(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t.GetAsDouble(i) != 0.0) return false;
  return true;
}

}  // namespace

std::vector<GradCaseText> LoadGradCaseTexts(const std::string& path) {
  std::ifstream in(path);
  std::vector<GradCaseText> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# ===== ", 0) == 0) {
      std::istringstream hdr(line.substr(8));
      GradCaseText c;
      hdr >> c.name;
      std::string kv;
      while (hdr >> kv) {
        auto eq = kv.find('=');
        c.options[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      }
      out.push_back(std::move(c));
      continue;
    }
    if (line.rfind("#", 0) == 0 || out.empty()) continue;
    out.back().graph += line + "\n";
  }
  return out;
}

StatusOr<GradCase> BuildGradCase(const GradCaseText& text) {
  GradCase c;
  auto opt = [&](const char* k, double dflt) {
    auto it = text.options.find(k);
    return it == text.options.end() ? dflt : std::stod(it->second);
  };
  c.h = opt("h", c.h);
  c.rtol = opt("rtol", c.rtol);
  c.atol = opt("atol", c.atol);
  double lo = -1, hi = 1, away = opt("away", 0);
  if (text.options.count("range")) {
    const std::string& r = text.options.at("range");
    lo = std::stod(r.substr(0, r.find(':')));
    hi = std::stod(r.substr(r.find(':') + 1));
  }
  std::set<std::string> consts;
  if (text.options.count("const"))
    for (const std::string& s : SplitComma(text.options.at("const"))) consts.insert(s);

  ParseOptions popts;
  popts.allow_elided = true;
  ASSIGN_OR_RETURN(c.graph, ParseGraph(text.graph, popts));
  Graph& g = *c.graph;
  std::vector<std::string> params;
  for (Value* v : g.initializers()) {
    if (!IsFloat(v->type.dtype) || consts.count(v->name())) continue;
    params.push_back(v->name());
    if (!AllZero(v->initializer())) continue;  // data written in the case is kept
    Tensor t(v->type.dtype, v->initializer().dims());
    CaseRng rng(text.name + "/" + v->name());
    for (int64_t i = 0; i < t.numel(); ++i) {
      double x = lo + (hi - lo) * rng.Uniform01();
      if (away > 0) x = (x < 0 ? -1 : 1) * (away + std::fabs(x));
      t.SetFromDouble(i, x);
    }
    v->set_initializer(std::move(t));
  }
  // Ops the frontend imports as others (PRelu, DepthToSpace, ...) are checked in the form dscompile
  // trains: the case goes through the same decomposition.
  bool decomposed = false;
  for (const auto& n : g.nodes()) decomposed |= n->domain().empty() && DecomposedOps().count(n->op_type()) > 0;
  if (decomposed) {
    onnx::ModelProto m = GraphToOnnx(g);
    RETURN_IF_ERROR(DecomposeOps(&m));
    ASSIGN_OR_RETURN(c.graph, GraphFromOnnx(m));
    // Its Constant nodes become initializers, as fold-constants makes them in dscompile.
    Graph& d = *c.graph;
    std::vector<Node*> constants;
    for (const auto& n : d.nodes())
      if (n->op_type() == "Constant") constants.push_back(&*n);
    for (Node* n : constants) {
      const Tensor* value = n->GetTensor("value");
      Tensor t = value ? *value : Tensor::Scalar(DType::kFloat32, n->GetFloat("value_float", 0.0f));
      Value* init = d.AddInitializer(n->output(0)->name() + "_value", std::move(t));
      d.ReplaceAllUsesWith(n->output(0), init);
      RETURN_IF_ERROR(d.RemoveNode(n));
    }
  }
  Graph& graph = *c.graph;
  RETURN_IF_ERROR(InferShapes(graph));

  Value* loss = nullptr;
  std::vector<Value*> outs = graph.outputs();
  for (Value* y : outs) {
    std::vector<int64_t> dims;
    for (const Dim& d : *y->type.shape) dims.push_back(d.value);
    Tensor r(DType::kFloat32, dims);
    CaseRng rng(text.name + "/R/" + y->name());
    for (int64_t i = 0; i < r.numel(); ++i) r.SetFromDouble(i, 2 * rng.Uniform01() - 1);
    c.weights.emplace(y->name(), r);
    Value* rv = graph.AddInitializer("R_" + y->name(), r);
    Value* wy = graph.AddNode("Mul", {y, rv}, {"weighted_" + y->name()})->output(0);
    Node* sum = graph.AddNode("ReduceSum", {wy}, {"loss_" + y->name()});
    sum->SetAttr("keepdims", int64_t{0});
    Value* part = sum->output(0);
    loss = loss ? graph.AddNode("Add", {loss, part}, {"loss_upto_" + y->name()})->output(0) : part;
  }
  if (!loss) return InvalidArgument(text.name, ": the case has no outputs");
  Node* id = graph.AddNode("Identity", {loss}, {"loss"});
  graph.SetOutputs({id->output(0)});
  RETURN_IF_ERROR(InferShapes(graph));
  graph.training.loss = "loss";
  graph.training.parameters = params;
  return c;
}

}  // namespace dsc
