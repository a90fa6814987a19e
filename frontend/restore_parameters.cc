// Undoing onnxscript's optimizer on PyTorch parameters: folds, merges and dropped biases.
#include "frontend/restore_parameters.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "frontend/external_data.h"
#include "frontend/torch_node_metadata.h"
#include "ir/dtype.h"

namespace dsc {
namespace {

// Where an initializer is read: a node of the main graph and the input index.
struct Use {
  onnx::NodeProto* node;
  int input;
};

class Restorer {
 public:
  Restorer(onnx::ModelProto* model, HeldInitializers* held) : model_(model), g_(model->mutable_graph()), held_(held) {}

  Status Run(const std::string& signature) {
    signature_ = SignatureInputs(signature);
    Index();
    if (missing_.empty() && folded_from_.empty()) return Status::OK();
    RETURN_IF_ERROR(RestoreFoldedTransposes());
    RETURN_IF_ERROR(RestoreFoldedLookups());
    RETURN_IF_ERROR(RestoreFoldedViews());
    RETURN_IF_ERROR(RestoreFoldedUnaryChains());
    RETURN_IF_ERROR(RestoreFoldedRecurrentWeights());
    RETURN_IF_ERROR(SplitMergedDuplicates());
    if (!prepend_.empty()) {
      // The new Transposes read initializers only: first in the node list keeps it topological.
      google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
      for (auto& n : prepend_) *nodes.Add() = std::move(n);
      for (auto& n : *g_->mutable_node()) *nodes.Add() = std::move(n);
      g_->mutable_node()->Swap(&nodes);
    }
    return Status::OK();
  }

 private:
  void Index() {
    for (const auto& t : g_->initializer()) {
      initializers_.insert(t.name());
      initializer_dims_[t.name()].assign(t.dims().begin(), t.dims().end());
    }
    for (const auto& v : g_->input()) names_.insert(v.name());
    for (const auto& n : g_->node())
      for (const auto& o : n.output()) names_.insert(o);
    names_.insert(initializers_.begin(), initializers_.end());
    std::set<std::string> backed;
    auto scan = [&](const onnx::ValueInfoProto& v) {
      names_.insert(v.name());
      if (!initializers_.count(v.name())) return;
      if (const std::string* o = FindProp(v.metadata_props(), kTorchOriginalNameKey); o && signature_.count(*o)) {
        placeholder_of_[v.name()] = *o;
        backed.insert(*o);
      }
      if (const std::string* f = FindProp(v.metadata_props(), kFoldedFromKey)) folded_from_[v.name()] = QuotedNamesIn(*f);
    };
    for (const auto& v : g_->value_info()) scan(v);
    for (const auto& v : g_->input()) scan(v);
    for (const auto& [placeholder, input] : signature_) {
      by_target_[input.target] = placeholder;
      if (!backed.count(placeholder) && !initializers_.count(input.target) &&
          (input.kind == "PARAMETER" || input.kind == "BUFFER"))
        missing_.insert(placeholder);
    }
    for (auto& n : *g_->mutable_node()) {
      for (int i = 0; i < n.input_size(); ++i)
        if (initializers_.count(n.input(i))) uses_[n.input(i)].push_back({&n, i});
      auto note = [&](const onnx::NodeProto& sub) {
        for (const auto& in : sub.input()) read_in_subgraph_.insert(in);
      };
      for (const auto& a : n.attribute()) {  // values a subgraph reads: the rules leave those alone
        if (a.has_g()) ForEachNode(a.g(), note);
        for (const auto& sub : a.graphs()) ForEachNode(sub, note);
      }
    }
  }

  static const std::string* Fx(const onnx::NodeProto& n) { return FindProp(n.metadata_props(), kFxNodeKey); }

  onnx::TensorProto* FindInitializer(const std::string& name) {
    for (auto& t : *g_->mutable_initializer())
      if (t.name() == name) return &t;
    return nullptr;
  }

  // The value_info entry a restored tensor carries: its type and the marks RecordTorchParameters reads.
  void AddValueInfo(const std::string& name, const Tensor& data, const std::string& placeholder) {
    onnx::ValueInfoProto* v = g_->add_value_info();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(DTypeToOnnx(data.dtype()));
    auto* shape = tt->mutable_shape();
    for (int64_t d : data.dims()) shape->add_dim()->set_dim_value(d);
    auto* kind = v->add_metadata_props();
    kind->set_key(kTorchInputKindKey);
    kind->set_value(signature_.at(placeholder).kind);
    auto* original = v->add_metadata_props();
    original->set_key(kTorchOriginalNameKey);
    original->set_value(placeholder);
    names_.insert(name);
    initializer_dims_[name] = data.dims();
    missing_.erase(placeholder);
  }

  // The permutation torchlib applies to parameter `placeholder` before `use` reads it, when the
  // read is one of the aten calls whose Transpose the optimizer folds: aten.linear's weight (MatMul
  // input 1, perm [1, 0]) and aten.index.Tensor's table (GatherND input 0: the indexed axes first,
  // then the others in order). Empty otherwise.
  static std::vector<int64_t> FoldedPermutation(const Use& use, const std::string& placeholder, int64_t rank) {
    const onnx::NodeProto& n = *use.node;
    const std::string* fx = Fx(n);
    if (!fx || !(n.domain().empty() || n.domain() == "ai.onnx")) return {};
    if (n.op_type() == "MatMul" && use.input == 1 && rank == 2) {
      const std::vector<std::string> args = FxCallArgs(*fx, "aten.linear.default");
      if (args.size() >= 2 && args[1] == "%" + placeholder) return {1, 0};
      return {};
    }
    if (n.op_type() == "GatherND" && use.input == 0) {
      const std::string head = "[target=torch.ops.aten.index.Tensor](args = (%" + placeholder + ", [";
      const size_t at = fx->find(head);
      if (at == std::string::npos) return {};
      const size_t begin = at + head.size(), end = fx->find(']', begin);
      if (end == std::string::npos) return {};
      std::vector<bool> indexed;
      for (size_t s = begin; s <= end;) {
        size_t c = std::min(fx->find(',', s), end);
        std::string item = fx->substr(s, c - s);
        item.erase(0, item.find_first_not_of(' '));
        if (item.empty()) return {};
        indexed.push_back(item != "None");
        s = c + 1;
      }
      if (static_cast<int64_t>(indexed.size()) > rank) return {};
      std::vector<int64_t> perm;
      for (size_t i = 0; i < indexed.size(); ++i)
        if (indexed[i]) perm.push_back(static_cast<int64_t>(i));
      for (size_t i = 0; i < indexed.size(); ++i)
        if (!indexed[i]) perm.push_back(static_cast<int64_t>(i));
      for (int64_t i = static_cast<int64_t>(indexed.size()); i < rank; ++i) perm.push_back(i);
      return perm;
    }
    return {};
  }

