# Every third-party dependency is found here, from Debian packages (scripts/install-deps).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
pkg_check_modules(LIBVIRT REQUIRED IMPORTED_TARGET libvirt)
pkg_check_modules(LIBSSH2 REQUIRED IMPORTED_TARGET libssh2)
# libcrypto (OpenSSL, which libssh2 links too) gives core its SHA-256.
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# libisofs builds the cloud-init NoCloud seed in memory (libburn-dev for struct burn_source).
pkg_check_modules(LIBISOFS REQUIRED IMPORTED_TARGET libisofs-1)

# CLI11 is header-only in Debian and ships no CMake package.
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
add_library(labctl_cli11 INTERFACE)
target_include_directories(labctl_cli11 SYSTEM INTERFACE ${CLI11_INCLUDE_DIR})

if(LABCTL_BUILD_TESTS)
    find_package(Catch2 2.13 REQUIRED)
    include(Catch)
endif()
