// Graph mutation with use-def bookkeeping, topological ordering and cloning.
#include "ir/graph.h"

#include <algorithm>
#include <unordered_set>

namespace dsc {

std::string TypeToString(const TensorType& t) {
  std::string s = DTypeName(t.dtype);
  if (t.shape) s += ShapeToString(*t.shape);
  return s;
}

AttrKind KindOf(const AttrValue& v) { return static_cast<AttrKind>(v.index()); }

const char* AttrKindName(AttrKind k) {
  switch (k) {
    case AttrKind::kInt: return "int";
    case AttrKind::kFloat: return "float";
    case AttrKind::kString: return "string";
    case AttrKind::kTensor: return "tensor";
    case AttrKind::kInts: return "ints";
    case AttrKind::kFloats: return "floats";
    case AttrKind::kStrings: return "strings";
  }
  return "?";
}

// ---------------------------------------------------------------- Node

std::string Node::Describe() const {
  std::string op = domain_.empty() ? op_type_ : domain_ + "." + op_type_;
  if (name_.empty()) {
    std::string out = outputs_.empty() ? std::string("?") : outputs_[0]->name();
    return StrCat("node producing '", out, "' (", op, ")");
  }
  return StrCat("node '", name_, "' (", op, ")");
}

void Node::SetInput(size_t i, Value* v) {
  Value* old = inputs_[i];
  if (old) {
    auto& u = old->uses_;
    u.erase(std::find(u.begin(), u.end(), Use{this, static_cast<int>(i)}));
  }
  inputs_[i] = v;
  if (v) v->uses_.push_back(Use{this, static_cast<int>(i)});
}

void Node::AddInput(Value* v) {
  inputs_.push_back(nullptr);
  SetInput(inputs_.size() - 1, v);
}

template <typename T>
static const T* GetAttrAs(const std::map<std::string, AttrValue>& attrs, const std::string& n) {
  auto it = attrs.find(n);
  if (it == attrs.end()) return nullptr;
  return std::get_if<T>(&it->second);
}

int64_t Node::GetInt(const std::string& n, int64_t dflt) const {
  const int64_t* v = GetAttrAs<int64_t>(attrs_, n);
  return v ? *v : dflt;
}
float Node::GetFloat(const std::string& n, float dflt) const {
  if (const float* v = GetAttrAs<float>(attrs_, n)) return *v;
  if (const int64_t* v = GetAttrAs<int64_t>(attrs_, n)) return static_cast<float>(*v);
  return dflt;
}
std::string Node::GetString(const std::string& n, const std::string& dflt) const {
  const std::string* v = GetAttrAs<std::string>(attrs_, n);
  return v ? *v : dflt;
}
std::vector<int64_t> Node::GetInts(const std::string& n, const std::vector<int64_t>& dflt) const {
  const auto* v = GetAttrAs<std::vector<int64_t>>(attrs_, n);
  return v ? *v : dflt;
}
std::vector<float> Node::GetFloats(const std::string& n, const std::vector<float>& dflt) const {
  const auto* v = GetAttrAs<std::vector<float>>(attrs_, n);
  return v ? *v : dflt;
}
const Tensor* Node::GetTensor(const std::string& n) const { return GetAttrAs<Tensor>(attrs_, n); }

// ---------------------------------------------------------------- Graph values

Value* Graph::NewValue(const std::string& name) {
  values_.push_back(std::unique_ptr<Value>(new Value(name)));
  Value* v = values_.back().get();
  if (!name.empty()) by_name_[name] = v;
  return v;
}

Value* Graph::AddInput(const std::string& name, TensorType type) {
  Value* v = NewValue(name);
  v->type = std::move(type);
  v->is_graph_input_ = true;
  inputs_.push_back(v);
  return v;
}

Value* Graph::AddInitializer(const std::string& name, Tensor t) {
  Value* v = NewValue(name);
  Shape shape;
  for (int64_t d : t.dims()) shape.push_back(Dim::Static(d));
  v->type = TensorType{t.dtype(), shape};
  v->initializer_ = std::move(t);
  init_order_.push_back(v);
  return v;
}

void Graph::AddOutput(Value* v) {
  outputs_.push_back(v);
  ++v->graph_output_count_;
}

void Graph::SetOutputs(std::vector<Value*> outs) {
  for (Value* v : outputs_) --v->graph_output_count_;
  outputs_ = std::move(outs);
  for (Value* v : outputs_) ++v->graph_output_count_;
}

Value* Graph::FindValue(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Status Graph::RenameValue(Value* v, const std::string& new_name) {
  if (new_name == v->name()) return Status::OK();
  if (new_name.empty() || FindValue(new_name)) return Internal("cannot rename '", v->name(), "' to '", new_name, "': name in use");
  auto it = by_name_.find(v->name());
  if (it != by_name_.end() && it->second == v) by_name_.erase(it);
  v->name_ = new_name;
  by_name_[new_name] = v;
  return Status::OK();
}

std::string Graph::UniqueName(const std::string& base) {
  if (!FindValue(base)) return base;
  int& c = name_counters_[base];
  std::string n;
  do {
    n = base + "_" + std::to_string(++c);
  } while (FindValue(n));
  return n;
}

std::vector<Value*> Graph::initializers() const {
  std::vector<Value*> out;
  for (Value* v : init_order_)
    if (v->is_initializer()) out.push_back(v);
  return out;
}

void Graph::RemoveInput(Value* v) {
  inputs_.erase(std::remove(inputs_.begin(), inputs_.end(), v), inputs_.end());
  v->is_graph_input_ = false;
  if (!v->is_initializer()) by_name_.erase(v->name());
  CollectGarbageValues();
}

void Graph::RemoveInitializer(Value* v) {
  v->initializer_.reset();
  init_order_.erase(std::remove(init_order_.begin(), init_order_.end(), v), init_order_.end());
  if (!v->is_graph_input_) by_name_.erase(v->name());
  CollectGarbageValues();
}

void Graph::ConvertInitializerToInput(Value* v) {
  v->initializer_.reset();
  init_order_.erase(std::remove(init_order_.begin(), init_order_.end(), v), init_order_.end());
  v->is_graph_input_ = true;
  inputs_.push_back(v);
}

// ---------------------------------------------------------------- Graph nodes

Value* Graph::AddCast(Value* x, DType to, const std::string& out_name, const std::string& node_name, Node* before) {
  Node* c = AddNode("Cast", {x}, {UniqueName(out_name)}, "", node_name, before);
  c->SetAttr("to", int64_t{DTypeToOnnx(to)});
  c->output(0)->type = TensorType{to, x->type.shape};
  return c->output(0);
}

Node* Graph::AddNode(const std::string& op_type, const std::vector<Value*>& inputs,
                     const std::vector<std::string>& output_names, const std::string& domain,
                     const std::string& name, Node* before) {
  auto node = std::unique_ptr<Node>(new Node(op_type, domain, name));
  Node* n = node.get();
  for (Value* v : inputs) n->AddInput(v);
  for (size_t i = 0; i < output_names.size(); ++i) {
    Value* v = NewValue(output_names[i]);
    v->producer_ = n;
    v->producer_output_ = static_cast<int>(i);
    n->outputs_.push_back(v);
  }
  if (before) {
    auto it = std::find_if(nodes_.begin(), nodes_.end(), [&](const auto& p) { return p.get() == before; });
    nodes_.insert(it, std::move(node));
  } else {
    nodes_.push_back(std::move(node));
  }
  return n;
}

Status Graph::RemoveNode(Node* n) {
  for (Value* out : n->outputs_)
    if (!out->uses_.empty() || out->is_graph_output())
      return Internal("cannot remove ", n->Describe(), ": output '", out->name(), "' is still used");
  for (size_t i = 0; i < n->inputs_.size(); ++i) n->SetInput(i, nullptr);
  std::unordered_set<Value*> dead(n->outputs_.begin(), n->outputs_.end());
  for (Value* out : n->outputs_) {
    auto it = by_name_.find(out->name());
    if (it != by_name_.end() && it->second == out) by_name_.erase(it);
  }
  nodes_.remove_if([&](const auto& p) { return p.get() == n; });
  values_.erase(std::remove_if(values_.begin(), values_.end(), [&](const auto& p) { return dead.count(p.get()) > 0; }),
                values_.end());
  return Status::OK();
}

void Graph::ReplaceAllUsesWith(Value* from, Value* to) {
  std::vector<Use> uses = from->uses_;
  for (const Use& u : uses) u.node->SetInput(static_cast<size_t>(u.input_index), to);
  bool was_output = false;
  for (Value*& o : outputs_)
    if (o == from) { o = to; was_output = true; }
  if (was_output) {
    from->graph_output_count_ = 0;
    to->graph_output_count_ = static_cast<int>(std::count(outputs_.begin(), outputs_.end(), to));
  }
}

Status Graph::TopoSort() {
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> order;
  std::vector<Node*> ready;
  for (const auto& p : nodes_) {
    int deps = 0;
    for (Value* v : p->inputs_)
      if (v && v->producer_) ++deps;
    pending[p.get()] = deps;
  }
  // Stable: repeatedly take the earliest ready node in the current order.
  std::list<Node*> remaining;
  for (const auto& p : nodes_) remaining.push_back(p.get());
  while (!remaining.empty()) {
    auto it = std::find_if(remaining.begin(), remaining.end(), [&](Node* n) { return pending[n] == 0; });
    if (it == remaining.end())
      return InvalidArgument("graph has a cycle through ", remaining.front()->Describe());
    Node* n = *it;
    remaining.erase(it);
    order.push_back(n);
    for (Value* out : n->outputs_)
      for (const Use& u : out->uses_) --pending[u.node];
  }
  std::unordered_map<Node*, std::unique_ptr<Node>> owned;
  for (auto& p : nodes_) owned[p.get()] = std::move(p);
  nodes_.clear();
  for (Node* n : order) nodes_.push_back(std::move(owned[n]));
  return Status::OK();
}

Status Graph::Reorder(const std::vector<Node*>& order) {
  std::unordered_map<Node*, std::unique_ptr<Node>*> slot;
  for (auto& p : nodes_) slot[p.get()] = &p;
  std::unordered_set<Node*> seen;
  for (Node* n : order)
    if (!slot.count(n) || !seen.insert(n).second) return Internal("Reorder: a node is not in the graph or given twice");
  if (order.size() != nodes_.size()) return Internal("Reorder: ", order.size(), " nodes given, the graph has ", nodes_.size());
  std::list<std::unique_ptr<Node>> sorted;
  for (Node* n : order) sorted.push_back(std::move(*slot.at(n)));
  nodes_ = std::move(sorted);
  return Status::OK();
}

void Graph::CollectGarbageValues() {
  values_.erase(std::remove_if(values_.begin(), values_.end(),
                               [&](const std::unique_ptr<Value>& v) {
                                 bool dead = !v->producer_ && !v->is_graph_input_ && !v->is_initializer() &&
                                             v->uses_.empty() && !v->is_graph_output();
                                 if (dead) {
                                   auto it = by_name_.find(v->name());
                                   if (it != by_name_.end() && it->second == v.get()) by_name_.erase(it);
                                 }
                                 return dead;
                               }),
                values_.end());
}

std::unique_ptr<Graph> Graph::Clone() const {
  auto g = std::make_unique<Graph>();
  g->name = name;
  g->ir_version = ir_version;
  g->opsets = opsets;
  g->metadata = metadata;
  g->training = training;
  std::unordered_map<const Value*, Value*> map;
  for (Value* v : inputs_) map[v] = g->AddInput(v->name(), v->type);
  for (Value* v : initializers()) {
    Value* nv = g->AddInitializer(v->name(), v->initializer());
    nv->type = v->type;
    map[v] = nv;
  }
  for (const auto& p : nodes_) {
    std::vector<Value*> ins;
    for (Value* v : p->inputs_) ins.push_back(v ? map.at(v) : nullptr);
    std::vector<std::string> outs;
    for (Value* v : p->outputs_) outs.push_back(v->name());
    Node* n = g->AddNode(p->op_type_, ins, outs, p->domain_, p->name_);
    n->attrs_ = p->attrs_;
    for (size_t i = 0; i < outs.size(); ++i) {
      n->outputs_[i]->type = p->outputs_[i]->type;
      map[p->outputs_[i]] = n->outputs_[i];
    }
  }
  std::vector<Value*> outs;
  for (Value* v : outputs_) outs.push_back(map.at(v));
  g->SetOutputs(outs);
  return g;
}

}  // namespace dsc
