// nat/portmap: asks the LAN gateway to forward a public UDP port to ours — PCP (RFC 6887 MAP,
// our own client: it is 60 bytes over UDP 5351), NAT-PMP (RFC 6886, libnatpmp) and UPnP-IGD
// (miniupnpc) — and keeps that mapping renewed until it is deleted. Every call here blocks on the
// network (SSDP discovery, SOAP over HTTP, UDP retransmissions), so it never runs on a loop
// thread: the Keeper owns a worker thread. Talks only to the default gateway (or the one given).
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace pp::nat::portmap {

enum class Protocol { pcp, natpmp, upnp };
const char *name(Protocol p);  // "PCP", "NAT-PMP", "UPnP-IGD"

struct Options {
    std::vector<Protocol> protocols = {Protocol::pcp, Protocol::natpmp, Protocol::upnp};
    std::string gateway;            // IPv4 gateway for PCP / NAT-PMP; empty = the default route's
    unsigned timeout_ms = 1500;     // per protocol (retransmissions or SSDP discovery included)
    uint32_t lifetime_s = 3600;     // requested lease; renewed at half of what was granted
};

struct Mapping {
    Protocol protocol = Protocol::pcp;
    std::string external_ip;  // the gateway's public address
    uint16_t external_port = 0;
    std::string internal_ip;  // our address on the gateway's LAN
    uint16_t internal_port = 0;
    uint32_t lifetime_s = 0;  // granted
    std::string gateway;      // PCP / NAT-PMP server address, or the IGD's control URL
    // Protocol state for renewal and deletion.
    std::array<uint8_t, 12> pcp_nonce{};
    std::string upnp_control_url, upnp_service_type;
};

// Tries `options.protocols` in order and returns the first mapping of UDP `internal_port`
// (asking for the same external port). Throws pp::Error(PP_ERR_UNREACHABLE) with one clause per
// protocol saying why it failed ("PCP: gateway 10.1.0.1 refused (nothing on port 5351); ...").
Mapping map_udp(uint16_t internal_port, const Options &options);
// Extends `mapping` (same external port when the gateway allows); throws like map_udp.
void renew(Mapping &mapping, const Options &options);
// Deletes the mapping; throws pp::Error when the gateway does not confirm.
void unmap(const Mapping &mapping, const Options &options);

// What doctor reports per protocol: whether the gateway speaks it, and the public address it
// announces. Maps nothing.
struct Availability {
    Protocol protocol = Protocol::pcp;
    bool available = false;
    std::string external_ip;
    std::string detail;  // the gateway / device, or why not
};
std::vector<Availability> probe(const Options &options);

// The protocols PIXELPASS_PORTMAP picks ("pcp,natpmp,upnp" in any order and subset), all of them
// when it is unset, or nullopt for "off" (the test suite sets it: no test talks to the machine's
// real gateway). PIXELPASS_PORTMAP_LIFETIME sets the lease asked for, in seconds. Throws
// pp::Error(PP_ERR_INVALID_ARGUMENT) for anything else.
std::optional<Options> options_from_environment();

// The IPv4 default gateway from /proc/net/route; empty when there is none.
std::string default_gateway();

// Port mapping for the life of a host: maps on its own thread, renews at half the lease, and
// deletes the mapping when destroyed (waiting at most one timeout for the gateway).
class Keeper {
public:
    using Log = std::function<void(bool warning, const std::string &message)>;
    Keeper(uint16_t internal_port, Options options, Log log);
    ~Keeper();
    Keeper(const Keeper &) = delete;
    Keeper &operator=(const Keeper &) = delete;

    // Waits until the first attempt ended (or `limit` passed) and returns the mapping, if any.
    std::optional<Mapping> wait(std::chrono::milliseconds limit);
    // {"state": "trying"|"mapped"|"failed", "protocol", "external", "internal", "lifetime_s",
    //  "renewals", "map_ms", "error"}
    nlohmann::json stats() const;

private:
    void run();

    uint16_t port_;
    Options options_;
    Log log_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false, first_done_ = false;
    std::optional<Mapping> mapping_;
    std::string error_;
    uint64_t renewals_ = 0;
    double map_ms_ = 0;
    std::thread thread_;
};

} // namespace pp::nat::portmap
