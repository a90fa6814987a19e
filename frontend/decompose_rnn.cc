// LSTM, GRU and RNN unrolled into supported ops (see decompose_rnn.h).
#include "frontend/decompose_rnn.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <vector>

#include "frontend/model_types.h"
#include "frontend/proto_rewriter.h"

namespace dsc {
namespace {

enum class Cell { kLstm, kGru, kRnn };

std::string Describe(const onnx::NodeProto& n) {
  if (n.name().empty()) return StrCat("node producing '", n.output_size() ? n.output(0) : "?", "' (", n.op_type(), ")");
  return StrCat("node '", n.name(), "' (", n.op_type(), ")");
}

// An optional input: its name, or "" when absent or given as the empty name.
std::string Input(const onnx::NodeProto& n, int i) { return i < n.input_size() ? n.input(i) : ""; }
std::string Output(const onnx::NodeProto& n, int i) { return i < n.output_size() ? n.output(i) : ""; }

// An activation function of the cell as the supported op that computes it.
struct Activation {
  std::string op;
  std::optional<float> alpha, beta;  // set for the ops that take them
};

// The activations of each direction (LSTM f, g, h; GRU f, g; RNN f), with activation_alpha and
// activation_beta consumed in order by the functions that take them (defaults: the ops').
StatusOr<std::vector<std::vector<Activation>>> ParseActivations(const onnx::NodeProto& n, Cell cell, int64_t dirs) {
  const std::vector<std::string> defaults = cell == Cell::kLstm  ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
                                            : cell == Cell::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                                 : std::vector<std::string>{"Tanh"};
  const size_t per_dir = defaults.size();
  std::vector<std::string> names;
  if (const onnx::AttributeProto* a = FindAttr(n, "activations")) {
    std::vector<std::string> given(a->strings().begin(), a->strings().end());
    if (given.size() == per_dir * dirs) {
      names = given;
    } else if (given.size() == per_dir && dirs == 2) {  // one list for both directions
      names = given;
      names.insert(names.end(), given.begin(), given.end());
    } else if (cell == Cell::kRnn && dirs == 1 && given.size() == 2 && given[0] == given[1]) {
      names = {given[0]};  // the schema's default value, ["Tanh", "Tanh"], written out
    } else {
      return InvalidArgument(Describe(n), ": 'activations' lists ", given.size(), " functions; a ",
                             dirs == 2 ? "bidirectional " : "", n.op_type(), " takes ", per_dir * dirs);
    }
  } else {
    for (int64_t d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  }
  auto floats = [&](const char* name) {
    const onnx::AttributeProto* a = FindAttr(n, name);
    return a ? std::vector<float>(a->floats().begin(), a->floats().end()) : std::vector<float>{};
  };
  const std::vector<float> alphas = floats("activation_alpha"), betas = floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  auto take = [](const std::vector<float>& v, size_t* next, float dflt) {
    return *next < v.size() ? v[(*next)++] : dflt;
  };
  std::vector<std::vector<Activation>> out(static_cast<size_t>(dirs));
  for (size_t k = 0; k < names.size(); ++k) {
    std::string lower = names[k];
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    Activation act;
    if (lower == "sigmoid") act.op = "Sigmoid";
    else if (lower == "tanh") act.op = "Tanh";
    else if (lower == "relu") act.op = "Relu";
    else if (lower == "softsign") act.op = "Softsign";
    else if (lower == "softplus") act.op = "Softplus";
    else if (lower == "leakyrelu") act = {"LeakyRelu", take(alphas, &next_alpha, 0.01f), std::nullopt};
    else if (lower == "elu") act = {"Elu", take(alphas, &next_alpha, 1.0f), std::nullopt};
    else if (lower == "hardsigmoid")
      act = {"HardSigmoid", take(alphas, &next_alpha, 0.2f), take(betas, &next_beta, 0.5f)};
    else
      return Unimplemented(Describe(n), ": activation '", names[k], "' is not supported (supported: Sigmoid, Tanh, "
                           "Relu, LeakyRelu, Elu, HardSigmoid, Softsign, Softplus)");
    out[k / per_dir].push_back(act);
  }
  if (next_alpha < alphas.size() || next_beta < betas.size())
    return InvalidArgument(Describe(n), ": activation_alpha/activation_beta hold ", alphas.size(), "/", betas.size(),
                           " values, but its activations take ", next_alpha, "/", next_beta);
  return out;
}

// The values of an int32 tensor, from int32_data or raw_data (little-endian); nullopt for another type.
std::optional<std::vector<int32_t>> Int32Values(const onnx::TensorProto& t) {
  if (t.data_type() != onnx::TensorProto::INT32 || t.data_location() == onnx::TensorProto::EXTERNAL)
    return std::nullopt;
  if (t.raw_data().empty()) return std::vector<int32_t>(t.int32_data().begin(), t.int32_data().end());
  const std::string& raw = t.raw_data();
  std::vector<int32_t> v(raw.size() / 4);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<unsigned char>(raw[4 * i])) |
                                static_cast<uint32_t>(static_cast<unsigned char>(raw[4 * i + 1])) << 8 |
                                static_cast<uint32_t>(static_cast<unsigned char>(raw[4 * i + 2])) << 16 |
                                static_cast<uint32_t>(static_cast<unsigned char>(raw[4 * i + 3])) << 24);
  return v;
}

// sequence_lens: accepted when absent, or a constant saying every sequence has the full length
// (then it changes nothing); padded batches would need per-element masks, refused.
Status CheckSequenceLens(const onnx::NodeProto& n, const ModelTypes& types, int64_t seq) {
  const std::string name = Input(n, 4);
  if (name.empty()) return Status::OK();
  const onnx::TensorProto* t = types.Constant(name);
  std::optional<std::vector<int32_t>> lens = t ? Int32Values(*t) : std::nullopt;
  bool full = lens && !lens->empty();
  for (size_t i = 0; full && i < lens->size(); ++i) full = (*lens)[i] == seq;
  if (full) return Status::OK();
  return Unimplemented(Describe(n), ": sequence_lens ('", name, "') is supported only absent or as a constant "
                       "equal to the full sequence length ", seq, " for every batch element (variable-length "
                       "sequences need masking that dscompile does not do; export without packed sequences)");
}

class Unroller {
 public:
  Unroller(const onnx::NodeProto& n, Cell cell, int64_t opset, std::vector<onnx::NodeProto>* out)
      : n_(n), cell_(cell), r_(n, opset, out) {}