  // w with w.dims()[perm[i]] == f.dims()[i]: the tensor whose Transpose(perm) is f.
  static Tensor Untransposed(const Tensor& f, const std::vector<int64_t>& perm) {
    const int64_t rank = f.rank();
    std::vector<int64_t> dims(rank);
    for (int64_t i = 0; i < rank; ++i) dims[perm[i]] = f.dims()[i];
    Tensor w(f.dtype(), dims);
    std::vector<int64_t> w_strides(rank, 1);
    for (int64_t i = rank - 2; i >= 0; --i) w_strides[i] = w_strides[i + 1] * dims[i + 1];
    const size_t e = DTypeSize(f.dtype());
    const uint8_t* src = f.raw();
    uint8_t* dst = w.raw();
    std::vector<int64_t> at(rank, 0);  // f's index, walked in f's row-major order
    for (int64_t k = 0; k < f.numel(); ++k) {
      int64_t offset = 0;
      for (int64_t i = 0; i < rank; ++i) offset += at[i] * w_strides[perm[i]];
      std::memcpy(dst + offset * e, src + k * e, e);
      for (int64_t i = rank - 1; i >= 0 && ++at[i] == f.dims()[i]; --i) at[i] = 0;
    }
    return w;
  }

  // Transpose(W) folded into an initializer F (folded_from [W] alone) whose every read is one of
  // FoldedPermutation's with one permutation (the optimizer's CSE merges the Transposes of a weight
  // several layers share, as ALBERT's do).
  Status RestoreFoldedTransposes() {
    std::vector<std::string> done;
    for (const auto& [folded, sources] : folded_from_) {
      if (sources.size() != 1) continue;
      auto p = by_target_.find(sources[0]);
      if (p == by_target_.end() || signature_.at(p->second).kind != "PARAMETER") continue;
      const std::string& target = sources[0];
      // W itself may still be in the file (a tied weight that is also an embedding table): then
      // the folded copy must hold exactly W transposed, and the Transpose reads W.
      const std::string* kept = nullptr;
      for (const auto& [init, placeholder] : placeholder_of_)
        if (placeholder == p->second) kept = &init;
      if (!kept && (!missing_.count(p->second) || names_.count(target))) continue;
      auto u = uses_.find(folded);
      auto dims = initializer_dims_.find(folded);
      if (u == uses_.end() || read_in_subgraph_.count(folded) || dims == initializer_dims_.end()) continue;
      const int64_t rank = static_cast<int64_t>(dims->second.size());
      std::vector<int64_t> perm = FoldedPermutation(u->second[0], p->second, rank);
      for (const Use& use : u->second)
        if (FoldedPermutation(use, p->second, rank) != perm) perm.clear();
      if (perm.empty()) continue;
      onnx::TensorProto* t = FindInitializer(folded);
      if (!t) continue;
      ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
      Tensor w = Untransposed(f, perm);
      if (kept) {
        onnx::TensorProto* k = FindInitializer(*kept);
        if (!k) continue;
        ASSIGN_OR_RETURN(Tensor have, InitializerData(*k, *held_));
        if (!have.SameContents(w)) continue;
      } else {
        AddValueInfo(target, w, p->second);
        AddHeldInitializer(g_, target, std::move(w), held_);
        placeholder_of_[target] = p->second;  // a second folded copy reads it too
      }
      onnx::NodeProto transpose;
      transpose.set_op_type("Transpose");
      transpose.set_name(StrCat(folded, "_restored_transpose"));
      transpose.add_input(kept ? *kept : target);
      transpose.add_output(folded);
      auto* attr = transpose.add_attribute();
      attr->set_name("perm");
      attr->set_type(onnx::AttributeProto::INTS);
      for (int64_t d : perm) attr->add_ints(d);
      auto* fx = transpose.add_metadata_props();
      fx->set_key(kFxNodeKey);
      fx->set_value(*Fx(*u->second[0].node));
      prepend_.push_back(std::move(transpose));
      done.push_back(folded);
    }
    DropFolded(done);  // their folded_from_ entries stay: the Transposes' outputs still claim W
    return Status::OK();
  }

