#pragma once
// Test servers: a program started in the background (its own process group, output to a log
// file) that is stopped — SIGTERM, then SIGKILL — when the object goes away; and free loopback
// ports to run it on.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace labctl::test {

class BackgroundProcess {
public:
    BackgroundProcess(std::vector<std::string> argv, std::filesystem::path log_file);
    ~BackgroundProcess();
    BackgroundProcess(const BackgroundProcess&) = delete;
    BackgroundProcess& operator=(const BackgroundProcess&) = delete;

    int pid() const { return m_pid; }
    bool running();
    void stop();
    std::string log() const;

private:
    int m_pid = -1;
    std::filesystem::path m_log;
};

/// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();
/// Waits until something accepts TCP connections on host:port; false at the deadline.
bool wait_for_port(int port, std::chrono::milliseconds deadline,
                   const std::string& host = "127.0.0.1");

} // namespace labctl::test