  Status Run(const ModelTypes& types) {
    RETURN_IF_ERROR(ReadAttributes(types));
    // Inputs in the [T, B, *] form.
    std::string x = Input(n_, 0);
    if (layout_ == 1) x = Transpose(x, {1, 0, 2});
    std::string h0 = Input(n_, 5), c0 = cell_ == Cell::kLstm ? Input(n_, 6) : "";
    if (layout_ == 1 && !h0.empty()) h0 = Transpose(h0, {1, 0, 2});
    if (layout_ == 1 && !c0.empty()) c0 = Transpose(c0, {1, 0, 2});
    if (clip_) {
      clip_lo_ = Scalar(-*clip_);
      clip_hi_ = Scalar(*clip_);
    }
    if (cell_ == Cell::kLstm && input_forget_) one_ = Scalar(1.0f);

    std::vector<std::string> ys, hs, cs;
    for (int64_t d = 0; d < dirs_; ++d) {
      Direction dir = Prepare(x, d, h0, c0);
      std::vector<std::string> steps(static_cast<size_t>(seq_));
      for (int64_t s = 0; s < seq_; ++s) {
        const int64_t t = Reversed(d) ? seq_ - 1 - s : s;
        dir.h = cell_ == Cell::kLstm ? LstmStep(dir, t) : cell_ == Cell::kGru ? GruStep(dir, t) : RnnStep(dir, t);
        steps[static_cast<size_t>(t)] = dir.h;
      }
      if (!Output(n_, 0).empty()) {
        const std::string y = seq_ == 1 ? steps[0] : r_.Add("Concat", steps);
        if (seq_ > 1) r_.SetInt("axis", 0);
        ys.push_back(Unsqueeze(y, 1));  // [T, 1, B, H]
      }
      hs.push_back(dir.h);
      cs.push_back(dir.c);
    }
    Emit(ys, 1, {2, 0, 1, 3}, Output(n_, 0));
    Emit(hs, 0, {1, 0, 2}, Output(n_, 1));
    if (cell_ == Cell::kLstm) Emit(cs, 0, {1, 0, 2}, Output(n_, 2));
    return Status::OK();
  }

