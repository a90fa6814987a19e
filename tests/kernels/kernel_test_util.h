// Running one node through its registered CPU kernel, for kernel tests.
//
//   Graph g; Value* x = g.AddInput("x", TensorType{DType::kFloat32, Shape{Dim::Static(2)}});
//   Node* n = g.AddNode("Relu", {x}, {"y"}); n->output(0)->type = x->type;
//   ASSIGN_OR_RETURN(std::vector<Tensor> out, RunNodeOnCpu(*n, {&input}));
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ir/graph.h"

#include "kernels/kernel.h"

namespace dsc::testing {

// Outputs are allocated from the node's static output types (all outputs must be typed; an
// output whose name starts with "__omit" is passed as omitted). Inputs are copied, so in-place
// ops (Accumulate, AdamStep, ...) update the tensors in `inputs` themselves: pass mutable ones.
// `comm` is the data-parallel group the collective kernels see (null: one rank).
StatusOr<std::vector<Tensor>> RunNodeOnCpu(const Node& node, const std::vector<Tensor*>& inputs,
                                           uint64_t seed = 0, int64_t step = 1, Communicator* comm = nullptr,
                                           int64_t first_sample = 0);

// A fully static shape, and the float32 type of that shape.
Shape StaticShape(const std::vector<int64_t>& dims);
TensorType F32(const std::vector<int64_t>& dims);

// The "cases" list of a generated case file (e.g. DSC_KERNEL_TEST_DATA "/resize_cases.json"), read
// once per path; empty when the file is missing (the test then says so).
const std::vector<nlohmann::json>& JsonCases(const std::string& path);

// A tensor of `dtype` and `dims` holding `values`, each converted from double.
Tensor TensorOf(DType dtype, const std::vector<int64_t>& dims, const std::vector<double>& values);

// Max |a-b| / (atol + rtol*|b|) <= 1 elementwise; the message names the first bad index.
::testing::AssertionResult AllClose(const Tensor& actual, const std::vector<double>& expected,
                                    double rtol = 1e-5, double atol = 1e-6);

}  // namespace dsc::testing
