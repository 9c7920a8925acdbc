#pragma once
// Typed access to a yaml-cpp tree that reports every problem (with file:line:col) to a Sink
// instead of throwing. Private to the config module: yaml-cpp never leaves src/config/.

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/diagnostic.hpp>

#include "validate.hpp"

namespace labctl::config::detail {

class Sink {
public:
    explicit Sink(std::string file) : m_file(std::move(file)) {}

    const std::string& file() const { return m_file; }
    void report(Severity severity, SourceLocation where, std::string message,
                std::string hint = {});
    void error(SourceLocation where, std::string message, std::string hint = {}) {
        report(Severity::error, std::move(where), std::move(message), std::move(hint));
    }
    void error(SourceLocation where, Problem problem) {
        error(std::move(where), std::move(problem.message), std::move(problem.hint));
    }
    void warning(SourceLocation where, std::string message, std::string hint = {}) {
        report(Severity::warning, std::move(where), std::move(message), std::move(hint));
    }
    /// The lab file as a whole (line 0).
    SourceLocation whole_file() const { return SourceLocation{m_file, 0, 0}; }
    bool has_errors() const;
    /// The diagnostics in report order: the whole file first, then by position in the file,
    /// then those about the environment and the command line.
    std::vector<Diagnostic> sorted() const;

private:
    std::string m_file;
    std::vector<Diagnostic> m_diagnostics;
};

/// One key/value pair of a mapping (or one item of a list, with an empty name).
struct Entry {
    std::string name; ///< the key as written
    std::string path; ///< "vms[0].cpus"
    YAML::Node value;
    SourceLocation key_where;
    SourceLocation where; ///< of the value; of the key when the value is empty
    bool empty() const { return value.IsNull(); }
};

struct Mapping {
    std::vector<Entry> entries; ///< first occurrence of each key, in file order
    /// The entry for `name`, also when its value is empty; nullptr when absent.
    const Entry* find(std::string_view name) const;
    /// The entry for `name` when it has a value; an empty value means "use the default".
    const Entry* get(std::string_view name) const;
};

/// One string of a list of strings.
struct Item {
    std::string text;
    std::string path; ///< "vms[0].roles[1]"
    SourceLocation where;
};

/// "vms[0]" + "cpus" -> "vms[0].cpus"; "" + "project" -> "project".
std::string child_path(std::string_view parent, std::string_view name);
/// How a value looks to a human: "string 'two'", "integer 4", "a list", "an empty value".
std::string describe(const YAML::Node& node);
bool is_plain_integer(const YAML::Node& node);

class Reader {
public:
    explicit Reader(Sink& sink) : m_sink(sink) {}

    SourceLocation at(const YAML::Node& node) const;

    /// The entries of a mapping; an empty value is an empty mapping. Reports duplicate keys and
    /// (unless `keys` is null) keys not in `keys`, with a did-you-mean. nullopt (reported) when
    /// the node is not a mapping.
    std::optional<Mapping> mapping(const YAML::Node& node, const std::string& path,
                                   const SourceLocation& where,
                                   const std::vector<std::string>* keys,
                                   std::string_view wrong_type_hint);
    std::optional<Mapping> mapping(const Entry& entry, const std::vector<std::string>* keys,
                                   std::string_view wrong_type_hint) {
        return mapping(entry.value, entry.path, entry.where, keys, wrong_type_hint);
    }

    /// Any scalar, as written.
    std::optional<std::string> string(const Entry& entry);
    /// A plain (unquoted) true or false.
    std::optional<bool> boolean(const Entry& entry);
    /// A plain (unquoted) whole number; `example` is shown in the hint.
    std::optional<std::int64_t> integer(const Entry& entry, std::string_view example);
    /// integer() within [min, max].
    std::optional<std::int64_t> integer_in(const Entry& entry, std::int64_t min, std::int64_t max,
                                           std::string_view example);
    /// "10m", "90s", "1h30m" or a number of seconds; at least one second.
    std::optional<std::chrono::seconds> duration(const Entry& entry);
    /// "4GiB", "512MiB", "20G"; a bare number is refused (bytes or MiB? no guessing).
    std::optional<std::uint64_t> size(const Entry& entry);
    /// The items of a list; an empty value is an empty list.
    std::optional<std::vector<Entry>> sequence(const Entry& entry);
    /// A list of strings; items that are not strings are reported and left out.
    std::optional<std::vector<Item>> strings(const Entry& entry);

private:
    Sink& m_sink;
};

} // namespace labctl::config::detail