  // nn.Embedding looked up with constant indices (position_ids from arange or a buffer, a zero
  // token_type_ids buffer) folds into initializer "embedding[_N]" (the aten.embedding node's name)
  // holding the rows it read, marked folded_from [..., W, ...] with W the only parameter. It becomes
  // Gather(W', rows) where W' holds each distinct row once: gradients of repeated rows add up, as
  // in PyTorch's lookup. W' has only the rows the file kept, so it is not PyTorch's full table.
  Status RestoreFoldedLookups() {
    std::vector<std::string> done;
    for (const auto& [folded, sources] : folded_from_) {
      const std::string suffix = folded.substr(std::min<size_t>(folded.size(), 9));
      if (folded.rfind("embedding", 0) != 0 ||
          !(suffix.empty() || (suffix.size() > 1 && suffix[0] == '_' &&
                               suffix.find_first_not_of("0123456789", 1) == std::string::npos)))
        continue;
      std::vector<std::string> params;
      for (const std::string& src : sources)
        if (auto p = by_target_.find(src); p != by_target_.end() && signature_.at(p->second).kind == "PARAMETER")
          params.push_back(p->second);
      if (params.size() != 1 || !missing_.count(params[0]) || read_in_subgraph_.count(folded)) continue;
      const std::string& target = signature_.at(params[0]).target;
      const std::string rows_name = StrCat(folded, "_rows");
      if (names_.count(target) || names_.count(rows_name)) continue;
      onnx::TensorProto* t = FindInitializer(folded);
      if (!t || t->dims_size() < 2) continue;
      ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
      const int64_t width = f.dims().back();
      if (width <= 0 || f.numel() == 0) continue;
      const int64_t n = f.numel() / width;
      const size_t row_bytes = static_cast<size_t>(width) * DTypeSize(f.dtype());
      const uint8_t* src = f.raw();
      std::map<std::string, int64_t> first;  // row bytes -> its row in W'
      std::vector<int64_t> index(n);
      std::vector<int64_t> kept;
      for (int64_t r = 0; r < n; ++r) {
        auto [it, fresh] = first.try_emplace(std::string(reinterpret_cast<const char*>(src) + r * row_bytes, row_bytes),
                                             static_cast<int64_t>(kept.size()));
        if (fresh) kept.push_back(r);
        index[r] = it->second;
      }
      Tensor w(f.dtype(), {static_cast<int64_t>(kept.size()), width});
      for (size_t k = 0; k < kept.size(); ++k) std::memcpy(w.raw() + k * row_bytes, src + kept[k] * row_bytes, row_bytes);
      std::vector<int64_t> index_dims(f.dims().begin(), f.dims().end() - 1);
      Tensor rows = Tensor::FromVector(DType::kInt64, index_dims, index);
      if (static_cast<int64_t>(kept.size()) < n)
        AddImportWarning(model_, StrCat("the exporter's optimizer folded a lookup of '", target, "' into '", folded,
                                        "' (", n, " rows, ", kept.size(), " distinct); each distinct row trains as one "
                                        "row of the table, which is PyTorch's training unless the table had equal "
                                        "rows at export; re-export with optimize=False to keep the lookup"));
      AddValueInfo(target, w, params[0]);
      AddHeldInitializer(g_, target, std::move(w), held_);
      AddHeldInitializer(g_, rows_name, std::move(rows), held_);
      names_.insert(rows_name);
      onnx::NodeProto gather;
      gather.set_op_type("Gather");
      gather.set_name(StrCat(folded, "_lookup"));
      gather.add_input(target);
      gather.add_input(rows_name);
      gather.add_output(folded);
      prepend_.push_back(std::move(gather));
      done.push_back(folded);
    }
    DropFolded(done);
    return Status::OK();
  }

  // A parameter reshaped in the model (ConvNeXt's layer scale gamma.view(1, -1, 1, 1), a conv
  // weight unsqueezed) folds into an initializer named after the last aten call of the chain,
  // "view_3", whose folded_from names the parameter, torchlib's constants (val_N) and the chain's
  // earlier calls. When every call in the chain keeps the element order, the folded tensor holds
  // the parameter's elements in order: it trains as the parameter (an elementwise optimizer cannot
  // tell the shapes apart) and takes its name, keeping the shape the model used.
  static bool KeepsElementOrder(const std::string& fx_name) {
    static const std::set<std::string> ops = {"view", "reshape", "_unsafe_view", "unsqueeze", "squeeze",
                                              "flatten", "alias", "clone", "contiguous", "lift_fresh_copy"};
    const size_t end = fx_name.find_last_not_of("0123456789");
    std::string op = fx_name.substr(0, end == std::string::npos ? 0 : end + 1);
    if (op.size() > 1 && op.back() == '_' && end + 1 < fx_name.size()) op.pop_back();
    return ops.count(op) > 0;
  }
  static bool IsTorchlibConstant(const std::string& name) {
    return name.size() > 4 && name.rfind("val_", 0) == 0 && name.find_first_not_of("0123456789", 4) == std::string::npos;
  }

  // The top-level arguments of an fx call, brackets kept whole: "(%x, [%h0, %c0], [%w, %r], True)"
  // -> {"%x", "[%h0, %c0]", "[%w, %r]", "True"}.
  static std::vector<std::string> FxTopLevelArgs(const std::string& fx) {
    std::vector<std::string> out;
    const size_t at = fx.find("](args = (");
    if (at == std::string::npos) return out;
    int depth = 0;
    std::string cur;
    for (size_t i = at + 10; i < fx.size(); ++i) {
      const char c = fx[i];
      if (depth == 0 && (c == ',' || c == ')')) {
        cur.erase(0, cur.find_first_not_of(' '));
        out.push_back(cur);
        cur.clear();
        if (c == ')') return out;
        continue;
      }
      if (c == '[' || c == '(') ++depth;
      if (c == ']' || c == ')') --depth;
      cur += c;
    }
    return {};
  }

