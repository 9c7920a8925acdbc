#pragma once
// Helpers shared by the tests: paths to the source tree and the built binary, temporary
// directories that remove themselves, running the labctl binary.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <labctl/core/process.hpp>

namespace labctl::test {

/// Whether `hay` holds `needle` (the tests' one substring check).
inline bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

std::filesystem::path source_dir();                         ///< the repository root
std::filesystem::path labctl_binary();                      ///< the built labctl executable
std::filesystem::path fixture(const std::string& relative); ///< tests/fixtures/<relative>

/// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }
    /// Writes `content` to path()/name (creating parent directories) and returns the full path.
    std::filesystem::path write(const std::string& name, const std::string& content) const;

private:
    std::filesystem::path m_path;
};

/// Runs the labctl binary with args; NO_COLOR set, CI unset so output is deterministic.
ProcessResult run_labctl(const std::vector<std::string>& args, ProcessOptions options = {});

std::string read_file(const std::filesystem::path& p);

/// Runs `f`: 0 when it returns, else the exit code of the labctl::Error it throws (its message,
/// with the hint, in `message` when given). Other exceptions pass through.
int exit_code_of(const std::function<void()>& f, std::string* message = nullptr);

/// A qcow2 header claiming `virtual_size` bytes: enough for labctl, which reads the size and
/// uploads the bytes (libvirt's test driver keeps no contents). The layout is QEMU's
/// (qemu/qemu@v7.2.0:docs/interop/qcow2.txt): magic "QFI\xfb", big-endian version 3 at offset
/// 4, big-endian virtual size at offset 24.
std::string qcow2_header(std::uint64_t virtual_size);

} // namespace labctl::test
