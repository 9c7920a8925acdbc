#include "yaml_reader.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <regex>

#include <labctl/config/loader.hpp>
#include <labctl/config/suggest.hpp>
#include <labctl/core/duration.hpp>
#include <labctl/core/text.hpp>

namespace labctl::config::detail {

namespace {

bool is_plain(const YAML::Node& n) {
    return n.IsScalar() && n.Tag() == "?";
}

bool looks_integer(const std::string& s) {
    static const std::regex k_integer("[-+]?[0-9]+");
    return std::regex_match(s, k_integer);
}
bool looks_float(const std::string& s) {
    static const std::regex k_float("[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?|"
                                    "[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)");
    return std::regex_match(s, k_float);
}
bool looks_bare_number(const std::string& s) {
    static const std::regex k_number("[0-9]+(\\.[0-9]+)?");
    return std::regex_match(s, k_number);
}
bool looks_bool(const std::string& s) {
    static const std::vector<std::string> k_words{"true", "True", "TRUE", "false", "False", "FALSE",
                                                  "yes",  "Yes",  "YES",  "no",    "No",    "NO",
                                                  "on",   "On",   "ON",   "off",   "Off",   "OFF"};
    return std::find(k_words.begin(), k_words.end(), s) != k_words.end();
}

std::string abbreviate(const std::string& s) {
    std::string out = s.size() > 60 ? s.substr(0, 57) + "..." : s;
    std::replace(out.begin(), out.end(), '\n', ' ');
    return out;
}

/// Keys people write that are not close in spelling to the key they mean.
const std::map<std::string, std::string>& aliases() {
    static const std::map<std::string, std::string> k_aliases{
        {"address", "ip"},
        {"ip_address", "ip"},
        {"ipv4", "ip"},
        {"hostname", "name"},
        {"ram", "memory"},
        {"mem", "memory"},
        {"vcpus", "cpus"},
        {"cores", "cpus"},
        {"storage", "disk"},
        {"disk_size", "disk"},
        {"role", "roles"},
        {"key", "private_key"},
        {"identity_file", "private_key"},
        {"username", "user"},
        {"revert_after", "revert_seconds"},
        {"revert", "revert_seconds"},
        {"timeout", "wait_timeout"},
        {"subnet", "cidr"},
        {"checksum", "sha256"},
        {"hash", "sha256"},
        {"file", "path"},
        {"vm", "vms"},
        {"machines", "vms"},
        {"hosts", "vms"},
        {"type", "domain_type"},
        {"users", "allow_users"},
        {"registry", "image_registry"},
    };
    return k_aliases;
}

std::string in_path(std::string_view path) {
    return path.empty() ? std::string() : fmt::format(" in {}", path);
}

} // namespace

void Sink::report(Severity severity, SourceLocation where, std::string message, std::string hint) {
    m_diagnostics.push_back(
        Diagnostic{severity, std::move(where), std::move(message), std::move(hint)});
}

bool Sink::has_errors() const {
    return config::has_errors(m_diagnostics);
}

std::vector<Diagnostic> Sink::sorted() const {
    auto rank = [this](const Diagnostic& d) {
        if (d.where.file != m_file)
            return 2;
        return d.where.line == 0 ? 0 : 1;
    };
    auto out = m_diagnostics;
    std::stable_sort(out.begin(), out.end(), [&](const Diagnostic& a, const Diagnostic& b) {
        const int ra = rank(a), rb = rank(b);
        if (ra != rb)
            return ra < rb;
        if (ra != 1)
            return false; // keep report order
        if (a.where.line != b.where.line)
            return a.where.line < b.where.line;
        return a.where.column < b.where.column;
    });
    return out;
}

const Entry* Mapping::find(std::string_view name) const {
    for (const auto& e : entries)
        if (e.name == name)
            return &e;
    return nullptr;
}

const Entry* Mapping::get(std::string_view name) const {
    const Entry* e = find(name);
    return e && !e->empty() ? e : nullptr;
}

std::string child_path(std::string_view parent, std::string_view name) {
    return parent.empty() ? std::string(name) : fmt::format("{}.{}", parent, name);
}

bool is_plain_integer(const YAML::Node& node) {
    return is_plain(node) && looks_integer(node.Scalar());
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Null:
        return "an empty value";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Scalar: {
        const std::string text = abbreviate(node.Scalar());
        if (is_plain(node)) {
            if (looks_integer(text))
                return "integer " + text;
            if (looks_float(text))
                return "number " + text;
            if (looks_bool(text))
                return fmt::format("boolean '{}'", text);
        }
        return fmt::format("string '{}'", text);
    }
    case YAML::NodeType::Undefined:
        break;
    }
    return "nothing";
}