 private:
  // Per-direction tensors built once, and the running state.
  struct Direction {
    std::vector<std::string> xw;  // [1, B, G*H] per step: X·W^T plus the biases that sit outside the recurrence
    std::string rt;               // R^T [H, G*H] (GRU with linear_before_reset=0: the z and r columns only)
    std::string rt_h;             // GRU linear_before_reset=0: Rh^T [H, H]
    std::string rbh;              // GRU linear_before_reset=1: Rbh [H], multiplied by r
    std::string p_i, p_o, p_f;    // LSTM peepholes [H]
    std::string h, c;             // state [1, B, H]; "" while it is the implicit zero
    std::vector<Activation> act;
  };

  Status ReadAttributes(const ModelTypes& types) {
    const onnx::AttributeProto* dir = FindAttr(n_, "direction");
    const std::string direction = dir ? dir->s() : "forward";
    if (direction == "forward" || direction == "reverse") {
      dirs_ = 1;
      reverse_ = direction == "reverse";
    } else if (direction == "bidirectional") {
      dirs_ = 2;
    } else {
      return InvalidArgument(Describe(n_), ": direction '", direction, "' is not forward, reverse or bidirectional");
    }
    const onnx::AttributeProto* layout = FindAttr(n_, "layout");
    layout_ = layout ? layout->i() : 0;
    if (layout_ != 0 && layout_ != 1) return InvalidArgument(Describe(n_), ": layout ", layout_, " is not 0 or 1");
    gates_ = cell_ == Cell::kLstm ? 4 : cell_ == Cell::kGru ? 3 : 1;
    if (const onnx::AttributeProto* h = FindAttr(n_, "hidden_size")) {
      hidden_ = h->i();
    } else {
      std::optional<int64_t> h2 = types.Dim(Input(n_, 2), 2);
      if (!h2) return Unimplemented(Describe(n_), ": no hidden_size attribute and R's shape is not static");
      hidden_ = *h2;
    }
    if (hidden_ <= 0) return InvalidArgument(Describe(n_), ": hidden_size ", hidden_, " is not positive");
    const int seq_axis = layout_ == 0 ? 0 : 1;
    std::optional<int64_t> seq = types.Dim(Input(n_, 0), seq_axis);
    if (!seq) {
      // --dim binds a graph input's symbol; a length the graph computes (HF EnCodec's padding from its
      // input's length) gets a symbol invented by inference, which no --dim can reach.
      const std::string symbol = types.Symbol(Input(n_, 0), seq_axis);
      const bool bindable = !symbol.empty() && types.IsInputSymbol(symbol);
      return Unimplemented(Describe(n_), ": the sequence length of X ('", Input(n_, 0), "', axis ", seq_axis, ") is ",
                           bindable ? StrCat("the symbol '", symbol, "'")
                                    : "not static (ONNX shape inference cannot compute it from the graph)",
                           "; dscompile unrolls ", n_.op_type(), " over its steps: ",
                           bindable ? StrCat("bind it with --dim ", symbol, "=LENGTH or ") : "",
                           "export with a fixed sequence length");
    }
    seq_ = *seq;
    if (seq_ <= 0) return InvalidArgument(Describe(n_), ": the sequence length of X is ", seq_);
    elem_type_ = types.ElemType(Input(n_, 0));
    if (elem_type_ == 0) return Unimplemented(Describe(n_), ": the element type of X is not known");
    RETURN_IF_ERROR(CheckSequenceLens(n_, types, seq_));
    // The weights' static dims against the attributes: a mismatch would otherwise surface as a
    // Reshape or MatMul failure deep inside the unrolled steps.
    const int64_t gh = gates_ * hidden_;
    const struct {
      int input;
      const char* name;
      std::vector<int64_t> dims;  // -1: any
    } expected[] = {{1, "W", {dirs_, gh, -1}}, {2, "R", {dirs_, gh, hidden_}}, {3, "B", {dirs_, 2 * gh}},
                    {7, "P", {dirs_, 3 * hidden_}}};
    for (const auto& e : expected) {
      const std::string name = Input(n_, e.input);
      if (name.empty() || (e.input == 7 && cell_ != Cell::kLstm)) continue;
      for (size_t a = 0; a < e.dims.size(); ++a) {
        std::optional<int64_t> dim = types.Dim(name, static_cast<int>(a));
        if (dim && e.dims[a] >= 0 && *dim != e.dims[a])
          return InvalidArgument(Describe(n_), ": ", e.name, " ('", name, "') has ", *dim, " along axis ", a,
                                 "; direction, hidden_size ", hidden_, " and ", gates_, " gates make it ", e.dims[a]);
      }
    }
    ASSIGN_OR_RETURN(acts_, ParseActivations(n_, cell_, dirs_));
    if (const onnx::AttributeProto* c = FindAttr(n_, "clip")) {
      if (!(c->f() > 0)) return InvalidArgument(Describe(n_), ": clip ", c->f(), " is not positive");
      clip_ = c->f();
    }
    if (const onnx::AttributeProto* f = FindAttr(n_, "input_forget")) input_forget_ = f->i() != 0;
    if (const onnx::AttributeProto* l = FindAttr(n_, "linear_before_reset")) linear_before_reset_ = l->i() != 0;
    return Status::OK();
  }

