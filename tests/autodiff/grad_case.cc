// Parsing grad_cases.txt and completing a case into a differentiable graph with seeded data.
#include "tests/autodiff/grad_case.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "frontend/decompose_ops.h"
#include "frontend/onnx_import.h"
#include "ir/onnx_convert.h"
#include "ir/shape_inference.h"
#include "ir/text.h"
#include "passes/pass.h"

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
  // import=1: through ONNX import, so ops imported as others (frontend/decompose_*.cc) are checked
  // through what they become; the case's own initializers stay the parameters. A case holding such
  // an op is always imported (dscompile never trains the op itself).
  bool import = text.options.count("import") > 0;
  for (const auto& n : c.graph->nodes()) import |= n->domain().empty() && DecomposedOps().count(n->op_type()) > 0;
  std::set<std::string> written;
  for (const Value* v : c.graph->initializers()) written.insert(v->name());
  if (import) {
    ASSIGN_OR_RETURN(c.graph, ImportOnnxBytes(GraphToOnnx(*c.graph).SerializeAsString(), "", text.name));
  }
  Graph& g = *c.graph;
  std::vector<std::string> params;
  for (Value* v : g.initializers()) {
    if (!IsFloat(v->type.dtype) || consts.count(v->name()) || !written.count(v->name())) continue;
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
  RETURN_IF_ERROR(InferShapes(g));

  Value* loss = nullptr;
  std::vector<Value*> outs = g.outputs();
  for (Value* y : outs) {
    std::vector<int64_t> dims;
    for (const Dim& d : *y->type.shape) dims.push_back(d.value);
    Tensor r(DType::kFloat32, dims);
    CaseRng rng(text.name + "/R/" + y->name());
    for (int64_t i = 0; i < r.numel(); ++i) r.SetFromDouble(i, 2 * rng.Uniform01() - 1);
    c.weights.emplace(y->name(), r);
    Value* rv = g.AddInitializer("R_" + y->name(), r);
    Value* wy = g.AddNode("Mul", {y, rv}, {"weighted_" + y->name()})->output(0);
    Node* sum = g.AddNode("ReduceSum", {wy}, {"loss_" + y->name()});
    sum->SetAttr("keepdims", int64_t{0});
    Value* part = sum->output(0);
    loss = loss ? g.AddNode("Add", {loss, part}, {"loss_upto_" + y->name()})->output(0) : part;
  }
  if (!loss) return InvalidArgument(text.name, ": the case has no outputs");
  Node* id = g.AddNode("Identity", {loss}, {"loss"});
  g.SetOutputs({id->output(0)});
  RETURN_IF_ERROR(InferShapes(g));
  g.training.loss = "loss";
  g.training.parameters = params;
  if (import) {  // the import's index and shape Constants become initializers, as in dscompile's pipeline
    Module m;
    m.programs.push_back(PlanProgram{"main", std::move(c.graph)});
    RETURN_IF_ERROR(CreatePass(PassId::kFoldConstants)->Run(m, PassContext{}).status());
    c.graph = std::move(m.programs[0].graph);
  }
  return c;
}

}  // namespace dsc
