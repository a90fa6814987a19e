// "Did you mean" for misspelled config keys: the nearest known key by edit distance.
#pragma once

#include <string>
#include <vector>

namespace dsc {

// Keys longer than this get no suggestion: no typo of a config key is that long, and the edit
// distance costs |key| x |candidate| per candidate (a 10 MB key took a minute).
inline constexpr size_t kMaxSuggestedKeyLength = 256;

// The candidate closest to `key`, or "" when none is close enough to be a plausible typo.
std::string NearestKey(const std::string& key, const std::vector<std::string>& candidates);

// " (did you mean \"x\"?)" or "".
std::string DidYouMean(const std::string& key, const std::vector<std::string>& candidates);

}  // namespace dsc
