// Graph mutation with use-def bookkeeping, topological ordering and cloning.
#include "ir/graph.h"

#include <algorithm>
#include <functional>
#include <queue>
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

static bool IsGarbage(const Value& v) {
  return !v.producer() && !v.is_graph_input() && !v.is_initializer() && v.uses().empty() && !v.is_graph_output();
}

Value* Graph::NewValue(const std::string& name) {
  values_.push_back(std::unique_ptr<Value>(new Value(name)));
  Value* v = values_.back().get();
  v->slot_ = values_.size() - 1;
  if (!name.empty()) by_name_[name] = v;
  return v;
}

void Graph::DeleteValue(Value* v) {
  auto it = by_name_.find(v->name());
  if (it != by_name_.end() && it->second == v) by_name_.erase(it);
  // values_ only owns; its order means nothing, so the last value fills the hole.
  size_t slot = v->slot_;
  if (slot + 1 != values_.size()) {
    std::swap(values_[slot], values_.back());
    values_[slot]->slot_ = slot;
  }
  values_.pop_back();
}

void Graph::UnlistInitializer(Value* v) {
  if (v->init_slot_ == SIZE_MAX) return;
  init_order_[v->init_slot_] = nullptr;
  v->init_slot_ = SIZE_MAX;
  if (++init_holes_ * 2 <= init_order_.size()) return;
  size_t k = 0;
  for (Value* w : init_order_)
    if (w) {
      w->init_slot_ = k;
      init_order_[k++] = w;
    }
  init_order_.resize(k);
  init_holes_ = 0;
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
  v->init_slot_ = init_order_.size();
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
    if (v && v->is_initializer()) out.push_back(v);
  return out;
}

void Graph::RemoveInput(Value* v) {
  inputs_.erase(std::remove(inputs_.begin(), inputs_.end(), v), inputs_.end());
  v->is_graph_input_ = false;
  if (!v->is_initializer()) by_name_.erase(v->name());
  // Only `v` can have become garbage here; a whole-graph collection per call made removing k
  // initializers cost O(k x values).
  if (IsGarbage(*v)) DeleteValue(v);
}

void Graph::RemoveInitializer(Value* v) {
  v->initializer_.reset();
  UnlistInitializer(v);
  if (!v->is_graph_input_) by_name_.erase(v->name());
  if (IsGarbage(*v)) DeleteValue(v);
}

void Graph::ConvertInitializerToInput(Value* v) {
  v->initializer_.reset();
  UnlistInitializer(v);
  v->is_graph_input_ = true;
  inputs_.push_back(v);
}

// ---------------------------------------------------------------- Graph nodes

// Spacing of a fresh numbering: about 32 insertions at one spot before a renumber is needed.
static constexpr uint64_t kOrderGap = uint64_t{1} << 32;

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
  auto at = before ? before->pos_ : nodes_.end();
  if (order_valid_) {
    const uint64_t lo = at == nodes_.begin() ? 0 : (*std::prev(at))->order_;
    const uint64_t hi = at == nodes_.end() ? lo + 2 * kOrderGap : (*at)->order_;
    if (hi - lo >= 2) n->order_ = lo + (hi - lo) / 2;
    else order_valid_ = false;
  }
  n->pos_ = nodes_.insert(at, std::move(node));
  return n;
}

void Graph::Renumber() const {
  uint64_t k = 0;
  for (const auto& p : nodes_) p->order_ = (k += kOrderGap);
  order_valid_ = true;
}

bool Graph::Precedes(const Node* a, const Node* b) const {
  if (!order_valid_) Renumber();
  return a->order_ < b->order_;
}

Node* Graph::NextNode(const Node* n) const {
  auto it = std::next(n->pos_);
  return it == nodes_.end() ? nullptr : it->get();
}

