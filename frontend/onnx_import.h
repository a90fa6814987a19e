// Loads an .onnx file into the IR: protobuf parsing, external data, ONNX checker, shape inference.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Graph> g, ImportOnnxFile("models/gpt/gpt.onnx"));
#pragma once

#include <memory>
#include <string>

#include "ir/graph.h"

namespace dsc {

// Every error names the file. External-data locations must stay inside the model's folder.
StatusOr<std::unique_ptr<Graph>> ImportOnnxFile(const std::string& path);
// The same for a model already in memory (`base_dir` resolves external data; "" refuses it).
StatusOr<std::unique_ptr<Graph>> ImportOnnxBytes(const std::string& bytes, const std::string& base_dir,
                                                 const std::string& name);

}  // namespace dsc
