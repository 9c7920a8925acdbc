#include "test_user.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <labctl/core/process.hpp>

#include "skip.hpp"

namespace labctl::test {

TestUser::TestUser() {
    if (::geteuid() != 0)
        skip("needs root to create a throwaway local user (CI runs as root)");
    for (const char* prog : {"useradd", "userdel", "chpasswd", "passwd", "sudo"})
        require_program(prog);
    std::random_device rd;
    m_name = "labctl-t" + std::to_string(rd() % 1000000);
    m_password = "pw-" + std::to_string(rd()) + "-" + std::to_string(rd());
    auto r = run_process({"useradd", "-m", "-s", "/bin/sh", m_name});
    if (!r.ok())
        throw std::runtime_error("useradd failed: " + r.err);
    ProcessOptions in;
    in.stdin_data = m_name + ":" + m_password + "\n";
    r = run_process({"chpasswd"}, in);
    if (!r.ok())
        throw std::runtime_error("chpasswd failed: " + r.err);
    std::ofstream sudoers("/etc/sudoers.d/" + m_name);
    sudoers << m_name << " ALL=(ALL) NOPASSWD:ALL\n";
    sudoers.close();
    std::filesystem::permissions("/etc/sudoers.d/" + m_name, std::filesystem::perms(0440));
}

TestUser::~TestUser() {
    std::error_code ec;
    std::filesystem::remove("/etc/sudoers.d/" + m_name, ec);
    run_process({"pkill", "-KILL", "-u", m_name});
    run_process({"userdel", "-r", "-f", m_name});
}

std::string TestUser::password_state() const {
    const auto r = run_process({"passwd", "-S", m_name});
    std::istringstream words(r.out);
    std::string name, state;
    words >> name >> state;
    return state;
}

} // namespace labctl::test
