#pragma once
// Private to src/provision: the only header that includes libvirt. RAII handles for every libvirt
// pointer (CHandle), error capture at the call site (libvirt's thread-local last error turned into
// labctl::Error: exit 3 for what fails before labctl made anything, exit 9 for an operation that
// creates, starts, uploads or removes), and Connection.

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/core/error.hpp>

namespace labctl::provision::libvirt {

/// Calls FreeFn on a non-null pointer; the deleter of CHandle.
template <typename T, auto FreeFn>
struct CFree {
    void operator()(T* p) const noexcept {
        if (p != nullptr)
            FreeFn(p);
    }
};

/// A libvirt (or any C) pointer owned like a unique_ptr and released with FreeFn.
template <typename T, auto FreeFn>
using CHandle = std::unique_ptr<T, CFree<T, FreeFn>>;

inline void free_c_string(char* p) noexcept {
    std::free(p);
}

using ConnectHandle = CHandle<virConnect, virConnectClose>;
using NetworkHandle = CHandle<virNetwork, virNetworkFree>;
using StoragePoolHandle = CHandle<virStoragePool, virStoragePoolFree>;
using StorageVolHandle = CHandle<virStorageVol, virStorageVolFree>;
using DomainHandle = CHandle<virDomain, virDomainFree>;
using CString = CHandle<char, free_c_string>;

/// Takes ownership of a malloc'd string from libvirt; nullptr gives "".
std::string take_string(char* p);

/// Installs the global error function (libvirt's own stderr printing goes to log::debug) and
/// initialises the library; idempotent and thread-safe. Every entry point calls it.
void initialize();

/// The thread's last libvirt error: its message (or "unknown libvirt error") and code; reset after.
struct LastError {
    int code = VIR_ERR_OK;
    std::string message;
};
LastError take_last_error();

/// Throws Error(preflight, "<what>: <libvirt message>", hint) from the thread's last error: for
/// connecting, capabilities, lookups and reads before anything is made.
[[noreturn]] void throw_last_error(std::string_view what, std::string hint = {});

/// True when `conn` is known to be dead (libvirtd went away, the socket closed): the error that
/// just happened means "the connection was lost", not "libvirt refused".
bool connection_lost(virConnectPtr conn);

/// Error(provision, "provision: <doing> failed: <libvirt message>") for an operation that makes,
/// starts, uploads or removes something after preflight; when `conn` is dead the message says
/// that the libvirt connection was lost. `doing` is a phrase: "starting domain 'lab-web'".
Error operation_error(virConnectPtr conn, std::string_view doing, const LastError& e);
/// operation_error from the thread's last error.
[[noreturn]] void throw_operation_error(virConnectPtr conn, std::string_view doing);

/// True for a local URI (no host part: qemu:///system, test:///default).
bool is_local_uri(std::string_view uri);

/// How long opening a connection may take before it is given up (exit 3).
inline constexpr std::chrono::seconds k_open_timeout{30};
/// Keepalive: a ping every interval; the connection is closed after `count` unanswered ones, so
/// a libvirtd that stops answering fails the waiting call within about interval * (count + 1).
inline constexpr std::chrono::seconds k_keepalive_interval{5};
inline constexpr int k_keepalive_count = 3;

class Connection {
public:
    enum class Access { read_only, read_write };

    /// Opens `uri`; throws Error(preflight) with libvirt's message and a hint on failure.
    static Connection open(const std::string& uri, Access access = Access::read_only);

    virConnectPtr get() const noexcept { return m_conn.get(); }
    const std::string& uri() const noexcept { return m_uri; }
    bool read_only() const noexcept { return m_access == Access::read_only; }

    /// "QEMU", "Test", ...
    std::string driver() const;
    /// libvirt version on the other side, "9.0.0".
    std::string library_version() const;

    std::vector<NetworkHandle> networks() const;
    std::vector<StoragePoolHandle> pools() const;
    std::vector<DomainHandle> domains() const;
    static std::vector<StorageVolHandle> volumes(virStoragePoolPtr pool);

    /// Lookups by name: nullptr when the object does not exist, Error on any other failure.
    NetworkHandle find_network(const std::string& name) const;
    StoragePoolHandle find_pool(const std::string& name) const;
    DomainHandle find_domain(const std::string& name) const;
    static StorageVolHandle find_volume(virStoragePoolPtr pool, const std::string& name);

private:
    Connection(ConnectHandle conn, std::string uri, Access access)
        : m_conn(std::move(conn)), m_uri(std::move(uri)), m_access(access) {}

    ConnectHandle m_conn;
    std::string m_uri;
    Access m_access;
};

/// The hint for an unreachable libvirt.
std::string unreachable_hint(std::string_view uri);

} // namespace labctl::provision::libvirt
