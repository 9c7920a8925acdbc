#pragma once
// Templates (libvirt XML, cloud-init, sshd drop-in, lab.yaml) are embedded into the binary at
// build time from templates/; a file of the same name in LABCTL_TEMPLATE_DIR overrides one.

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::templates {

/// The template's text; throws Error(internal) when no such template exists.
std::string load(std::string_view name);
/// Names of all embedded templates.
std::vector<std::string> names();
/// Replaces every `{{ key }}` with vars[key]; throws Error(internal) on an unknown key.
std::string render(std::string_view text, const std::map<std::string, std::string>& vars);

} // namespace labctl::templates