  // nn.LSTM and nn.GRU: torchlib writes layer k as one ONNX LSTM/GRU whose W, R and B it builds
  // from the layer's parameters (gates reordered from PyTorch's i,f,g,o / r,z,n to ONNX's
  // i,o,f,c / z,r,h, directions and the two biases concatenated), and the optimizer folds them
  // into initializers. The parameters come back from those rows, and Gather (the gate order),
  // Unsqueeze and Concat rebuild W, R and B from them.
  Status RestoreFoldedRecurrentWeights() {
    std::map<std::string, int> layer_of_call;  // fx node name -> ONNX nodes seen (the layer index)
    for (auto& n : *g_->mutable_node()) {
      const bool lstm = n.op_type() == "LSTM", gru = n.op_type() == "GRU";
      if (!(lstm || gru) || !(n.domain().empty() || n.domain() == "ai.onnx")) continue;
      const std::string* fx = Fx(n);
      if (!fx) continue;
      const std::string call = lstm ? "[target=torch.ops.aten.lstm.input]" : "[target=torch.ops.aten.gru.input]";
      if (fx->find(call) == std::string::npos) continue;
      const int layer = layer_of_call[FxNodeName(*fx)]++;
      const std::vector<std::string> args = FxTopLevelArgs(*fx);
      // (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
      if (args.size() < 9 || args[2].size() < 2 || args[2].front() != '[') continue;
      const bool has_biases = args[3] == "True", bidirectional = args[7] == "True";
      std::vector<std::string> params;
      for (const std::string& o : FxCallOperands("](args = (" + args[2] + ")")) params.push_back(o);
      const int dirs = bidirectional ? 2 : 1, per_dir = has_biases ? 4 : 2;
      if (static_cast<int>(params.size()) < (layer + 1) * dirs * per_dir) continue;
      const std::vector<int64_t> torch_block = lstm ? std::vector<int64_t>{0, 3, 1, 2} : std::vector<int64_t>{1, 0, 2};
      const int64_t gates = static_cast<int64_t>(torch_block.size());
      // placeholder of (direction, slot): slot 0 W_ih, 1 W_hh, 2 b_ih, 3 b_hh
      auto param = [&](int d, int slot) { return params[(layer * dirs + d) * per_dir + slot]; };
      bool ok = n.input_size() >= 3 && (!has_biases || (n.input_size() >= 4 && !n.input(3).empty()));
      for (int d = 0; ok && d < dirs; ++d)
        for (int slot = 0; ok && slot < per_dir; ++slot) {
          const std::string& p = param(d, slot);
          ok = signature_.count(p) && missing_.count(p) && signature_.at(p).kind == "PARAMETER" &&
               !names_.count(signature_.at(p).target);
        }
      // W, R, B: folded from exactly these parameters (and torchlib's constants), read only here.
      for (int i = 1; ok && i <= (has_biases ? 3 : 2); ++i) {
        const std::string& in = n.input(i);
        auto f = folded_from_.find(in);
        auto u = uses_.find(in);
        ok = f != folded_from_.end() && u != uses_.end() && u->second.size() == 1 && !read_in_subgraph_.count(in);
        for (int d = 0; ok && d < dirs; ++d)
          for (int slot : i == 3 ? std::vector<int>{2, 3} : std::vector<int>{i - 1}) {
            const std::string& t = signature_.at(param(d, slot)).target;
            ok &= std::count(f->second.begin(), f->second.end(), t) == 1;
          }
      }
      if (!ok) continue;
      ASSIGN_OR_RETURN(Tensor w, InitializerData(*FindInitializer(n.input(1)), *held_));
      ASSIGN_OR_RETURN(Tensor r, InitializerData(*FindInitializer(n.input(2)), *held_));
      if (w.rank() != 3 || r.rank() != 3 || w.dims()[0] != dirs || r.dims()[0] != dirs) continue;
      const int64_t hidden = r.dims()[2], rows = gates * hidden;
      if (w.dims()[1] != rows || r.dims()[1] != rows) continue;
      Tensor b;
      if (has_biases) {
        ASSIGN_OR_RETURN(b, InitializerData(*FindInitializer(n.input(3)), *held_));
        if (b.rank() != 2 || b.dims()[0] != dirs || b.dims()[1] != 2 * rows) continue;
      }
      // ONNX row j*hidden + x holds PyTorch row torch_block[j]*hidden + x.
      std::vector<int64_t> onnx_to_torch(rows);
      for (int64_t j = 0; j < gates; ++j)
        for (int64_t x = 0; x < hidden; ++x) onnx_to_torch[j * hidden + x] = torch_block[j] * hidden + x;
      // Rows [offset, offset + rows) of `from`'s direction d, back in PyTorch's order.
      auto torch_rows = [&](const Tensor& from, int d, int64_t offset, int64_t width) {
        Tensor out(from.dtype(), width == 0 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, width});
        const size_t row_bytes = static_cast<size_t>(std::max<int64_t>(width, 1)) * DTypeSize(from.dtype());
        const int64_t dir_rows = from.numel() / dirs / std::max<int64_t>(width, 1);
        for (int64_t j = 0; j < rows; ++j)
          std::memcpy(out.raw() + onnx_to_torch[j] * row_bytes, from.raw() + (d * dir_rows + offset + j) * row_bytes,
                      row_bytes);
        return out;
      };
      const std::string base = StrCat(n.name(), "_restored");
      const std::string order = StrCat(base, "_gate_rows"), axis0 = StrCat(base, "_axis0");
      if (names_.count(order) || names_.count(axis0)) continue;
      AddHeldInitializer(g_, order, Tensor::FromVector(DType::kInt64, {rows}, onnx_to_torch), held_);
      AddHeldInitializer(g_, axis0, Tensor::FromVector<int64_t>(DType::kInt64, {1}, {0}), held_);
      names_.insert(order);
      names_.insert(axis0);
      auto add_node = [&](const std::string& op, std::vector<std::string> inputs, const std::string& out) {
        onnx::NodeProto node;
        node.set_op_type(op);
        node.set_name(out);
        for (auto& i : inputs) node.add_input(i);
        node.add_output(out);
        if (op == "Concat") {
          auto* a = node.add_attribute();
          a->set_name("axis");
          a->set_type(onnx::AttributeProto::INT);
          a->set_i(0);
        }
        names_.insert(out);
        prepend_.push_back(std::move(node));
      };
      // Restores the parameters of `slots` (one per direction each) and rebuilds input `i` from them.
      auto rebuild = [&](int i, const std::vector<int>& slots, const Tensor& data, int64_t width) {
        const std::string folded = n.input(i);
        std::vector<std::string> per_dir;
        for (int d = 0; d < dirs; ++d) {
          std::vector<std::string> parts;
          for (size_t k = 0; k < slots.size(); ++k) {
            const std::string& p = param(d, slots[k]);
            const std::string& target = signature_.at(p).target;
            Tensor t = torch_rows(data, d, static_cast<int64_t>(k) * rows, width);
            AddValueInfo(target, t, p);
            AddHeldInitializer(g_, target, std::move(t), held_);
            const std::string gathered = StrCat(base, "_", folded, "_", d, "_", k);
            add_node("Gather", {target, order}, gathered);
            parts.push_back(gathered);
          }
          std::string joined = parts[0];
          if (parts.size() > 1) add_node("Concat", parts, joined = StrCat(base, "_", folded, "_", d, "_joined"));
          const std::string out = dirs == 1 ? folded : StrCat(base, "_", folded, "_", d);
          add_node("Unsqueeze", {joined, axis0}, out);
          per_dir.push_back(out);
        }
        if (dirs > 1) add_node("Concat", per_dir, folded);
      };
      const std::vector<std::string> replaced = has_biases ? std::vector<std::string>{n.input(1), n.input(2), n.input(3)}
                                                           : std::vector<std::string>{n.input(1), n.input(2)};
      rebuild(1, {0}, w, w.dims()[2]);
      rebuild(2, {1}, r, hidden);
      if (has_biases) rebuild(3, {2, 3}, b, 0);
      for (const std::string& name : replaced) folded_from_.erase(name);
      DropFolded(replaced);
    }
    return Status::OK();
  }

