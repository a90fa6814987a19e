// The three programs' entry points: each program's main (tool_main.cc) calls its own, and the
// bundle's one executable (multicall.cc) calls the one its name asks for.
#pragma once

int DscompileMain(int argc, char** argv);
int DsrunMain(int argc, char** argv);
int DsinspectMain(int argc, char** argv);
