// The algorithms of the element-wise optimizer op OptimStep (ir/dsc_ops.h): each one's name (the
// `algorithm` attribute), float attributes with their defaults, flags, and state inputs. One table
// read by the verifier (ir/node_checks.cc), the optimizer pass (which states to create) and the
// kernels (kernels/common/training_node.h), so a new element-wise optimizer is one row here and one
// case in kernels/common/optimizer_math.h.
//   const OptimAlgorithmInfo* a = FindOptimAlgorithm("rmsprop");
//   std::vector<std::string> s = OptimStateSuffixes(a->id, /*momentum=*/true, /*centered=*/false);
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace dsc {

enum class OptimAlgorithm : int { kLion, kAdagrad, kRMSprop, kAdamax, kNAdam, kRAdam, kAdadelta };

struct OptimFloatAttr {
  const char* name;
  float default_value;
};

struct OptimAlgorithmInfo {
  OptimAlgorithm id;
  const char* name;                   // the `algorithm` attribute
  const char* semantics;              // whose update it reproduces
  std::vector<OptimFloatAttr> floats;  // float attributes, torch's defaults
  std::vector<const char*> flags;      // int attributes in {0, 1}, default 0
};

// Every OptimStep algorithm. The defaults are the constructors' (DeepSpeed's FusedLion,
// torch.optim's others); the optimizer pass always writes every attribute.
inline const std::vector<OptimAlgorithmInfo>& OptimAlgorithms() {
  static const std::vector<OptimAlgorithmInfo>* table = new std::vector<OptimAlgorithmInfo>{
      {OptimAlgorithm::kLion, "lion", "DeepSpeed FusedLion (csrc/lion/multi_tensor_lion.cu)",
       {{"beta1", 0.9f}, {"beta2", 0.999f}, {"weight_decay", 0.0f}}, {}},
      {OptimAlgorithm::kAdagrad, "adagrad", "torch.optim.Adagrad",
       {{"lr_decay", 0.0f}, {"weight_decay", 0.0f}, {"initial_accumulator_value", 0.0f}, {"epsilon", 1e-10f}}, {}},
      {OptimAlgorithm::kRMSprop, "rmsprop", "torch.optim.RMSprop",
       {{"alpha", 0.99f}, {"epsilon", 1e-8f}, {"weight_decay", 0.0f}, {"momentum", 0.0f}}, {"centered"}},
      {OptimAlgorithm::kAdamax, "adamax", "torch.optim.Adamax",
       {{"beta1", 0.9f}, {"beta2", 0.999f}, {"epsilon", 1e-8f}, {"weight_decay", 0.0f}}, {}},
      {OptimAlgorithm::kNAdam, "nadam", "torch.optim.NAdam (torch >= 2.0)",
       {{"beta1", 0.9f}, {"beta2", 0.999f}, {"epsilon", 1e-8f}, {"weight_decay", 0.0f}, {"momentum_decay", 4e-3f}},
       {"decoupled_weight_decay"}},
      {OptimAlgorithm::kRAdam, "radam", "torch.optim.RAdam",
       {{"beta1", 0.9f}, {"beta2", 0.999f}, {"epsilon", 1e-8f}, {"weight_decay", 0.0f}},
       {"decoupled_weight_decay"}},
      {OptimAlgorithm::kAdadelta, "adadelta", "torch.optim.Adadelta",
       {{"rho", 0.9f}, {"epsilon", 1e-6f}, {"weight_decay", 0.0f}}, {}},
  };
  return *table;
}

inline const OptimAlgorithmInfo* FindOptimAlgorithm(const std::string& name) {
  for (const OptimAlgorithmInfo& a : OptimAlgorithms())
    if (name == a.name) return &a;
  return nullptr;
}

inline const OptimAlgorithmInfo& OptimAlgorithmOf(OptimAlgorithm id) {
  return OptimAlgorithms()[static_cast<size_t>(id)];
}

// At most this many state inputs (RMSprop with momentum and centered).
inline constexpr int kMaxOptimStates = 3;

// The state inputs of an OptimStep (inputs 2 .. 2+k-1), as the suffixes of their state names
// ("P::" + suffix): torch's state-dict keys, so a checkpoint maps onto torch's optimizer state.
// RMSprop has momentum_buffer only with momentum != 0 and grad_avg only when centered; torch's
// `step` is dsc::step. NAdam's mu_product is no element-wise state: with a constant beta1 it is a
// function of the step (the kernels recompute it), with a cycled one (beta1_override) it is the
// scalar input after param_copy, named P::mu_product (kNadamMuProductSuffix).
inline std::vector<std::string> OptimStateSuffixes(OptimAlgorithm a, bool momentum, bool centered) {
  switch (a) {
    case OptimAlgorithm::kLion: return {"exp_avg"};
    case OptimAlgorithm::kAdagrad: return {"sum"};
    case OptimAlgorithm::kRMSprop: {
      std::vector<std::string> s = {"square_avg"};
      if (momentum) s.push_back("momentum_buffer");
      if (centered) s.push_back("grad_avg");
      return s;
    }
    case OptimAlgorithm::kAdamax: return {"exp_avg", "exp_inf"};
    case OptimAlgorithm::kNAdam:
    case OptimAlgorithm::kRAdam: return {"exp_avg", "exp_avg_sq"};
    case OptimAlgorithm::kAdadelta: return {"square_avg", "acc_delta"};
  }
  return {};
}

// Whether OptimStep takes a beta1_override input (OneCycle's cycled momentum) for the algorithm:
// those with a beta1 that every step reads afresh, as torch and DeepSpeed read group['betas'].
// NAdam's mu_product multiplies every past step's beta1, so with the override it also takes its
// mu_product state (OptimTakesMuProduct).
inline bool OptimTakesBeta1Override(OptimAlgorithm a) {
  return a == OptimAlgorithm::kLion || a == OptimAlgorithm::kAdamax || a == OptimAlgorithm::kRAdam ||
         a == OptimAlgorithm::kNAdam;
}

// Whether an OptimStep of algorithm `a` takes the mu_product input: NAdam with beta1_override.
inline bool OptimTakesMuProduct(OptimAlgorithm a, bool beta1_override) {
  return a == OptimAlgorithm::kNAdam && beta1_override;
}

// The suffix of NAdam's mu_product state ("P::mu_product"): torch's state-dict key.
inline constexpr const char* kNadamMuProductSuffix = "mu_product";

// The state suffixes an OptimStep node takes, from its attributes; empty for an unknown algorithm.
inline std::vector<std::string> OptimStateSuffixesOf(const Node& n) {
  const OptimAlgorithmInfo* a = FindOptimAlgorithm(n.GetString("algorithm", ""));
  if (!a) return {};
  return OptimStateSuffixes(a->id, n.GetFloat("momentum", 0.0f) != 0.0f, n.GetInt("centered", 0) != 0);
}

}  // namespace dsc
