#include <fmt/format.h>
#include <libvirt/libvirt.h>

#include <labctl/provision/host.hpp>

namespace labctl::provision {

std::string libvirt_library_version() {
    unsigned long v = 0;
    if (virGetVersion(&v, nullptr, nullptr) != 0)
        v = LIBVIR_VERSION_NUMBER;
    return fmt::format("{}.{}.{}", v / 1000000, v / 1000 % 1000, v % 1000);
}

} // namespace labctl::provision