  // The aten op an fx node name stands for: "exp_3" -> "exp".
  static std::string FxOp(const std::string& fx_name) {
    const size_t end = fx_name.find_last_not_of("0123456789");
    if (end == std::string::npos) return "";
    if (end + 1 < fx_name.size() && fx_name[end] == '_') return fx_name.substr(0, end);
    return fx_name;
  }

  // logit_scale.exp() (CLIP, SigLIP), -torch.exp(A_log) (Mamba and its hybrids, then unsqueezed),
  // RWKV's -exp(time_decay): a parameter through exp and/or neg, and calls that keep the element
  // order, folds into an initializer named after the last call ("neg", folded_from [A_log, exp]).
  // With both ops, the values' sign tells their order (exp's results are positive). Both invert, so
  // the parameter comes back as the inverse of the folded values in the folded shape (log rounds:
  // within an ulp of PyTorch's), and the ops are applied to it again.
  Status RestoreFoldedUnaryChains() {
    std::vector<std::string> done;
    for (const auto& [folded, sources] : folded_from_) {
      if (read_in_subgraph_.count(folded) || !initializers_.count(folded)) continue;
      std::vector<std::string> params, chain = {folded};
      for (const std::string& src : sources) {
        if (auto p = by_target_.find(src); p != by_target_.end()) params.push_back(p->second);
        else chain.push_back(src);
      }
      if (params.size() != 1 || !missing_.count(params[0]) || signature_.at(params[0]).kind != "PARAMETER") continue;
      bool known = true;
      int exps = 0, negs = 0;
      for (const std::string& c : chain) {
        const std::string op = FxOp(c);
        if (op == "exp") ++exps;
        else if (op == "neg") ++negs;
        else known &= KeepsElementOrder(c) || IsTorchlibConstant(c);
      }
      const bool has_exp = exps == 1, has_neg = negs == 1;
      const std::string& target = signature_.at(params[0]).target;
      if (!known || exps > 1 || negs > 1 || !(has_exp || has_neg) || names_.count(target)) continue;
      onnx::TensorProto* t = FindInitializer(folded);
      if (!t) continue;
      ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
      if (f.dtype() != DType::kFloat32 && f.dtype() != DType::kFloat64) continue;
      std::vector<std::string> ops;  // in the order the model applies them
      if (has_exp && has_neg) {
        bool negative = true, positive = true;
        for (int64_t i = 0; i < f.numel(); ++i) {
          negative &= f.GetAsDouble(i) < 0;
          positive &= f.GetAsDouble(i) > 0;
        }
        if (negative) ops = {"exp", "neg"};
        else if (positive) ops = {"neg", "exp"};
        else continue;
      } else {
        ops = {has_exp ? "exp" : "neg"};
      }
      Tensor w(f.dtype(), f.dims());
      bool ok = true;
      for (int64_t i = 0; i < f.numel(); ++i) {
        double v = f.GetAsDouble(i);
        for (auto op = ops.rbegin(); op != ops.rend(); ++op) {
          if (*op == "neg") v = -v;
          else if (v > 0) v = std::log(v);
          else ok = false;
        }
        w.SetFromDouble(i, v);
      }
      if (!ok) continue;
      AddValueInfo(target, w, params[0]);
      AddHeldInitializer(g_, target, std::move(w), held_);
      std::string in = target;
      for (size_t k = 0; k < ops.size(); ++k) {
        onnx::NodeProto n;
        n.set_op_type(ops[k] == "exp" ? "Exp" : "Neg");
        n.set_name(StrCat(folded, "_restored_", ops[k]));
        n.add_input(in);
        const std::string out = k + 1 == ops.size() ? folded : StrCat(folded, "_restored_", ops[k]);
        n.add_output(out);
        names_.insert(out);
        in = out;
        prepend_.push_back(std::move(n));
      }
      done.push_back(folded);
    }
    DropFolded(done);
    return Status::OK();
  }

