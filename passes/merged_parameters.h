// Warnings for trainable initializers that an exporter merged or duplicated, so that training them
// would not follow PyTorch's trajectory; each names the tensors and the export call that avoids it.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace dsc {

// "'a', 'b', 'c'": tensor names as the warnings list them.
std::string QuotedNames(const std::vector<std::string>& names);

// `trainable`: the initializers select-loss chose; `missing`: PyTorch parameters the model's
// parameter list says have no initializer of their own; `unread`: those no node reads after an
// exporter's optimizer (tied in PyTorch, or merged away); `have_torch_list`: whether the choice came
// from such a list (then tying seen in the graph is PyTorch's own and is not reported).
std::vector<std::string> MergedParameterWarnings(const Graph& g, const std::vector<std::string>& trainable,
                                                 const std::vector<std::string>& missing,
                                                 const std::vector<std::string>& unread, bool have_torch_list);

}  // namespace dsc
