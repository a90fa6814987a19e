// main of dscompile, dsrun or dsinspect: DSC_TOOL_MAIN names the entry point (tools/CMakeLists.txt).
#include "tools/tool_mains.h"

int main(int argc, char** argv) { return DSC_TOOL_MAIN(argc, argv); }