Status Graph::RemoveNode(Node* n) {
  for (Value* out : n->outputs_)
    if (!out->uses_.empty() || out->is_graph_output())
      return Internal("cannot remove ", n->Describe(), ": output '", out->name(), "' is still used");
  for (size_t i = 0; i < n->inputs_.size(); ++i) n->SetInput(i, nullptr);
  for (Value* out : n->outputs_) DeleteValue(out);
  nodes_.erase(n->pos_);  // destroys n
  return Status::OK();
}

void Graph::ReplaceAllUsesWith(Value* from, Value* to) {
  // Moves the use list whole (same order as setting each input in turn): per-use SetInput
  // erased from the front of `from`'s list, O(uses^2).
  if (from != to) {
    std::vector<Use> uses = std::move(from->uses_);
    from->uses_.clear();
    for (const Use& u : uses) u.node->inputs_[static_cast<size_t>(u.input_index)] = to;
    if (to) to->uses_.insert(to->uses_.end(), uses.begin(), uses.end());
  }
  bool was_output = false;
  for (Value*& o : outputs_)
    if (o == from) { o = to; was_output = true; }
  if (was_output) {
    from->graph_output_count_ = 0;
    to->graph_output_count_ = static_cast<int>(std::count(outputs_.begin(), outputs_.end(), to));
  }
}

Status Graph::TopoSort() {
  // Stable: always emit the earliest ready node in the current order. A min-heap of ready nodes
  // keyed by their current position does that in O(n log n); rescanning the remaining list for
  // the first ready node was O(n^2).
  std::unordered_map<const Node*, size_t> position;
  std::vector<Node*> by_position;
  std::vector<int> pending;
  position.reserve(nodes_.size());
  for (const auto& p : nodes_) {
    position[p.get()] = by_position.size();
    by_position.push_back(p.get());
    int deps = 0;
    for (Value* v : p->inputs_)
      if (v && v->producer_) ++deps;
    pending.push_back(deps);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < pending.size(); ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<Node*> order;
  order.reserve(by_position.size());
  while (!ready.empty()) {
    Node* n = by_position[ready.top()];
    ready.pop();
    order.push_back(n);
    for (Value* out : n->outputs_)
      for (const Use& u : out->uses_)
        if (size_t i = position.at(u.node); --pending[i] == 0) ready.push(i);
  }
  if (order.size() != by_position.size()) {
    std::vector<bool> emitted(by_position.size(), false);
    for (Node* n : order) emitted[position.at(n)] = true;
    size_t first = std::find(emitted.begin(), emitted.end(), false) - emitted.begin();
    return InvalidArgument("graph has a cycle through ", by_position[first]->Describe());
  }
  // Splicing keeps every node's list iterator valid.
  for (Node* n : order) nodes_.splice(nodes_.end(), nodes_, n->pos_);
  order_valid_ = false;
  return Status::OK();
}

Status Graph::Reorder(const std::vector<Node*>& order) {
  std::unordered_set<const Node*> in_graph, seen;
  in_graph.reserve(nodes_.size());
  for (const auto& p : nodes_) in_graph.insert(p.get());
  for (Node* n : order)
    if (!in_graph.count(n) || !seen.insert(n).second) return Internal("Reorder: a node is not in the graph or given twice");
  if (order.size() != nodes_.size()) return Internal("Reorder: ", order.size(), " nodes given, the graph has ", nodes_.size());
  for (Node* n : order) nodes_.splice(nodes_.end(), nodes_, n->pos_);
  order_valid_ = false;
  return Status::OK();
}

void Graph::CollectGarbageValues() {
  size_t k = 0;
  for (size_t i = 0; i < values_.size(); ++i) {
    Value* v = values_[i].get();
    if (IsGarbage(*v)) {
      auto it = by_name_.find(v->name());
      if (it != by_name_.end() && it->second == v) by_name_.erase(it);
      values_[i].reset();
      continue;
    }
    v->slot_ = k;
    if (k != i) values_[k] = std::move(values_[i]);
    ++k;
  }
  values_.resize(k);
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
