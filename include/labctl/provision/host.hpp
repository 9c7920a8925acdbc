#pragma once
// Facts about this host's virtualisation stack.

#include <string>

namespace labctl::provision {

/// The libvirt library version labctl runs with, "9.0.0".
std::string libvirt_library_version();

} // namespace labctl::provision
