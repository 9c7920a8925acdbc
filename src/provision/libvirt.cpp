#include "libvirt.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>

namespace labctl::provision::libvirt {

namespace {

void log_libvirt_error(void* /*user_data*/, virErrorPtr error) {
    // libvirt would print every error to stderr itself; we capture errors at the call site and
    // keep its own report for -v.
    if (error != nullptr && error->message != nullptr)
        log::debug("libvirt: {} (domain {}, code {})", error->message, error->domain, error->code);
}

/// Takes a malloc'd array of n libvirt pointers and wraps each one in a handle.
template <typename Handle, typename Ptr>
std::vector<Handle> take_list(Ptr* list, int n, std::string_view what) {
    if (n < 0)
        throw_last_error(what);
    std::vector<Handle> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
        out.emplace_back(list[i]);
    std::free(list);
    return out;
}

} // namespace

std::string take_string(char* p) {
    CString owned(p);
    return owned ? std::string(owned.get()) : std::string();
}

void initialize() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (virInitialize() != 0)
            throw_last_error("cannot initialise the libvirt library");
        virSetErrorFunc(nullptr, log_libvirt_error);
        // Keepalive needs an event loop: without one a libvirtd that stops answering (stopped,
        // stalled on I/O, a dead remote host behind qemu+ssh) blocks any call, a stream upload
        // included, for ever. The loop thread lives as long as the process; it only runs
        // libvirt's timers and socket callbacks.
        if (virEventRegisterDefaultImpl() != 0)
            throw_last_error("cannot initialise the libvirt event loop");
        std::thread([] {
            for (;;)
                if (virEventRunDefaultImpl() != 0) {
                    log::debug("libvirt event loop: {}", take_last_error().message);
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
                }
        }).detach();
    });
}

LastError take_last_error() {
    LastError out;
    if (virErrorPtr e = virGetLastError(); e != nullptr) {
        out.code = e->code;
        out.message = e->message != nullptr ? e->message : "";
    }
    virResetLastError();
    if (out.message.empty())
        out.message = "unknown libvirt error";
    return out;
}

void throw_last_error(std::string_view what, std::string hint) {
    const auto e = take_last_error();
    throw Error(ExitCode::preflight, fmt::format("{}: {}", what, e.message), std::move(hint));
}

bool connection_lost(virConnectPtr conn) {
    if (conn == nullptr)
        return false;
    // virConnectIsAlive resets the thread's last error: callers take theirs first.
    const int alive = virConnectIsAlive(conn);
    virResetLastError();
    return alive == 0;
}

Error operation_error(virConnectPtr conn, std::string_view doing, const LastError& e) {
    if (connection_lost(conn))
        return Error(ExitCode::provision,
                     fmt::format("provision: {} failed: the libvirt connection was lost ({})",
                                 doing, e.message));
    return Error(ExitCode::provision, fmt::format("provision: {} failed: {}", doing, e.message));
}

void throw_operation_error(virConnectPtr conn, std::string_view doing) {
    const auto e = take_last_error();
    throw operation_error(conn, doing, e);
}

bool is_local_uri(std::string_view uri) {
    const auto sep = uri.find("://");
    if (sep == std::string_view::npos)
        return true; // an alias or a bare driver name: resolved on this machine
    const auto rest = uri.substr(sep + 3);
    const auto host = rest.substr(0, rest.find_first_of("/?"));
    return host.empty() || host == "localhost" || host == "127.0.0.1";
}

std::string unreachable_hint(std::string_view uri) {
    if (uri.rfind("test://", 0) == 0)
        return "test:/// URIs name libvirt's built-in test driver: test:///default or "
               "test:///<absolute path of a driver XML file>";
    if (!is_local_uri(uri))
        return fmt::format("check that the libvirt host in '{}' is reachable and runs libvirtd",
                           uri);
    return fmt::format("start libvirtd (systemctl start libvirtd, or 'libvirtd -d' without "
                       "systemd) or check libvirt.uri ('{}')",
                       uri);
}

namespace {

/// Opens the connection on a helper thread and waits at most k_open_timeout: the open itself
/// runs before keepalive can be set, and a libvirtd that accepts but never answers (stopped, or a
/// remote host behind a hung ssh) would block it for ever. On expiry the helper is left to finish
/// on its own (libvirt has no way to cancel an open); the process is about to exit with the error.
ConnectHandle open_bounded(const std::string& uri, Connection::Access access) {
    struct Outcome {
        virConnectPtr conn = nullptr;
        LastError error;
    };
    auto task = std::make_shared<std::packaged_task<Outcome()>>([uri, access] {
        Outcome out;
        out.conn = access == Connection::Access::read_only
                       ? virConnectOpenReadOnly(uri.c_str())
                       : virConnectOpenAuth(uri.c_str(), virConnectAuthPtrDefault, 0);
        if (out.conn == nullptr)
            out.error = take_last_error(); // thread-local: carried back by value
        return out;
    });
    auto result = task->get_future();
    std::thread([task] { (*task)(); }).detach();
    if (result.wait_for(k_open_timeout) != std::future_status::ready)
        throw Error(ExitCode::preflight,
                    fmt::format("cannot connect to libvirt at {}: no answer within {} s", uri,
                                k_open_timeout.count()),
                    unreachable_hint(uri));
    Outcome out = result.get();
    if (out.conn == nullptr)
        throw Error(ExitCode::preflight,
                    fmt::format("cannot connect to libvirt at {}: {}", uri, out.error.message),
                    unreachable_hint(uri));
    return ConnectHandle(out.conn);
}

/// Asks the remote driver to ping libvirtd every k_keepalive_interval and to close the
/// connection after k_keepalive_count unanswered pings: every call waiting on it, a stream
/// included, then fails ("connection closed due to keepalive timeout") and the run ends with
/// exit 9 instead of hanging. Drivers that run in this process (test:///) have nothing to ping.
void enable_keepalive(virConnectPtr conn, const std::string& uri) {
    const int rc = virConnectSetKeepAlive(conn, static_cast<int>(k_keepalive_interval.count()),
                                          k_keepalive_count);
    if (rc == 0)
        return;
    const auto e = take_last_error();
    if (rc == 1 || e.code == VIR_ERR_NO_SUPPORT)
        log::debug("libvirt at {}: no keepalive ({})", uri, rc == 1 ? "not supported" : e.message);
    else
        log::warn("libvirt at {}: keepalive not enabled: {}", uri, e.message);
}

} // namespace

