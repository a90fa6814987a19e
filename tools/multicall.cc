// dscompile, dsrun and dsinspect in one executable, for the relocatable bundle (scripts/bundle.sh):
// it runs the program its name (argv[0]) says, or `dsc PROGRAM ARGS...`. The three share nearly
// all their code (ONNX, the IR, passes, kernels), so one copy instead of three keeps the bundle
// small enough to travel with the repository to a GPU host.
#include <cstring>
#include <iostream>
#include <string_view>

#include "tools/tool_mains.h"

namespace {

struct Program {
  const char* name;
  int (*main)(int, char**);
};
constexpr Program kPrograms[] = {{"dscompile", DscompileMain}, {"dsrun", DsrunMain}, {"dsinspect", DsinspectMain}};

const Program* Find(std::string_view path) {
  const size_t slash = path.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  for (const Program& p : kPrograms)
    if (name == p.name) return &p;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (const Program* p = Find(argc > 0 ? argv[0] : "")) return p->main(argc, argv);
  if (argc > 1)
    if (const Program* p = Find(argv[1])) return p->main(argc - 1, argv + 1);
  std::cerr << "usage: dsc {dscompile|dsrun|dsinspect} ARGS... (or run it under one of those names)\n";
  return argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) ? 0 : 2;
}