SourceLocation Reader::at(const YAML::Node& node) const {
    const auto mark = node.Mark();
    if (mark.is_null() || mark.line < 0)
        return m_sink.whole_file();
    return SourceLocation{m_sink.file(), mark.line + 1, mark.column + 1};
}

std::optional<Mapping> Reader::mapping(const YAML::Node& node, const std::string& path,
                                       const SourceLocation& where,
                                       const std::vector<std::string>* keys,
                                       std::string_view wrong_type_hint) {
    Mapping out;
    if (node.IsNull())
        return out;
    if (!node.IsMap()) {
        m_sink.error(where, fmt::format("{} must be a mapping, got {}", path, describe(node)),
                     std::string(wrong_type_hint));
        return std::nullopt;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key = it->first;
        const YAML::Node value = it->second;
        const SourceLocation key_where = at(key);
        if (!key.IsScalar()) {
            m_sink.error(
                key_where,
                fmt::format("a key{} must be a name, got {}", in_path(path), describe(key)),
                "keys are plain words such as 'name' or 'cpus'");
            continue;
        }
        const std::string name = key.Scalar();
        if (const Entry* first = out.find(name)) {
            m_sink.error(key_where,
                         fmt::format("duplicate {}key '{}'{}; first defined on line {}",
                                     path.empty() ? "top-level " : "", name, in_path(path),
                                     first->key_where.line),
                         "delete one of them (YAML tools disagree on which one wins)");
            continue;
        }
        if (keys && std::find(keys->begin(), keys->end(), name) == keys->end()) {
            std::string hint;
            const auto alias = aliases().find(name);
            if (name == "<<")
                hint = "YAML merge keys are not supported here; write the keys out";
            else if (alias != aliases().end() &&
                     std::find(keys->begin(), keys->end(), alias->second) != keys->end())
                hint = fmt::format("did you mean '{}'?", alias->second);
            else if (const auto s = did_you_mean(name, *keys))
                hint = fmt::format("did you mean '{}'?", *s);
            else
                hint = fmt::format("valid keys{}: {}", path.empty() ? " at the top level" : " here",
                                   fmt::join(*keys, ", "));
            m_sink.error(key_where,
                         fmt::format("unknown {}key '{}'{}", path.empty() ? "top-level " : "", name,
                                     in_path(path)),
                         hint);
            continue;
        }
        // Built by copy construction: assigning to a yaml-cpp Node rewrites the node it refers to.
        Entry e{name, child_path(path, name), value, key_where,
                value.IsNull() ? key_where : at(value)};
        out.entries.push_back(std::move(e));
    }
    return out;
}

std::optional<std::string> Reader::string(const Entry& entry) {
    if (entry.value.IsScalar())
        return entry.value.Scalar();
    m_sink.error(
        entry.where, fmt::format("{} must be a string, got {}", entry.path, describe(entry.value)),
        entry.value.IsNull() ? "give it a value, or delete the line to use the default" : "");
    return std::nullopt;
}

std::optional<bool> Reader::boolean(const Entry& entry) {
    const YAML::Node& v = entry.value;
    if (v.IsScalar() && is_plain(v) && (v.Scalar() == "true" || v.Scalar() == "false"))
        return v.Scalar() == "true";
    std::string hint = fmt::format("write {}: true or {}: false", entry.name, entry.name);
    if (v.IsScalar() && is_plain(v) && looks_bool(v.Scalar()))
        hint = fmt::format("YAML 1.2 knows only true and false: {}: {}", entry.name,
                           lower(v.Scalar()) == "true" || lower(v.Scalar()) == "yes" ||
                                   lower(v.Scalar()) == "on"
                               ? "true"
                               : "false");
    m_sink.error(entry.where,
                 fmt::format("{} must be true or false, got {}", entry.path, describe(v)), hint);
    return std::nullopt;
}

std::optional<std::int64_t> Reader::integer(const Entry& entry, std::string_view example) {
    const YAML::Node& v = entry.value;
    if (is_plain_integer(v)) {
        std::string text = v.Scalar();
        if (!text.empty() && text.front() == '+')
            text.erase(0, 1);
        std::int64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc() && end == text.data() + text.size())
            return value;
        m_sink.error(entry.where, fmt::format("{} {} is out of range", entry.path, v.Scalar()),
                     fmt::format("e.g. {}: {}", entry.name, example));
        return std::nullopt;
    }
    std::string hint = fmt::format("write a whole number, e.g. {}: {}", entry.name, example);
    if (v.IsScalar() && !is_plain(v) && looks_integer(v.Scalar()))
        hint = fmt::format("remove the quotes: {}: {}", entry.name, v.Scalar());
    m_sink.error(entry.where, fmt::format("{} must be an integer, got {}", entry.path, describe(v)),
                 hint);
    return std::nullopt;
}