  bool Reversed(int64_t d) const { return d == 1 || reverse_; }

  // A float scalar Constant in X's element type.
  std::string Scalar(float v) {
    const std::string f = r_.Float(v);
    if (elem_type_ == onnx::TensorProto::FLOAT) return f;
    const std::string cast = r_.Add("Cast", {f});
    r_.SetInt("to", elem_type_);
    return cast;
  }
  std::string Transpose(const std::string& x, const std::vector<int64_t>& perm, const std::string& out = "") {
    const std::string y = r_.Add("Transpose", {x}, out);
    r_.SetInts("perm", perm);
    return y;
  }
  std::string Unsqueeze(const std::string& x, int64_t axis) { return r_.Add("Unsqueeze", {x, r_.Ints({axis})}); }
  std::string Reshape(const std::string& x, const std::vector<int64_t>& shape) {
    return r_.Add("Reshape", {x, r_.Ints(shape)});
  }
  std::vector<std::string> Split(const std::string& x, int64_t axis, const std::vector<int64_t>& sizes) {
    std::vector<std::string> outs = r_.AddMulti("Split", {x, r_.Ints(sizes)}, static_cast<int>(sizes.size()));
    r_.SetInt("axis", axis);
    return outs;
  }
  // Direction d's part [1, ...] of a [num_directions, ...] tensor: one Split for both directions
  // (its gradient, a Concat, is cheaper than two Slice gradients each writing the whole tensor).
  std::string OfDirection(const std::string& x, int64_t d) {
    if (dirs_ == 1) return x;
    std::vector<std::string>& parts = by_direction_[x];
    if (parts.empty()) parts = Split(x, 0, {1, 1});
    return parts[static_cast<size_t>(d)];
  }
  std::string Apply(const Activation& a, const std::string& x) {
    std::string in = x;
    if (clip_) in = r_.Add("Clip", {x, clip_lo_, clip_hi_});
    const std::string y = r_.Add(a.op, {in});
    if (a.alpha) r_.SetFloat("alpha", *a.alpha);
    if (a.beta) r_.SetFloat("beta", *a.beta);
    return y;
  }
  // The cell's h(C) in LSTM: an activation of the state, which clip (a bound on gate inputs) leaves alone.
  std::string ApplyUnclipped(const Activation& a, const std::string& x) {
    const std::string y = r_.Add(a.op, {x});
    if (a.alpha) r_.SetFloat("alpha", *a.alpha);
    if (a.beta) r_.SetFloat("beta", *a.beta);
    return y;
  }

