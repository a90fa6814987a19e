// The graph IR every pass shares: values with use-def chains, nodes with typed attributes,
// initializers, graph inputs/outputs and the training metadata passes attach (loss, parameters).
//
//   Graph g;
//   Value* x = g.AddInput("x", TensorType{DType::kFloat32, Shape{Dim::Symbol("batch"), Dim::Static(4)}});
//   Node* n = g.AddNode("Relu", {x}, {"y"});
//   g.AddOutput(n->output(0));
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "ir/tensor.h"

namespace dsc {

class Node;
class Graph;

// Our own op domain: collectives, optimizer steps, loss scaling. Dumps stay valid ONNX.
inline constexpr const char* kDscDomain = "ai.dscompile";

struct TensorType {
  DType dtype = DType::kUndefined;
  std::optional<Shape> shape;  // nullopt: rank unknown
};
std::string TypeToString(const TensorType& t);  // "float[batch,128]"

struct Use {
  Node* node;
  int input_index;
  bool operator==(const Use& o) const { return node == o.node && input_index == o.input_index; }
};

class Value {
 public:
  const std::string& name() const { return name_; }
  TensorType type;

  Node* producer() const { return producer_; }
  int producer_output() const { return producer_output_; }
  const std::vector<Use>& uses() const { return uses_; }
  bool is_graph_input() const { return is_graph_input_; }
  bool is_graph_output() const { return graph_output_count_ > 0; }
  bool is_initializer() const { return initializer_.has_value(); }
  const Tensor& initializer() const { return *initializer_; }
  void set_initializer(Tensor t) { initializer_ = std::move(t); }

 private:
  friend class Graph;
  friend class Node;
  explicit Value(std::string name) : name_(std::move(name)) {}
  std::string name_;
  Node* producer_ = nullptr;
  int producer_output_ = -1;
  std::vector<Use> uses_;
  bool is_graph_input_ = false;
  int graph_output_count_ = 0;
  std::optional<Tensor> initializer_;
  // Where the graph holds this value, so that removing it costs O(1), not a scan of the graph.
  size_t slot_ = 0;                       // index in Graph::values_
  size_t init_slot_ = SIZE_MAX;           // index in Graph::init_order_, SIZE_MAX when not listed
};

using AttrValue = std::variant<int64_t, float, std::string, Tensor, std::vector<int64_t>, std::vector<float>,
                               std::vector<std::string>>;
enum class AttrKind { kInt, kFloat, kString, kTensor, kInts, kFloats, kStrings };
AttrKind KindOf(const AttrValue& v);
const char* AttrKindName(AttrKind k);  // "int", "ints", ... (ONNX text-syntax type names)

class Node {
 public:
  const std::string& op_type() const { return op_type_; }
  const std::string& domain() const { return domain_; }
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  // "node 'fc1/Gemm' (Gemm)" — how errors refer to a node.
  std::string Describe() const;

  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  Value* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }  // null: omitted optional
  Value* output(size_t i) const { return outputs_[i]; }
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  void SetInput(size_t i, Value* v);
  void AddInput(Value* v);

  const std::map<std::string, AttrValue>& attrs() const { return attrs_; }
  bool HasAttr(const std::string& n) const { return attrs_.count(n) > 0; }
  void SetAttr(const std::string& n, AttrValue v) { attrs_[n] = std::move(v); }
  void RemoveAttr(const std::string& n) { attrs_.erase(n); }
  int64_t GetInt(const std::string& n, int64_t dflt) const;
  float GetFloat(const std::string& n, float dflt) const;
  std::string GetString(const std::string& n, const std::string& dflt) const;
  std::vector<int64_t> GetInts(const std::string& n, const std::vector<int64_t>& dflt = {}) const;
  std::vector<float> GetFloats(const std::string& n, const std::vector<float>& dflt = {}) const;
  const Tensor* GetTensor(const std::string& n) const;

