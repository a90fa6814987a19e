// Parsing ONNX Einsum equations (numpy's einsum rules) against the operands' shapes.
#include "ir/einsum_equation.h"

#include <algorithm>

namespace dsc {
namespace {

int LetterLabel(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}

// One term: letters and at most one `...`. Returns the labels (-1 marks the ellipsis position).
StatusOr<std::vector<int>> ParseTerm(const std::string& eq, const std::string& term) {
  std::vector<int> labels;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    const char c = term[i];
    if (c == ' ') continue;
    if (c == '.') {
      if (term.compare(i, 3, "...") != 0) return InvalidArgument("einsum equation '", eq, "': a lone '.' (use '...')");
      if (ellipsis) return InvalidArgument("einsum equation '", eq, "': two '...' in the term '", term, "'");
      ellipsis = true;
      labels.push_back(-1);
      i += 2;
      continue;
    }
    const int l = LetterLabel(c);
    if (l < 0) return InvalidArgument("einsum equation '", eq, "': character '", std::string(1, c), "' is not a letter");
    labels.push_back(l);
  }
  return labels;
}

}  // namespace

StatusOr<EinsumEquation> ParseEinsum(const std::string& equation, const std::vector<std::vector<int64_t>>& shapes) {
  const size_t arrow = equation.find("->");
  if (arrow != std::string::npos && equation.find("->", arrow + 2) != std::string::npos)
    return InvalidArgument("einsum equation '", equation, "': more than one '->'");
  const std::string lhs = equation.substr(0, arrow);
  std::vector<std::vector<int>> terms;
  for (size_t start = 0;;) {
    const size_t comma = lhs.find(',', start);
    ASSIGN_OR_RETURN(std::vector<int> t, ParseTerm(equation, lhs.substr(start, comma - start)));
    terms.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != shapes.size())
    return InvalidArgument("einsum equation '", equation, "' has ", terms.size(), " operand terms but the node has ",
                           shapes.size(), " inputs");

  EinsumEquation eq;
  // The broadcast ellipsis has as many dims as the widest operand's.
  for (size_t k = 0; k < terms.size(); ++k) {
    const bool has = std::count(terms[k].begin(), terms[k].end(), -1) > 0;
    const int64_t letters = static_cast<int64_t>(terms[k].size()) - (has ? 1 : 0);
    const int64_t rank = static_cast<int64_t>(shapes[k].size());
    if (has ? rank < letters : rank != letters)
      return InvalidArgument("einsum equation '", equation, "': operand ", k, " has rank ", rank, " but its term has ",
                             letters, " letters", has ? " and '...'" : "");
    eq.has_ellipsis.push_back(has);
    if (has) eq.ellipsis_rank = std::max(eq.ellipsis_rank, rank - letters);
  }
  const int64_t r = eq.ellipsis_rank;
  eq.label_size.assign(static_cast<size_t>(kEllipsisLabel + r), 0);
  eq.label_count.assign(eq.label_size.size(), 0);
  for (size_t k = 0; k < terms.size(); ++k) {
    std::vector<int> labels;
    for (int l : terms[k]) {
      if (l >= 0) {
        labels.push_back(l);
        continue;
      }
      const int64_t own = static_cast<int64_t>(shapes[k].size() + 1 - terms[k].size());
      for (int64_t i = r - own; i < r; ++i) labels.push_back(kEllipsisLabel + static_cast<int>(i));
    }
    for (size_t d = 0; d < labels.size(); ++d) {
      const size_t l = static_cast<size_t>(labels[d]);
      const int64_t size = shapes[k][d];
      ++eq.label_count[l];
      int64_t& known = eq.label_size[l];
      if (eq.label_count[l] == 1 || known == size) {
        known = size;
      } else if (labels[d] >= kEllipsisLabel && (known == 1 || size == 1)) {
        known = std::max(known, size);  // ellipsis dims broadcast
      } else {
        return InvalidArgument("einsum equation '", equation, "': label '",
                               labels[d] < kEllipsisLabel ? std::string(1, EinsumLetter(labels[d])) : std::string("..."),
                               "' has size ", known, " and ", size, " (operand ", k, " dim ", d, ")");
      }
    }
    eq.inputs.push_back(std::move(labels));
  }

  const bool any_ellipsis = std::find(eq.has_ellipsis.begin(), eq.has_ellipsis.end(), true) != eq.has_ellipsis.end();
  if (arrow == std::string::npos) {
    // Implicit output: the ellipsis first, then the letters used once, in ASCII order.
    eq.output_has_ellipsis = any_ellipsis;
    for (int64_t i = 0; i < r; ++i) eq.output.push_back(kEllipsisLabel + static_cast<int>(i));
    for (int l = 0; l < kEllipsisLabel; ++l)
      if (eq.label_count[static_cast<size_t>(l)] == 1) eq.output.push_back(l);
    return eq;
  }
  ASSIGN_OR_RETURN(std::vector<int> out, ParseTerm(equation, equation.substr(arrow + 2)));
  for (int l : out) {
    if (l < 0) {
      if (!any_ellipsis)
        return InvalidArgument("einsum equation '", equation, "': '...' in the output but in no input");
      eq.output_has_ellipsis = true;
      for (int64_t i = 0; i < r; ++i) eq.output.push_back(kEllipsisLabel + static_cast<int>(i));
      continue;
    }
    if (eq.label_count[static_cast<size_t>(l)] == 0)
      return InvalidArgument("einsum equation '", equation, "': output label '", std::string(1, EinsumLetter(l)),
                             "' is in no input");
    if (std::count(out.begin(), out.end(), l) > 1)
      return InvalidArgument("einsum equation '", equation, "': output label '", std::string(1, EinsumLetter(l)),
                             "' is repeated");
    eq.output.push_back(l);
  }
  // numpy refuses to sum broadcast dims away implicitly; so do we.
  if (r > 0 && !eq.output_has_ellipsis)
    return InvalidArgument("einsum equation '", equation, "': the inputs' '...' covers ", r,
                           " dims but the output has no '...'");
  return eq;
}

}  // namespace dsc
