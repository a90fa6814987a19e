// Writes every grad_cases.txt case, completed with its seeded data and loss, as DIR/<case>.onnx:
// the input of gen_reference_grads.py, so torch differentiates exactly the graphs we check.
#include <cstdio>
#include <fstream>

#include "ir/onnx_convert.h"
#include "tests/autodiff/grad_case.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s grad_cases.txt OUT_DIR\n", argv[0]);
    return 2;
  }
  for (const auto& text : dsc::LoadGradCaseTexts(argv[1])) {
    auto c = dsc::BuildGradCase(text);
    if (!c.ok()) {
      std::fprintf(stderr, "%s: %s\n", text.name.c_str(), c.status().ToString().c_str());
      return 1;
    }
    std::ofstream out(std::string(argv[2]) + "/" + text.name + ".onnx", std::ios::binary);
    out << dsc::GraphToOnnx(*c->graph).SerializeAsString();
  }
  return 0;
}
