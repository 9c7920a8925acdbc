// lab.yaml -> LabSpec: the public entry points and the order of the steps (parse, layer the
// environment and the flags, finish). Each step lives in a file of its own, see loader_impl.hpp.

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <labctl/config/loader.hpp>

#include "loader_impl.hpp"
#include "validate.hpp"

namespace fs = std::filesystem;

namespace labctl::config {

namespace detail {

Loader::Loader(const LoadOptions& options, std::string display, const fs::path& source)
    : m_options(options), m_sink(std::move(display)), m_reader(m_sink) {
    m_spec.source_file = source.lexically_normal().string();
    m_spec.base_dir = source.parent_path().lexically_normal().string();
    m_base = m_spec.base_dir;
}

LoadResult Loader::load(const std::string& text) {
    if (parse(text)) {
        apply_environment();
        apply_overrides();
        finish();
    }
    LoadResult result;
    result.diagnostics = m_sink.sorted();
    if (!m_sink.has_errors())
        result.spec = std::move(m_spec);
    return result;
}

LoadResult Loader::fail(std::string message, std::string hint) {
    m_sink.error(m_sink.whole_file(), std::move(message), std::move(hint));
    return LoadResult{std::nullopt, m_sink.sorted()};
}

} // namespace detail

namespace {

fs::path absolute_path(const std::string& path) {
    std::error_code ec;
    auto p = fs::absolute(path.empty() ? fs::path(".") : fs::path(path), ec);
    return ec ? fs::path(path) : p;
}

} // namespace

LoadResult load_lab(const LoadOptions& options) {
    detail::Loader loader(options, options.path, absolute_path(options.path));
    std::error_code ec;
    if (fs::is_directory(options.path, ec))
        return loader.fail("cannot read the lab file: it is a directory",
                           "pass the file itself, e.g. -f " +
                               (fs::path(options.path) / "lab.yaml").string());
    std::ifstream in(options.path, std::ios::binary);
    if (!in) {
        const int err = errno;
        return loader.fail(
            fmt::format("cannot read the lab file: {}", std::strerror(err ? err : ENOENT)),
            err == ENOENT || err == 0
                ? "run 'labctl init' to write one, or point -f (or LABCTL_FILE) at it"
                : "check the file's permissions");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return loader.load(text.str());
}

LoadResult load_lab_text(const std::string& text, const std::string& name,
                         const LoadOptions& options) {
    detail::Loader loader(options, name, absolute_path(name));
    return loader.load(text);
}

std::optional<Diagnostic> check_project_name(const std::string& name) {
    auto problem = detail::check_project("project", name);
    if (!problem)
        return std::nullopt;
    return Diagnostic{Severity::error, {}, problem->message, problem->hint};
}

} // namespace labctl::config