 private:
  friend class Graph;
  Node(std::string op, std::string domain, std::string name)
      : op_type_(std::move(op)), domain_(std::move(domain)), name_(std::move(name)) {}
  std::string op_type_, domain_, name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::map<std::string, AttrValue> attrs_;
  // This node's place in Graph::nodes_: insertion before it and its removal are O(1).
  std::list<std::unique_ptr<Node>>::iterator pos_;
  // Increases along nodes_ while Graph::order_valid_; spaced so insertions rarely renumber.
  uint64_t order_ = 0;
};

// Training metadata: which output is the loss, which initializers train, where their gradients are.
struct TrainingInfo {
  std::string loss;                  // value name; empty until select-loss runs
  std::vector<std::string> parameters;  // trainable initializers, in graph order
  std::vector<std::string> gradients;   // parallel to `parameters`: value holding d(loss)/d(param); empty until autodiff
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;
  std::unique_ptr<Graph> Clone() const;

  std::string name = "main";
  int64_t ir_version = 8;
  std::map<std::string, int64_t> opsets{{"", 17}};  // domain -> version
  std::map<std::string, std::string> metadata;      // model metadata_props
  TrainingInfo training;

  // --- values
  Value* AddInput(const std::string& name, TensorType type);
  Value* AddInitializer(const std::string& name, Tensor t);  // type taken from the tensor
  void AddOutput(Value* v);
  void SetOutputs(std::vector<Value*> outs);
  Value* FindValue(const std::string& name) const;
  // Renames a value; `new_name` must be unused.
  Status RenameValue(Value* v, const std::string& new_name);
  // A fresh name: `base` if unused, else base_1, base_2, ...
  std::string UniqueName(const std::string& base);
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  std::vector<Value*> initializers() const;  // in insertion order
  void RemoveInput(Value* v);                 // v must be unused
  void RemoveInitializer(Value* v);           // v must be unused
  // Turns an initializer into a graph input or back (keeps uses).
  void ConvertInitializerToInput(Value* v);

  // --- nodes (kept in a topological order by passes; Verify checks it)
  // Creates a node appended at the end, or before `before` when given. Output names must be unique.
  Node* AddNode(const std::string& op_type, const std::vector<Value*>& inputs,
                const std::vector<std::string>& output_names, const std::string& domain = "",
                const std::string& name = "", Node* before = nullptr);
  // A Cast of `x` to `to` (same shape) whose output is named `out_name` (made unique); appended,
  // or placed before `before`. Returns the cast value.
  Value* AddCast(Value* x, DType to, const std::string& out_name, const std::string& node_name = "",
                 Node* before = nullptr);
  // Removes a node whose outputs have no uses; its outputs are destroyed.
  Status RemoveNode(Node* n);
  void ReplaceAllUsesWith(Value* from, Value* to);  // graph outputs too
  const std::list<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  size_t num_nodes() const { return nodes_.size(); }
  // True when `a` comes before `b` in nodes(): O(1) amortized (an order index renumbered only
  // when insertions at one spot exhaust its gaps, or after a reorder).
  bool Precedes(const Node* a, const Node* b) const;
  // The node after `n` in nodes(), null at the end: O(1).
  Node* NextNode(const Node* n) const;
  // Reorders nodes topologically (stable); error naming a node on a cycle.
  Status TopoSort();
  // Puts the nodes in exactly this order (every node once); the order's validity is the
  // verifier's to check.
  Status Reorder(const std::vector<Node*>& order);
  // Drops values that are neither produced, inputs, initializers nor used.
  void CollectGarbageValues();

 private:
  Value* NewValue(const std::string& name);
  // Destroys `v` (unnamed in by_name_ if the name is still its own), in O(1).
  void DeleteValue(Value* v);
  // Takes `v` out of init_order_ in O(1); the list is compacted once half of it is holes.
  void UnlistInitializer(Value* v);
  void Renumber() const;
  std::list<std::unique_ptr<Node>> nodes_;
  mutable bool order_valid_ = true;
  std::vector<std::unique_ptr<Value>> values_;
  std::unordered_map<std::string, Value*> by_name_;
  std::vector<Value*> inputs_, outputs_;
  std::vector<Value*> init_order_;  // null entries: removed initializers not yet compacted away
  size_t init_holes_ = 0;
  std::unordered_map<std::string, int> name_counters_;
};

}  // namespace dsc
