#include "support.hpp"

#include <fstream>
#include <random>
#include <sstream>

#include <labctl/core/error.hpp>

#include "skip.hpp"

namespace labctl::test {

void require_program(const std::string& program) {
    if (!find_program(program))
        skip(program + " is not installed (scripts/install-deps installs it)");
}

std::filesystem::path source_dir() {
    return LABCTL_SOURCE_DIR;
}
std::filesystem::path labctl_binary() {
    return LABCTL_BINARY;
}
std::filesystem::path fixture(const std::string& relative) {
    return source_dir() / "tests" / "fixtures" / relative;
}

TempDir::TempDir() {
    std::random_device rd;
    const auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
        auto candidate = base / ("labctl-test-" + std::to_string(rd()));
        if (std::filesystem::create_directory(candidate)) {
            m_path = candidate;
            return;
        }
    }
    throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& content) const {
    const auto p = m_path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << content;
    return p;
}

ProcessResult run_labctl(const std::vector<std::string>& args, ProcessOptions options) {
    std::vector<std::string> argv{labctl_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    options.env.emplace("NO_COLOR", "1");
    options.env.emplace("CI", "");
    if (options.timeout.count() == 0)
        options.timeout = std::chrono::seconds(60);
    return run_process(argv, options);
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string qcow2_header(std::uint64_t virtual_size) {
    std::string h(512, '\0');
    h[0] = 'Q';
    h[1] = 'F';
    h[2] = 'I';
    h[3] = static_cast<char>(0xfb);
    h[7] = 3;                   // version
    for (int i = 0; i < 8; ++i) // big-endian size at offset 24
        h[static_cast<std::size_t>(24 + i)] =
            static_cast<char>((virtual_size >> (8 * (7 - i))) & 0xff);
    return h;
}

int exit_code_of(const std::function<void()>& f, std::string* message) {
    try {
        f();
    } catch (const Error& e) {
        if (message != nullptr)
            *message = e.hint().empty() ? std::string(e.what())
                                        : std::string(e.what()) + "\nhint: " + e.hint();
        return to_int(e.code());
    }
    return 0;
}

} // namespace labctl::test
