// The loader's YAML plumbing: parsing the text (with hints for syntax errors), the top level and
// its sections, and reading one checked string into the spec while remembering where it came from.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <sstream>

#include "loader_impl.hpp"

namespace labctl::config::detail {

namespace {

/// "1", "+1", "01": the version this labctl reads.
bool is_one(const std::string& s) {
    const auto digits = s.find_first_not_of("+0");
    return digits != std::string::npos && s.substr(digits) == "1";
}

/// A hint for the syntax error yaml-cpp reported: its message is compared with yaml-cpp's own
/// constants (YAML::ErrorMsg in <yaml-cpp/exceptions.h>), never with text copied from them.
std::string syntax_hint(const std::string& msg, const std::string& line_text) {
    namespace ErrorMsg = YAML::ErrorMsg;
    const auto indent_end = line_text.find_first_not_of(" \t");
    if (line_text.substr(0, indent_end).find('\t') != std::string::npos)
        return "indent with spaces: YAML does not allow tabs for indentation";
    if (msg == ErrorMsg::MAP_VALUE)
        return "a value that contains ': ' must be quoted, or this line is indented wrongly";
    if (msg == ErrorMsg::END_OF_MAP_FLOW)
        return "a '{' is not closed with '}'";
    if (msg == ErrorMsg::END_OF_SEQ_FLOW)
        return "a '[' is not closed with ']'";
    if (msg == ErrorMsg::UNKNOWN_ANCHOR)
        return "define the anchor with '&name' before referring to it with '*name'";
    // INVALID_ESCAPE is a prefix: yaml-cpp appends the character it did not know.
    if (msg.rfind(ErrorMsg::INVALID_ESCAPE, 0) == 0)
        return "inside double quotes a backslash starts an escape; use single quotes or '\\\\'";
    return "check the indentation and quoting of this line and the one before it";
}

std::string line_of(const std::string& text, int line) {
    std::istringstream in(text);
    std::string s;
    for (int i = 0; i <= line && std::getline(in, s); ++i) {
    }
    return s;
}

} // namespace

void Loader::record(const std::string& field, const SourceLocation& where, Origin origin) {
    m_sources[field] = Source{origin, where};
}

Source Loader::source_of(const std::string& field) const {
    const auto it = m_sources.find(field);
    if (it != m_sources.end())
        return it->second;
    return Source{Origin::defaulted, m_sink.whole_file()};
}

bool Loader::read_string(const Mapping& m, std::string_view key, std::string& target,
                         const Validator& check) {
    const Entry* e = m.get(key);
    if (!e)
        return false;
    const auto value = m_reader.string(*e);
    if (!value)
        return false;
    if (check) {
        if (auto problem = check(e->path, *value)) {
            m_sink.error(e->where, std::move(*problem));
            m_bad.insert(e->path);
            return false;
        }
    }
    target = *value;
    record(e->path, e->where, Origin::file);
    return true;
}

Validator Loader::choice(const std::vector<std::string>& allowed, std::string hint) {
    return [&allowed, hint](std::string_view label, const std::string& v) {
        return check_choice(label, v, allowed, hint);
    };
}

Validator Loader::not_empty(std::string hint) {
    return [hint](std::string_view label, const std::string& v) {
        return check_not_empty(label, v, hint);
    };
}

std::optional<Mapping> Loader::section(const Mapping& root, std::string_view name,
                                       const std::vector<std::string>& keys) {
    const Entry* e = root.find(name);
    if (!e)
        return Mapping{};
    return m_reader.mapping(
        *e, &keys,
        fmt::format("write its keys indented below '{}:' ({})", name, fmt::join(keys, ", ")));
}

bool Loader::parse(const std::string& text) {
    std::vector<YAML::Node> docs;
    try {
        docs = YAML::LoadAll(text);
    } catch (const YAML::ParserException& e) {
        SourceLocation where = m_sink.whole_file();
        if (!e.mark.is_null() && e.mark.line >= 0)
            where = SourceLocation{m_sink.file(), e.mark.line + 1, e.mark.column + 1};
        m_sink.error(where, fmt::format("invalid YAML: {}", e.msg),
                     syntax_hint(e.msg, e.mark.line >= 0 ? line_of(text, e.mark.line) : ""));
        return false;
    } catch (const YAML::Exception& e) {
        m_sink.error(m_sink.whole_file(), fmt::format("invalid YAML: {}", e.msg));
        return false;
    }
    if (docs.empty() || docs.front().IsNull()) {
        m_sink.error(m_sink.whole_file(), "the file is empty",
                     "start from the template 'labctl init' writes, or from "
                     "examples/lab.yaml");
        return false;
    }
    if (docs.size() > 1)
        m_sink.error(m_reader.at(docs[1]),
                     fmt::format("only one YAML document is allowed, found {}", docs.size()),
                     "remove the '---' line and what follows it");
    const YAML::Node& root = docs.front();
    if (!root.IsMap()) {
        m_sink.error(m_reader.at(root),
                     fmt::format("the top level must be a mapping, got {}", describe(root)),
                     "start with 'version: 1', 'project: <name>' and 'vms:' at column 1");
        return false;
    }
    return read_root(root);
}

bool Loader::read_root(const YAML::Node& root) {
    // A newer schema means other keys: judge nothing else by version 1's rules.
    for (auto it = root.begin(); it != root.end(); ++it) {
        if (!it->first.IsScalar() || it->first.Scalar() != "version")
            continue;
        if (is_plain_integer(it->second) && !is_one(it->second.Scalar())) {
            m_sink.error(m_reader.at(it->second),
                         fmt::format("unsupported version {}", it->second.Scalar()),
                         fmt::format("this labctl reads version {} files; write 'version: {}' "
                                     "or use a labctl that knows version {}",
                                     k_schema_version, k_schema_version, it->second.Scalar()));
            return false;
        }
        break;
    }

    const auto m = m_reader.mapping(root, "", m_reader.at(root), &k_root_keys, "");
    if (!m)
        return false;

    if (const Entry* e = m->find("version"); !e) {
        m_sink.error(m_sink.whole_file(), "missing required key 'version'",
                     "add 'version: 1' as the first line");
    } else if (e->empty()) {
        m_sink.error(e->where, "version must have a value", "write 'version: 1'");
    } else if (const auto v = m_reader.integer(*e, "1")) {
        m_spec.version = static_cast<int>(*v);
    }

    if (const Entry* e = m->find("project"); !e) {
        m_project_missing = true; // unless the environment or a flag names it
    } else if (e->empty()) {
        m_sink.error(e->where, "project must have a value", k_project_hint);
    } else {
        read_string(*m, "project", m_spec.project, check_project);
    }

    if (auto s = section(*m, "libvirt", k_libvirt_keys))
        read_libvirt(*s);
    read_hosts(*m);
    if (auto s = section(*m, "network", k_network_keys))
        read_network(*s);
    if (auto s = section(*m, "image", k_image_keys))
        read_image(*s);
    if (auto s = section(*m, "ssh", k_ssh_keys))
        read_ssh(*s);
    read_vms(*m);
    if (auto s = section(*m, "hardening", k_hardening_keys))
        read_hardening(*s);
    if (auto s = section(*m, "deploy", k_deploy_keys))
        read_deploy(*s);
    if (auto s = section(*m, "verify", k_verify_keys))
        read_verify(*s);
    return true;
}

} // namespace labctl::config::detail
