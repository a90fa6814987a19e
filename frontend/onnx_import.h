// Loads an .onnx file into the IR: protobuf parsing, external data, ONNX checker, shape inference.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Graph> g, ImportOnnxFile("models/gpt/gpt.onnx"));
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "ir/graph.h"

namespace dsc {

// Initializers of at least this many bytes are not copied: their tensors borrow the mapped model
// file (or external-data file), and record where (Tensor::source), so the step-0 checkpoint refers
// to the file instead of writing the weights again. The file must not change while in use.
inline constexpr int64_t kCutRawDataBytes = 4096;

// What the import takes from the command line.
struct ImportOptions {
  // Symbolic dims bound by `dscompile --dim NAME=VALUE`: the graph keeps its symbols (the
  // specialize pass binds them), but what the import shapes by them, such as the steps LSTM, GRU
  // and RNN are unrolled over (frontend/decompose_rnn.h), sees these values.
  std::map<std::string, int64_t> dims;
};

// Every error names the file. External-data locations must stay inside the model's folder.
StatusOr<std::unique_ptr<Graph>> ImportOnnxFile(const std::string& path, const ImportOptions& options = {});
// The same for a model already in memory (`base_dir` resolves external data; "" refuses it).
StatusOr<std::unique_ptr<Graph>> ImportOnnxBytes(const std::string& bytes, const std::string& base_dir,
                                                 const std::string& name, const ImportOptions& options = {});

}  // namespace dsc