  // torchlib's group_norm unsqueezes its weight and bias to [C, 1, ...] before the Mul and Add
  // that apply them; folded, the tensor is named val_N and keeps the parameter's element order.
  bool ReadAsGroupNormAffine(const std::string& folded) {
    auto u = uses_.find(folded);
    if (u == uses_.end()) return false;
    for (const Use& use : u->second) {
      const std::string* fx = Fx(*use.node);
      const std::string& op = use.node->op_type();
      if (!fx || !IsGroupNorm(*fx) || (op != "Mul" && op != "Add") || IsRewritten(*use.node)) return false;
    }
    return true;
  }
  static bool IsGroupNorm(const std::string& fx) {
    return fx.find("[target=torch.ops.aten.group_norm.default]") != std::string::npos ||
           fx.find("[target=torch.ops.aten.native_group_norm.default]") != std::string::npos;
  }
  // A node onnxscript's rewriter made from several: it carries one matched node's fx call while it
  // may read the initializers of others, so its metadata pairs nothing. Rules that rewrite one node
  // in place (dropping a zero bias, materialising a Reshape's shape) keep its call.
  static bool IsRewritten(const onnx::NodeProto& n) {
    const std::string* rules = FindProp(n.metadata_props(), "pkg.onnxscript.rewriter.rule_name");
    if (!rules) return false;
    for (size_t s = 0; s <= rules->size();) {
      size_t e = std::min(rules->find(',', s), rules->size());
      std::string rule = rules->substr(s, e - s);
      rule.erase(0, rule.find_first_not_of(' '));
      if (rule.rfind("RemoveOptionalBiasFrom", 0) != 0 && rule != "MaterializeReshapeShape") return true;
      s = e + 1;
    }
    return false;
  }

  Status RestoreFoldedViews() {
    std::vector<std::pair<std::string, std::string>> renames;  // folded -> parameter name
    for (const auto& [folded, sources] : folded_from_) {
      if (read_in_subgraph_.count(folded) || !initializers_.count(folded)) continue;
      if (!KeepsElementOrder(folded) && !ReadAsGroupNormAffine(folded)) continue;
      std::vector<std::string> params;
      bool order_kept = true;
      for (const std::string& src : sources) {
        if (auto p = by_target_.find(src); p != by_target_.end()) params.push_back(p->second);
        else order_kept &= IsTorchlibConstant(src) || KeepsElementOrder(src);
      }
      if (!order_kept || params.size() != 1 || !missing_.count(params[0]) ||
          signature_.at(params[0]).kind != "PARAMETER")
        continue;
      const std::string& target = signature_.at(params[0]).target;
      if (names_.count(target)) continue;
      onnx::TensorProto* t = FindInitializer(folded);
      if (!t) continue;
      ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
      AddValueInfo(target, f, params[0]);
      AddHeldInitializer(g_, target, std::move(f), held_);
      placeholder_of_[target] = params[0];
      aliases_[target].insert(folded);  // aten calls read it by the folded call's name
      renames.push_back({folded, target});
    }
    for (const auto& [folded, target] : renames) {
      for (const Use& u : uses_[folded]) u.node->set_input(u.input, target);
      RemoveInitializer(folded);
      auto* infos = g_->mutable_value_info();
      for (int i = infos->size() - 1; i >= 0; --i)
        if (infos->Get(i).name() == folded) infos->DeleteSubrange(i, 1);
      uses_.erase(folded);
      folded_from_.erase(folded);
    }
    return Status::OK();
  }

  // The folded initializers a rule replaced with nodes computing them from the restored parameter.
  void DropFolded(const std::vector<std::string>& names) {
    for (const std::string& name : names) {
      RemoveInitializer(name);
      uses_.erase(name);
    }
  }

  void RemoveInitializer(const std::string& name) {
    auto* list = g_->mutable_initializer();
    for (int i = 0; i < list->size(); ++i)
      if (list->Get(i).name() == name) {
        list->DeleteSubrange(i, 1);
        break;
      }
    held_->erase(name);
    initializers_.erase(name);
    // Its value_info stays (the Transpose's output type) without the folded mark.
    for (auto& v : *g_->mutable_value_info()) {
      if (v.name() != name) continue;
      auto* props = v.mutable_metadata_props();
      for (int i = props->size() - 1; i >= 0; --i)
        if (props->Get(i).key() == kFoldedFromKey) props->DeleteSubrange(i, 1);
    }
  }

  // One fx node's ONNX nodes (torchlib may write an aten call as several).
  struct Group {
    std::string fx;
    std::vector<onnx::NodeProto*> nodes;
  };