  Direction Prepare(const std::string& x, int64_t d, const std::string& h0, const std::string& c0) {
    Direction dir;
    dir.act = acts_[static_cast<size_t>(d)];
    const int64_t gh = gates_ * hidden_;
    const std::string wt = Transpose(Reshape(OfDirection(Input(n_, 1), d), {gh, -1}), {1, 0});  // [I, G*H]
    std::string rt = Transpose(Reshape(OfDirection(Input(n_, 2), d), {gh, hidden_}), {1, 0});  // [H, G*H]
    std::string xw = r_.Add("MatMul", {x, wt});                                               // [T, B, G*H]
    if (const std::string b = Input(n_, 3); !b.empty()) {
      const std::vector<std::string> wb_rb = Split(Reshape(OfDirection(b, d), {2 * gh}), 0, {gh, gh});
      std::string bias;
      if (cell_ == Cell::kGru && linear_before_reset_) {
        // Rbh sits inside r * (H·Rh^T + Rbh); the z and r parts of Rb join Wb outside the recurrence.
        const std::vector<std::string> rb = Split(wb_rb[1], 0, {2 * hidden_, hidden_});
        const std::vector<std::string> wb = Split(wb_rb[0], 0, {2 * hidden_, hidden_});
        bias = r_.Add("Concat", {r_.Add("Add", {wb[0], rb[0]}), wb[1]});
        r_.SetInt("axis", 0);
        dir.rbh = rb[1];
      } else {
        bias = r_.Add("Add", {wb_rb[0], wb_rb[1]});
      }
      xw = r_.Add("Add", {xw, bias});
    }
    dir.xw = seq_ == 1 ? std::vector<std::string>{xw} : Split(xw, 0, std::vector<int64_t>(seq_, 1));
    if (cell_ == Cell::kGru && !linear_before_reset_) {
      const std::vector<std::string> parts = Split(rt, 1, {2 * hidden_, hidden_});
      rt = parts[0];
      dir.rt_h = parts[1];
    }
    dir.rt = rt;
    if (cell_ == Cell::kLstm) {
      if (const std::string p = Input(n_, 7); !p.empty()) {
        const std::vector<std::string> pio =
            Split(Reshape(OfDirection(p, d), {3 * hidden_}), 0, {hidden_, hidden_, hidden_});
        dir.p_i = pio[0];
        dir.p_o = pio[1];
        dir.p_f = pio[2];
      }
    }
    if (!h0.empty()) dir.h = OfDirection(h0, d);
    if (!c0.empty()) dir.c = OfDirection(c0, d);
    return dir;
  }

  // gates = XW[t] + H·R^T (H = 0 at the first step without initial_h: the product is left out).
  std::string Gates(const Direction& dir, int64_t t) {
    const std::string& xw = dir.xw[static_cast<size_t>(t)];
    if (dir.h.empty()) return xw;
    return r_.Add("Add", {xw, r_.Add("MatMul", {dir.h, dir.rt})});
  }

  // i, o, f, c = split(gates); i = f(i + Pi*C); f = f(f + Pf*C) (or 1 - i with input_forget);
  // C' = f*C + i*g(c); o = f(o + Po*C'); H' = o*h(C').
  std::string LstmStep(Direction& dir, int64_t t) {
    const std::string gates = Gates(dir, t);
    std::string i, o, f, c;
    const bool grouped = dir.p_i.empty() && !input_forget_;
    if (grouped) {
      // i, o and f are contiguous and share f(): one activation over the three.
      const std::vector<std::string> iof_c = Split(gates, 2, {3 * hidden_, hidden_});
      const std::vector<std::string> iof = Split(Apply(dir.act[0], iof_c[0]), 2, {hidden_, hidden_, hidden_});
      i = iof[0];
      o = iof[1];
      f = iof[2];
      c = iof_c[1];
    } else {
      const std::vector<std::string> g = Split(gates, 2, {hidden_, hidden_, hidden_, hidden_});
      i = g[0];
      o = g[1];
      f = g[2];
      c = g[3];
      if (!dir.p_i.empty() && !dir.c.empty()) {
        i = r_.Add("Add", {i, r_.Add("Mul", {dir.c, dir.p_i})});
        if (!input_forget_) f = r_.Add("Add", {f, r_.Add("Mul", {dir.c, dir.p_f})});
      }
      i = Apply(dir.act[0], i);
      if (!dir.c.empty()) f = input_forget_ ? r_.Add("Sub", {one_, i}) : Apply(dir.act[0], f);
    }
    const std::string ic = r_.Add("Mul", {i, Apply(dir.act[1], c)});
    const std::string cell = dir.c.empty() ? ic : r_.Add("Add", {r_.Add("Mul", {f, dir.c}), ic});
    if (!grouped) {
      if (!dir.p_o.empty()) o = r_.Add("Add", {o, r_.Add("Mul", {cell, dir.p_o})});
      o = Apply(dir.act[0], o);
    }
    dir.c = cell;
    return r_.Add("Mul", {o, ApplyUnclipped(dir.act[2], cell)});
  }

