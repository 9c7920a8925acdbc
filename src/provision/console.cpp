#include <fmt/format.h>
#include <libvirt/libvirt.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/provision/console.hpp>
#include <labctl/provision/naming.hpp>

#include "libvirt.hpp"
#include "lv_objects.hpp"

namespace labctl::provision {

namespace {

/// The terminal in raw mode (every byte goes to the guest, Ctrl-C included) until destroyed.
class RawTerminal {
public:
    explicit RawTerminal(int fd) : m_fd(fd) {
        if (::isatty(fd) != 1 || ::tcgetattr(fd, &m_saved) != 0)
            return;
        termios raw = m_saved;
        ::cfmakeraw(&raw);
        if (::tcsetattr(fd, TCSAFLUSH, &raw) == 0)
            m_active = true;
    }
    ~RawTerminal() {
        if (m_active)
            ::tcsetattr(m_fd, TCSAFLUSH, &m_saved);
    }
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

private:
    int m_fd;
    termios m_saved{};
    bool m_active = false;
};

using StreamHandle = libvirt::CHandle<virStream, virStreamFree>;

void write_all(int fd, const char* data, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            throw Error(ExitCode::internal, fmt::format("writing the console's output failed: {}",
                                                        std::strerror(errno)));
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}

/// Sends all of `data` on a non-blocking stream (-2: full for now, retried shortly).
void send_all(virStreamPtr st, virConnectPtr conn, const char* data, std::size_t n) {
    for (int tries = 0; n > 0;) {
        const int sent = virStreamSend(st, data, n);
        if (sent == -2) {
            if (++tries > 250) // 5 s without room: the guest side does not read
                throw Error(ExitCode::provision, "the console does not take input (5 s)");
            ::usleep(20000);
            continue;
        }
        if (sent < 0)
            libvirt::throw_operation_error(conn, "sending to the console");
        data += sent;
        n -= static_cast<std::size_t>(sent);
    }
}

} // namespace

ConsoleEnd attach_console(const config::LabSpec& spec, const std::string& vm,
                          const ConsoleOptions& options) {
    const auto it = std::find_if(spec.vms.begin(), spec.vms.end(),
                                 [&](const config::VmSpec& v) { return v.name == vm; });
    if (it == spec.vms.end())
        throw usage_error(fmt::format("'{}' is not a VM of this lab", vm),
                          "labctl status lists the lab's VMs");
    const auto& host = spec.host_of(*it);
    auto conn =
        libvirt::Connection::open(host.libvirt.uri, libvirt::Connection::Access::read_write);
    const auto name = domain_name(spec.project, vm);
    auto dom = conn.find_domain(name);
    if (!dom)
        throw usage_error(fmt::format("VM '{}' is not provisioned (no domain '{}')", vm, name),
                          "run 'labctl up' first");
    StreamHandle st(virStreamNew(conn.get(), VIR_STREAM_NONBLOCK));
    if (!st)
        libvirt::throw_operation_error(conn.get(), "creating a stream for the console");
    if (virDomainOpenConsole(dom.get(), nullptr, st.get(),
                             options.force ? VIR_DOMAIN_CONSOLE_FORCE : 0) != 0) {
        const auto e = libvirt::take_last_error();
        throw Error(ExitCode::provision,
                    fmt::format("opening the console of '{}' failed: {}", vm, e.message),
                    options.force ? "check that the VM is running"
                                  : "another client may hold it: --force takes it over");
    }
    bool finished = false;
    struct Abort {
        virStreamPtr st;
        bool& finished;
        ~Abort() {
            if (!finished)
                virStreamAbort(st);
        }
    } abort_on_exit{st.get(), finished};

    log::info("console of '{}' (domain {}): Ctrl-] detaches", vm, name);
    RawTerminal raw(options.in_fd);
    std::vector<char> buf(64 * 1024);
    bool input_open = true;
    std::chrono::steady_clock::time_point linger_until;
    for (;;) {
        signals::check();
        // Everything the guest sent so far.
        for (;;) {
            const int got = virStreamRecv(st.get(), buf.data(), buf.size());
            if (got == -2)
                break;
            if (got == 0) {
                finished = virStreamFinish(st.get()) == 0;
                return ConsoleEnd::closed;
            }
            if (got < 0)
                libvirt::throw_operation_error(conn.get(), "reading the console");
            write_all(options.out_fd, buf.data(), static_cast<std::size_t>(got));
        }
        if (!input_open) {
            // A pipe ended: what the guest answers in the next 2 s is still shown.
            if (std::chrono::steady_clock::now() >= linger_until)
                return ConsoleEnd::input_ended;
            ::usleep(20000);
            continue;
        }
        pollfd p{options.in_fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, 20);
        if (ready < 0 && errno != EINTR)
            throw Error(ExitCode::internal,
                        fmt::format("waiting for input failed: {}", std::strerror(errno)));
        if (ready <= 0)
            continue;
        const ssize_t n = ::read(options.in_fd, buf.data(), buf.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            input_open = false;
            linger_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
            continue;
        }
        const auto end = buf.begin() + n;
        const auto esc = std::find(buf.begin(), end, options.escape);
        send_all(st.get(), conn.get(), buf.data(), static_cast<std::size_t>(esc - buf.begin()));
        if (esc != end)
            return ConsoleEnd::detached;
    }
}

} // namespace labctl::provision