  // Pairs each read of a placeholder-backed initializer in `group` with the placeholder operand it
  // stands for. First in order (torchlib keeps the aten argument order: LayerNormalization(x, w, b),
  // Gemm(x, w, b) for aten.linear); when that contradicts an initializer's own placeholder
  // (aten.addmm(bias, x, w) is Gemm(x, w, bias)), the initializers that are their own placeholders
  // take them and the merged ones pair with the rest, by attribute name ("bias", "weight") where
  // that decides, else in order. Empty when no pairing is consistent.
  std::vector<std::pair<Use, std::string>> PairReads(const std::vector<Use>& uses,
                                                     const std::vector<std::string>& operands) const {
    auto in = [](const Use& u) -> const std::string& { return u.node->input(u.input); };
    std::vector<std::string> distinct;
    for (const Use& u : uses)
      if (std::find(distinct.begin(), distinct.end(), in(u)) == distinct.end()) distinct.push_back(in(u));
    auto consistent = [&](const std::vector<std::pair<Use, std::string>>& pairs) {
      for (const auto& [use, placeholder] : pairs)
        if (placeholder_of_.at(in(use)) != placeholder && !missing_.count(placeholder)) return false;
      return !pairs.empty();
    };
    std::vector<std::pair<Use, std::string>> pairs;
    if (uses.size() == operands.size()) {
      for (size_t i = 0; i < uses.size(); ++i) pairs.push_back({uses[i], operands[i]});
      if (consistent(pairs)) return pairs;
    }
    if (distinct.size() == operands.size()) {
      pairs.clear();
      for (const Use& u : uses)
        pairs.push_back({u, operands[std::find(distinct.begin(), distinct.end(), in(u)) - distinct.begin()]});
      if (consistent(pairs)) return pairs;
    }
    std::vector<std::string> rest, merged;
    std::set<std::string> own;
    for (const std::string& i : distinct)
      if (std::count(operands.begin(), operands.end(), placeholder_of_.at(i))) own.insert(placeholder_of_.at(i));
      else merged.push_back(i);
    for (const std::string& o : operands)
      if (!own.count(o) && std::find(rest.begin(), rest.end(), o) == rest.end()) rest.push_back(o);
    if (merged.empty() || merged.size() != rest.size()) return {};
    auto attribute = [](const std::string& target) { return target.substr(target.rfind('.') + 1); };
    std::map<std::string, std::string> partner;  // merged initializer -> placeholder
    for (const std::string& m : merged) {
      const std::string a = attribute(signature_.at(placeholder_of_.at(m)).target);
      std::vector<std::string> same;
      for (const std::string& r : rest)
        if (attribute(signature_.at(r).target) == a) same.push_back(r);
      if (same.size() == 1) partner[m] = same[0];
    }
    std::set<std::string> taken;
    for (const auto& [m, r] : partner) taken.insert(r);
    if (partner.size() != merged.size() || taken.size() != rest.size())
      for (size_t i = 0; i < merged.size(); ++i) partner[merged[i]] = rest[i];
    pairs.clear();
    for (const Use& u : uses)
      if (auto p = partner.find(in(u)); p != partner.end()) pairs.push_back({u, p->second});
    return consistent(pairs) ? pairs : std::vector<std::pair<Use, std::string>>{};
  }

  // A zero bias that onnxscript's RemoveOptionalBias rules dropped from Conv, ConvTranspose or Gemm:
  // the node lacks its third input while its fx call has one placeholder operand left, missing.
  // Returns the bias shape PyTorch's parameter has, or empty when this is not such a node.
  std::vector<int64_t> DroppedBiasShape(const onnx::NodeProto& n) const {
    if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.input_size() != 2) return {};
    const std::string& op = n.op_type();
    if (op != "Conv" && op != "ConvTranspose" && op != "Gemm") return {};
    auto w = initializer_dims_.find(n.input(1));
    if (w == initializer_dims_.end() || w->second.size() < 2) return {};
    const std::vector<int64_t>& d = w->second;
    int64_t trans_b = 0, group = 1;
    for (const auto& a : n.attribute()) {
      if (a.name() == "transB") trans_b = a.i();
      if (a.name() == "group") group = a.i();
    }
    if (op == "Conv") return {d[0]};
    if (op == "ConvTranspose") return {d[1] * group};
    if (d.size() != 2) return {};
    return {trans_b ? d[0] : d[1]};
  }

