// Nearest-key search by case-insensitive edit distance, bounded for very long keys.
#include "frontend/config/key_suggest.h"

#include <algorithm>
#include <cctype>

namespace dsc {
namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string NearestKey(const std::string& key, const std::vector<std::string>& candidates) {
  if (key.size() > kMaxSuggestedKeyLength) return "";
  std::string best;
  size_t best_distance = std::string::npos;
  for (const std::string& c : candidates) {
    size_t d = EditDistance(key, c);
    // A key that contains the candidate (or the reverse) is a likely prefix/suffix slip.
    if (d > 0 && (c.find(key) != std::string::npos || key.find(c) != std::string::npos) &&
        std::min(c.size(), key.size()) >= 4) {
      d = std::min(d, std::max<size_t>(2, std::min(c.size(), key.size()) / 3));
    }
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  size_t limit = std::max<size_t>(2, key.size() / 3);
  return best_distance <= limit ? best : "";
}

std::string DidYouMean(const std::string& key, const std::vector<std::string>& candidates) {
  std::string nearest = NearestKey(key, candidates);
  return nearest.empty() ? "" : " (did you mean \"" + nearest + "\"?)";
}

}  // namespace dsc
