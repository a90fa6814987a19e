// Restoring nn.LSTM/nn.GRU parameters that onnxscript's optimizer folded into ONNX's W, R and B.

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "frontend/parameter_restorer.h"
#include "ir/dtype.h"

namespace dsc {
namespace {

// The top-level arguments of an fx call, brackets kept whole: "(%x, [%h0, %c0], [%w, %r], True)"
// -> {"%x", "[%h0, %c0]", "[%w, %r]", "True"}.
std::vector<std::string> FxTopLevelArgs(const std::string& fx) {
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

}  // namespace

// nn.LSTM and nn.GRU: torchlib writes layer k as one ONNX LSTM/GRU whose W, R and B it builds
// from the layer's parameters (gates reordered from PyTorch's i,f,g,o / r,z,n to ONNX's
// i,o,f,c / z,r,h, directions and the two biases concatenated), and the optimizer folds them
// into initializers. The parameters come back from those rows, and Gather (the gate order),
// Unsqueeze and Concat rebuild W, R and B from them.
Status ParameterRestorer::RestoreFoldedRecurrentWeights() {
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

}  // namespace dsc