std::optional<std::int64_t> Reader::integer_in(const Entry& entry, std::int64_t min,
                                               std::int64_t max, std::string_view example) {
    const auto value = integer(entry, example);
    if (!value)
        return std::nullopt;
    if (*value < min || *value > max) {
        m_sink.error(
            entry.where,
            fmt::format("{} must be between {} and {}, got {}", entry.path, min, max, *value),
            fmt::format("e.g. {}: {}", entry.name, example));
        return std::nullopt;
    }
    return value;
}

std::optional<std::chrono::seconds> Reader::duration(const Entry& entry) {
    const YAML::Node& v = entry.value;
    const std::string hint = "use a number with a unit: 90s, 10m, 1h30m (a bare number means "
                             "seconds)";
    if (!v.IsScalar()) {
        m_sink.error(
            entry.where,
            fmt::format("{} must be a duration such as 10m, got {}", entry.path, describe(v)),
            hint);
        return std::nullopt;
    }
    const std::string text = v.Scalar();
    const auto parsed = parse_duration(text);
    if (!parsed) {
        m_sink.error(entry.where,
                     fmt::format("{} '{}' is not a duration", entry.path, abbreviate(text)), hint);
        return std::nullopt;
    }
    if (*parsed < std::chrono::seconds(1)) {
        m_sink.error(entry.where,
                     fmt::format("{} '{}' is too short (at least 1s)", entry.path, text), hint);
        return std::nullopt;
    }
    return std::chrono::duration_cast<std::chrono::seconds>(*parsed);
}

std::optional<std::uint64_t> Reader::size(const Entry& entry) {
    const YAML::Node& v = entry.value;
    const std::string hint = "use a number with a unit: 512MiB, 4GiB, 20G";
    if (!v.IsScalar()) {
        m_sink.error(entry.where,
                     fmt::format("{} must be a size such as 4GiB, got {}", entry.path, describe(v)),
                     hint);
        return std::nullopt;
    }
    const std::string text = v.Scalar();
    if (looks_bare_number(text)) {
        // A bare number: bytes? MiB? Ask instead of guessing; suggest the likely unit.
        const double number = std::stod(text);
        m_sink.error(entry.where, fmt::format("{} {} has no unit", entry.path, text),
                     fmt::format("add a unit, e.g. '{}{}' (sizes need KiB, MiB, GiB or TiB)", text,
                                 number >= 64 ? "MiB" : "GiB"));
        return std::nullopt;
    }
    const auto bytes = parse_size(text);
    if (!bytes) {
        m_sink.error(entry.where,
                     fmt::format("{} '{}' is not a size", entry.path, abbreviate(text)), hint);
        return std::nullopt;
    }
    return bytes;
}

std::optional<std::vector<Entry>> Reader::sequence(const Entry& entry) {
    std::vector<Entry> out;
    const YAML::Node& v = entry.value;
    if (v.IsNull())
        return out;
    if (!v.IsSequence()) {
        std::string hint = "write it as a list: [a, b] or one '- item' per line";
        if (v.IsScalar())
            hint = fmt::format("write it as a list: {}: [{}]", entry.name, abbreviate(v.Scalar()));
        m_sink.error(entry.where, fmt::format("{} must be a list, got {}", entry.path, describe(v)),
                     hint);
        return std::nullopt;
    }
    std::size_t i = 0;
    for (auto it = v.begin(); it != v.end(); ++it) {
        const YAML::Node item = static_cast<const YAML::Node&>(*it);
        const SourceLocation where = item.IsNull() ? entry.where : at(item);
        Entry e{"", fmt::format("{}[{}]", entry.path, i++), item, where, where};
        out.push_back(std::move(e));
    }
    return out;
}

std::optional<std::vector<Item>> Reader::strings(const Entry& entry) {
    const auto items = sequence(entry);
    if (!items)
        return std::nullopt;
    std::vector<Item> out;
    for (const auto& e : *items) {
        if (!e.value.IsScalar()) {
            m_sink.error(e.where,
                         fmt::format("{} must be a string, got {}", e.path, describe(e.value)));
            continue;
        }
        out.push_back(Item{e.value.Scalar(), e.path, e.where});
    }
    return out;
}

} // namespace labctl::config::detail
