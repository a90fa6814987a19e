// Writing output files safely: through a temporary file and a rename, never over anything but a
// regular file, with every write error (a full disk shows only at close) reported.
#pragma once

#include <string>
#include <vector>

#include "ir/status.h"

namespace dsc {

// Writes the concatenated `pieces` to `path`; errors read "cannot write PATH: ...".
Status WritePiecesAtomically(const std::string& path, const std::vector<const std::string*>& pieces);
// The same for one piece (plans' dumps, dsinspect -o, dscompile --dump-dir).
Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace dsc