  Status SplitMergedDuplicates() {
    std::map<std::string, Group> groups;
    std::vector<std::string> order;
    std::set<std::string> ambiguous;
    for (auto& n : *g_->mutable_node()) {
      const std::string* fx = Fx(n);
      if (!fx || IsRewritten(n)) continue;
      const std::string name = FxNodeName(*fx);
      if (name.empty()) continue;
      auto [it, fresh] = groups.try_emplace(name);
      if (fresh) {
        it->second.fx = *fx;
        order.push_back(name);
      } else if (it->second.fx != *fx) {
        ambiguous.insert(name);  // two fx nodes of one name: not a grouping to trust
      }
      it->second.nodes.push_back(&n);
    }
    // placeholder -> the kept initializer whose bytes it takes and the reads that are its own.
    struct Assignment {
      std::string from;
      std::vector<Use> uses;
      bool conflict = false;
    };
    std::map<std::string, Assignment> assigned;
    std::map<std::string, std::pair<onnx::NodeProto*, std::vector<int64_t>>> dropped_bias;
    for (const std::string& name : order) {
      if (ambiguous.count(name)) continue;
      const Group& group = groups[name];
      std::set<std::string> claimed;  // placeholders the group reads through folded initializers
      std::vector<Use> uses;
      const std::vector<std::string> raw = FxCallOperands(group.fx);
      // A read of a parameter's initializer that the call does not name is a tensor the optimizer
      // merged into it: another parameter (paired below) or one of torchlib's constants.
      std::vector<Use> foreign;
      auto own = [&](const std::string& in) {
        if (std::count(raw.begin(), raw.end(), placeholder_of_.at(in))) return true;
        for (const std::string& a : aliases_[in])
          if (std::count(raw.begin(), raw.end(), a)) return true;
        return false;
      };
      for (onnx::NodeProto* n : group.nodes)
        for (int i = 0; i < n->input_size(); ++i) {
          const std::string& in = n->input(i);
          if (auto f = folded_from_.find(in); f != folded_from_.end())
            for (const std::string& s : f->second)
              if (auto p = by_target_.find(s); p != by_target_.end()) claimed.insert(p->second);
          if (!placeholder_of_.count(in)) continue;
          if (!own(in)) foreign.push_back({n, i});
          // Read under the name of a folded call (a restored view): its own, not an operand's.
          if (!std::count(raw.begin(), raw.end(), placeholder_of_.at(in)) && own(in)) continue;
          // group_norm's InstanceNormalization takes torchlib's constant unit scale and zero bias.
          if (n->op_type() == "InstanceNormalization" && i > 0 && IsGroupNorm(group.fx)) continue;
          uses.push_back({n, i});
        }
      std::vector<std::string> operands;
      for (const std::string& o : raw)
        if (signature_.count(o) && !claimed.count(o)) operands.push_back(o);
      std::vector<std::pair<Use, std::string>> pairs;
      if (!operands.empty()) pairs = PairReads(uses, operands);
      if (pairs.empty() && group.nodes.size() == 1 && !operands.empty()) {
        // A Conv/ConvTranspose/Gemm without its bias whose call names a missing bias parameter.
        std::vector<int64_t> shape = DroppedBiasShape(*group.nodes[0]);
        std::vector<std::string> biases;
        for (const std::string& o : operands)
          if (missing_.count(o) && signature_.at(o).target.find("bias") != std::string::npos) biases.push_back(o);
        if (!shape.empty() && biases.size() == 1) {
          dropped_bias[biases[0]] = {group.nodes[0], std::move(shape)};
          operands.erase(std::find(operands.begin(), operands.end(), biases[0]));
          if (!operands.empty()) pairs = PairReads(uses, operands);
        }
      }
      // Operands named after a call whose result no longer exists: folded, then merged away.
      std::vector<std::string> orphans;
      for (const std::string& o : raw)
        if (!names_.count(o) && !signature_.count(o)) orphans.push_back(o);
      for (const Use& f : foreign) {
        bool paired = false;
        for (const auto& [use, placeholder] : pairs) paired |= use.node == f.node && use.input == f.input;
        if (paired) continue;
        constant_reads_.push_back(f);
        if (!orphans.empty())
          AddImportWarning(model_, StrCat("node '", f.node->name(), "' reads '", f.node->input(f.input), "' where its aten "
                                          "call reads '", orphans[0], "', which the exporter's optimizer folded and "
                                          "merged into it; that value stays constant, so if it came from a parameter, "
                                          "the parameter does not train as in PyTorch; re-export with "
                                          "torch.onnx.export(..., dynamo=True, optimize=False)"));
      }
      for (const auto& [use, placeholder] : pairs) {
        const std::string& in = use.node->input(use.input);
        if (placeholder_of_.at(in) == placeholder) continue;
        Assignment& a = assigned[placeholder];
        if (!a.from.empty() && a.from != in) a.conflict = true;
        a.from = in;
        a.uses.push_back(use);
      }
    }
    for (auto& [placeholder, a] : assigned) {
      const std::string& target = signature_.at(placeholder).target;
      if (a.conflict || names_.count(target) || dropped_bias.count(placeholder)) continue;
      onnx::TensorProto* t = FindInitializer(a.from);
      if (!t) continue;
      ASSIGN_OR_RETURN(Tensor kept, InitializerData(*t, *held_));
      Tensor copy(kept.dtype(), kept.dims());
      if (kept.nbytes()) std::memcpy(copy.raw(), kept.raw(), kept.nbytes());
      AddValueInfo(target, copy, placeholder);
      AddHeldInitializer(g_, target, std::move(copy), held_);
      for (const Use& u : a.uses) u.node->set_input(u.input, target);
    }
    for (auto& [placeholder, bias] : dropped_bias) {
      const std::string& target = signature_.at(placeholder).target;
      if (names_.count(target) || assigned.count(placeholder)) continue;
      onnx::NodeProto* n = bias.first;
      auto w = FindInitializer(n->input(1));
      ASSIGN_OR_RETURN(DType dtype, DTypeFromOnnx(w->data_type()));
      Tensor zeros(dtype, bias.second);
      AddValueInfo(target, zeros, placeholder);
      AddHeldInitializer(g_, target, std::move(zeros), held_);
      n->add_input(target);
    }
    // Constants merged into a parameter read from a copy of their own, which does not train.
    std::map<std::string, std::string> constant_of;
    for (const Use& u : constant_reads_) {
      const std::string from = u.node->input(u.input);
      auto [it, fresh] = constant_of.try_emplace(from);
      if (fresh) {
        std::string name = StrCat(from, "_constant");
        for (int k = 2; names_.count(name); ++k) name = StrCat(from, "_constant", k);
        onnx::TensorProto* t = FindInitializer(from);
        if (!t) continue;
        ASSIGN_OR_RETURN(Tensor kept, InitializerData(*t, *held_));
        Tensor copy(kept.dtype(), kept.dims());
        if (kept.nbytes()) std::memcpy(copy.raw(), kept.raw(), kept.nbytes());
        AddHeldInitializer(g_, name, std::move(copy), held_);
        names_.insert(name);
        it->second = name;
      }
      if (!it->second.empty()) u.node->set_input(u.input, it->second);
    }
    return Status::OK();
  }

  onnx::ModelProto* model_;
  onnx::GraphProto* g_;
  HeldInitializers* held_;
  std::map<std::string, SignatureInput> signature_;
  std::map<std::string, std::string> by_target_;       // target -> placeholder
  std::map<std::string, std::string> placeholder_of_;  // initializer -> its signature placeholder
  std::map<std::string, std::vector<std::string>> folded_from_;
  std::map<std::string, std::vector<Use>> uses_;       // initializer -> main-graph reads
  std::map<std::string, std::vector<int64_t>> initializer_dims_;
  std::map<std::string, std::set<std::string>> aliases_;  // restored initializer -> fx names read as it
  std::set<std::string> initializers_, names_, missing_, read_in_subgraph_;
  std::vector<onnx::NodeProto> prepend_;
  std::vector<Use> constant_reads_;
};

}  // namespace

Status RestoreOptimizedParameters(onnx::ModelProto* model, HeldInitializers* held) {
  const std::string* signature = FindProp(model->graph().metadata_props(), kTorchSignatureKey);
  if (!signature) return Status::OK();
  Restorer r(model, held);
  return r.Run(*signature);
}

}  // namespace dsc