  // z, r = f(Xz + H·Rz^T + biases), f(...); h = g(Xh + r*(H·Rh^T + Rbh) + Wbh) with
  // linear_before_reset, else g(Xh + (r*H)·Rh^T + Rbh + Wbh); H' = (1 - z)*h + z*H = h + z*(H - h).
  std::string GruStep(Direction& dir, int64_t t) {
    const std::string& xw = dir.xw[static_cast<size_t>(t)];
    const std::vector<std::string> x = Split(xw, 2, {2 * hidden_, hidden_});
    std::string zr_in = x[0], hh;  // hh: the recurrent part of the candidate's input, "" when zero
    if (!dir.h.empty()) {
      const std::string hr = r_.Add("MatMul", {dir.h, dir.rt});
      if (linear_before_reset_) {
        const std::vector<std::string> parts = Split(hr, 2, {2 * hidden_, hidden_});
        zr_in = r_.Add("Add", {zr_in, parts[0]});
        hh = parts[1];
      } else {
        zr_in = r_.Add("Add", {zr_in, hr});
      }
    }
    const std::vector<std::string> zr = Split(Apply(dir.act[0], zr_in), 2, {hidden_, hidden_});
    const std::string& z = zr[0];
    const std::string& r = zr[1];
    std::string cand_in = x[1];
    if (linear_before_reset_) {
      if (!dir.rbh.empty()) hh = hh.empty() ? dir.rbh : r_.Add("Add", {hh, dir.rbh});
      if (!hh.empty()) cand_in = r_.Add("Add", {cand_in, r_.Add("Mul", {r, hh})});
    } else if (!dir.h.empty()) {
      cand_in = r_.Add("Add", {cand_in, r_.Add("MatMul", {r_.Add("Mul", {r, dir.h}), dir.rt_h})});
    }
    const std::string h = Apply(dir.act[1], cand_in);
    if (dir.h.empty()) return r_.Add("Sub", {h, r_.Add("Mul", {z, h})});
    return r_.Add("Add", {h, r_.Add("Mul", {z, r_.Add("Sub", {dir.h, h})})});
  }

  // H' = f(XW[t] + H·R^T + Wb + Rb).
  std::string RnnStep(Direction& dir, int64_t t) { return Apply(dir.act[0], Gates(dir, t)); }

  // Writes output `name` (when the graph names it): the directions' tensors concatenated along
  // `axis`, transposed by `perm` to layout 1.
  void Emit(const std::vector<std::string>& parts, int64_t axis, const std::vector<int64_t>& perm,
            const std::string& name) {
    if (name.empty()) return;
    std::string v = parts[0];
    const bool transpose = layout_ == 1;
    if (parts.size() > 1) {
      v = r_.Add("Concat", parts, transpose ? "" : name);
      r_.SetInt("axis", axis);
      if (!transpose) return;
    }
    if (transpose) Transpose(v, perm, name);
    else r_.Add("Identity", {v}, name);
  }

  const onnx::NodeProto& n_;
  Cell cell_;
  ProtoRewriter r_;
  int64_t dirs_ = 1, layout_ = 0, gates_ = 4, hidden_ = 0, seq_ = 0;
  bool reverse_ = false, input_forget_ = false, linear_before_reset_ = false;
  int32_t elem_type_ = 0;
  std::optional<float> clip_;
  std::string clip_lo_, clip_hi_, one_;
  std::vector<std::vector<Activation>> acts_;
  std::map<std::string, std::vector<std::string>> by_direction_;
};

std::optional<Cell> CellOf(const onnx::NodeProto& n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return std::nullopt;
  if (n.op_type() == "LSTM") return Cell::kLstm;
  if (n.op_type() == "GRU") return Cell::kGru;
  if (n.op_type() == "RNN") return Cell::kRnn;
  return std::nullopt;
}

}  // namespace

const std::set<std::string>& RecurrentOps() {
  static const std::set<std::string> ops = {"GRU", "LSTM", "RNN"};
  return ops;
}

Status DecomposeRecurrentOps(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims) {
  onnx::GraphProto* g = model->mutable_graph();
  bool any = false;
  for (const auto& n : g->node()) any |= CellOf(n).has_value();
  if (!any) return Status::OK();
  const int64_t opset = OnnxOpset(*model);
  const ModelTypes types(*model, dims);
  return RewriteNodes(g, [&](const onnx::NodeProto& n, std::vector<onnx::NodeProto>* nodes) -> StatusOr<bool> {
    const std::optional<Cell> cell = CellOf(n);
    if (!cell) return false;
    Unroller u(n, *cell, opset, nodes);
    RETURN_IF_ERROR(u.Run(types));
    return true;
  });
}

}  // namespace dsc
