// ONNX Einsum equations parsed against operand shapes, shared by the CPU kernel and the gradient
// builder: every operand's subscripts as label ids, with `...` expanded to one label per
// broadcast dim and the implicit output (`ij,jk`) made explicit as numpy does.
//
//   ASSIGN_OR_RETURN(EinsumEquation eq, ParseEinsum("...ij,jk", {{2, 3, 4}, {4, 5}}));
//   // eq.inputs == {{E0, i, j}, {j, k}}, eq.output == {E0, i, k} with E0 = kEllipsisLabel
//
// Label ids: 'A'..'Z' are 0..25 and 'a'..'z' 26..51 (ASCII order, the implicit output's order);
// the R dims of the broadcast ellipsis are kEllipsisLabel + 0..R-1, an operand whose ellipsis
// covers r <= R dims taking the last r of them (numpy's right alignment). Only ellipsis dims
// broadcast (size 1 against N), as in ONNX; a letter must have one size everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/status.h"

namespace dsc {

inline constexpr int kEllipsisLabel = 52;

struct EinsumEquation {
  std::vector<std::vector<int>> inputs;  // per operand, one label per dim
  std::vector<int> output;               // one label per output dim (unique)
  std::vector<bool> has_ellipsis;        // per operand, whether its term holds `...`
  bool output_has_ellipsis = false;
  int64_t ellipsis_rank = 0;             // R: dims of the broadcast ellipsis
  std::vector<int64_t> label_size;       // per label id (size kEllipsisLabel + R); 0 for unused labels
  std::vector<int> label_count;          // occurrences over all operands (repeats included)
};

// Errors are InvalidArgument and say what is wrong with the equation (characters, `->`, number of
// terms, ranks, sizes that disagree, output labels missing from the inputs or repeated).
StatusOr<EinsumEquation> ParseEinsum(const std::string& equation, const std::vector<std::vector<int64_t>>& shapes);

// The label's letter ('A'..'Z', 'a'..'z'); ellipsis labels have none.
inline char EinsumLetter(int label) { return static_cast<char>(label < 26 ? 'A' + label : 'a' + (label - 26)); }

}  // namespace dsc
