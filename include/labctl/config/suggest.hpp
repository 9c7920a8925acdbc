#pragma once
// "Did you mean ...?" for unknown keys, check names and enum values.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::config {

/// Optimal-string-alignment distance (insertions, deletions, substitutions and transpositions of
/// neighbours each cost 1), compared case-insensitively.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` when it is close enough to be a plausible typo (distance 1 for
/// words of up to 3 characters, 2 up to 8, 3 beyond); the earliest candidate wins a tie.
std::optional<std::string> did_you_mean(std::string_view word,
                                        const std::vector<std::string>& candidates);

} // namespace labctl::config
