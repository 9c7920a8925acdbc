#pragma once
// Loading lab.yaml into a LabSpec with precedence default < file < environment < flags, collecting
// every problem at once instead of stopping at the first.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/diagnostic.hpp>
#include <labctl/config/lab_spec.hpp>

namespace labctl::config {

/// Values given on the command line; they win over file and environment.
struct Overrides {
    std::optional<std::string> project;
    std::optional<std::string> libvirt_uri;
    std::optional<std::string> host; ///< --host: deploy/verify/harden an existing host
};

struct LoadOptions {
    std::string path = "lab.yaml";
    /// Environment snapshot (the variables of environment_variables()); empty map = ignore the
    /// environment.
    std::map<std::string, std::string> env;
    Overrides overrides;
    /// When true, a missing or badly-permissioned private key is an error (stages that connect);
    /// when false it is a warning with a hint to run `labctl init` (validate, plan).
    bool require_key = false;
};

struct LoadResult {
    std::optional<LabSpec> spec; ///< present when there are no errors
    std::vector<Diagnostic> diagnostics;
    bool ok() const { return spec.has_value(); }
};

/// Parses, validates and applies precedence. Never throws for problems in the input.
LoadResult load_lab(const LoadOptions& options);

/// Parses text as if it were the file `name` (for tests and `labctl init`).
LoadResult load_lab_text(const std::string& text, const std::string& name,
                         const LoadOptions& options = {});

/// The process environment variables labctl reads, as a map (for LoadOptions::env).
std::map<std::string, std::string> environment_snapshot();

/// The environment variables labctl reads, with the setting each one layers onto (the loader's
/// environment layer iterates this table) and what it means (for the man page/help).
struct EnvVar {
    std::string name;
    std::string setting; ///< "libvirt.uri"; empty when the CLI reads it itself (LABCTL_FILE)
    std::string meaning;
};
const std::vector<EnvVar>& environment_variables();
/// The value of the variable that layers onto `setting` ("libvirt.uri"), for a command that reads
/// a setting without a lab file (doctor); nullopt when unset or empty, as the loader counts it.
std::optional<std::string> environment_value_for(std::string_view setting);

/// Why `name` is not a valid project name (message and hint, no location), or nullopt when it is.
std::optional<Diagnostic> check_project_name(const std::string& name);

/// Parses "4GiB", "512MiB", "20G" (binary), "20GB" (decimal) into bytes; nullopt if malformed.
std::optional<std::uint64_t> parse_size(const std::string& text);
/// "4 GiB", "512 MiB".
std::string format_size(std::uint64_t bytes);

} // namespace labctl::config