Connection Connection::open(const std::string& uri, Access access) {
    initialize();
    // The test driver reports a missing file as an XML parse error; say what is wrong instead.
    if (uri.rfind("test:///", 0) == 0 && uri != "test:///default") {
        const std::string path = uri.substr(7);
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec))
            throw Error(
                ExitCode::preflight,
                fmt::format("cannot connect to libvirt at {}: no test driver file {}", uri, path),
                unreachable_hint(uri));
    }
    log::debug("connecting to libvirt at {} ({})", uri,
               access == Access::read_only ? "read-only" : "read-write");
    ConnectHandle conn = open_bounded(uri, access);
    enable_keepalive(conn.get(), uri);
    return Connection(std::move(conn), uri, access);
}

std::string Connection::driver() const {
    const char* type = virConnectGetType(get());
    if (type == nullptr)
        throw_last_error("cannot read the libvirt driver type");
    return type;
}

std::string Connection::library_version() const {
    unsigned long v = 0;
    if (virConnectGetLibVersion(get(), &v) != 0)
        throw_last_error("cannot read the libvirt version");
    return fmt::format("{}.{}.{}", v / 1000000, v / 1000 % 1000, v % 1000);
}

std::vector<NetworkHandle> Connection::networks() const {
    virNetworkPtr* list = nullptr;
    const int n = virConnectListAllNetworks(get(), &list, 0);
    return take_list<NetworkHandle>(list, n, "cannot list libvirt networks");
}

std::vector<StoragePoolHandle> Connection::pools() const {
    virStoragePoolPtr* list = nullptr;
    const int n = virConnectListAllStoragePools(get(), &list, 0);
    return take_list<StoragePoolHandle>(list, n, "cannot list libvirt storage pools");
}

std::vector<DomainHandle> Connection::domains() const {
    virDomainPtr* list = nullptr;
    const int n = virConnectListAllDomains(get(), &list, 0);
    return take_list<DomainHandle>(list, n, "cannot list libvirt domains");
}

std::vector<StorageVolHandle> Connection::volumes(virStoragePoolPtr pool) {
    const std::string name = virStoragePoolGetName(pool); // before: every call resets errors
    virStorageVolPtr* list = nullptr;
    const int n = virStoragePoolListAllVolumes(pool, &list, 0);
    return take_list<StorageVolHandle>(
        list, n, fmt::format("cannot list the volumes of storage pool '{}'", name));
}

NetworkHandle Connection::find_network(const std::string& name) const {
    NetworkHandle h(virNetworkLookupByName(get(), name.c_str()));
    if (!h) {
        const auto e = take_last_error();
        if (e.code != VIR_ERR_NO_NETWORK)
            throw Error(ExitCode::preflight,
                        fmt::format("cannot look up network '{}': {}", name, e.message));
    }
    return h;
}

StoragePoolHandle Connection::find_pool(const std::string& name) const {
    StoragePoolHandle h(virStoragePoolLookupByName(get(), name.c_str()));
    if (!h) {
        const auto e = take_last_error();
        if (e.code != VIR_ERR_NO_STORAGE_POOL)
            throw Error(ExitCode::preflight,
                        fmt::format("cannot look up storage pool '{}': {}", name, e.message));
    }
    return h;
}

DomainHandle Connection::find_domain(const std::string& name) const {
    DomainHandle h(virDomainLookupByName(get(), name.c_str()));
    if (!h) {
        const auto e = take_last_error();
        if (e.code != VIR_ERR_NO_DOMAIN)
            throw Error(ExitCode::preflight,
                        fmt::format("cannot look up domain '{}': {}", name, e.message));
    }
    return h;
}

StorageVolHandle Connection::find_volume(virStoragePoolPtr pool, const std::string& name) {
    StorageVolHandle h(virStorageVolLookupByName(pool, name.c_str()));
    if (!h) {
        const auto e = take_last_error();
        if (e.code != VIR_ERR_NO_STORAGE_VOL) {
            const char* pool_name = virStoragePoolGetName(pool);
            throw Error(ExitCode::preflight,
                        fmt::format("cannot look up volume '{}' in pool '{}': {}", name,
                                    pool_name != nullptr ? pool_name : "?", e.message));
        }
    }
    return h;
}

} // namespace labctl::provision::libvirt
