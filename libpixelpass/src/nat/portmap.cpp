#include "nat/portmap.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#define ENABLE_STRNATPMPERR  // declares strnatpmperr(), which the library exports
#include <natpmp.h>
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include "common/error.hpp"
#include "common/random.hpp"
#include "nat/portmap_wire.hpp"

namespace pp::nat::portmap {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint16_t kPcpPort = 5351;  // PCP and NAT-PMP share it
constexpr char kDescription[] = "pixelpass";

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
};

std::string gateway_of(const Options &o) {
    std::string gw = o.gateway.empty() ? default_gateway() : o.gateway;
    if (gw.empty()) throw Error(PP_ERR_UNREACHABLE, "no IPv4 default gateway");
    return gw;
}

// ---- PCP (RFC 6887): MAP requests of our own ---------------------------------------------------

struct PcpAnswer {
    uint32_t lifetime = 0;
    uint16_t external_port = 0;
    std::string external_ip, client_ip;
};

// One MAP transaction for UDP `internal_port` (lifetime 0 deletes), retransmitted with a doubling
// interval until `timeout_ms`. The client address the request carries must be our source address
// towards the gateway, which a connected socket tells.
PcpAnswer pcp_map(const std::string &gateway, uint16_t internal_port, uint16_t suggested_port, uint32_t lifetime,
                  const std::array<uint8_t, 12> &nonce, unsigned timeout_ms) {
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.fd < 0) throw Error(PP_ERR_IO, std::string("socket: ") + std::strerror(errno));
    sockaddr_in gw{};
    gw.sin_family = AF_INET;
    gw.sin_port = htons(kPcpPort);
    if (::inet_pton(AF_INET, gateway.c_str(), &gw.sin_addr) != 1)
        throw Error(PP_ERR_INVALID_ARGUMENT, "gateway '" + gateway + "' is not an IPv4 address");
    if (::connect(s.fd, reinterpret_cast<sockaddr *>(&gw), sizeof gw) != 0)
        throw Error(PP_ERR_UNREACHABLE, "cannot reach gateway " + gateway + ": " + std::strerror(errno));
    sockaddr_in self{};
    socklen_t self_len = sizeof self;
    ::getsockname(s.fd, reinterpret_cast<sockaddr *>(&self), &self_len);

    uint8_t req[60] = {};
    req[0] = 2;  // version
    req[1] = 1;  // MAP
    uint32_t lt = htonl(lifetime);
    std::memcpy(req + 4, &lt, 4);
    req[18] = req[19] = 0xff;  // client address as ::ffff:a.b.c.d
    std::memcpy(req + 20, &self.sin_addr, 4);
    std::memcpy(req + 24, nonce.data(), 12);
    req[36] = IPPROTO_UDP;
    uint16_t ip = htons(internal_port), sp = htons(suggested_port);
    std::memcpy(req + 40, &ip, 2);
    std::memcpy(req + 42, &sp, 2);
    req[54] = req[55] = 0xff;  // suggested external address ::ffff:0.0.0.0: any

    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    auto next_send = Clock::now();
    auto interval = std::chrono::milliseconds(250);
    uint8_t buf[1100];
    for (;;) {
        auto now = Clock::now();
        if (now >= deadline)
            throw Error(PP_ERR_UNREACHABLE, "gateway " + gateway + " did not answer within " +
                                                std::to_string(timeout_ms) + " ms");
        if (now >= next_send) {
            ::send(s.fd, req, sizeof req, 0);
            next_send = now + interval;
            interval *= 2;
        }
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(deadline, next_send) - now);
        pollfd p{s.fd, POLLIN, 0};
        if (::poll(&p, 1, int(wait.count()) + 1) <= 0) continue;
        ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == ECONNREFUSED)
                throw Error(PP_ERR_UNREACHABLE, "gateway " + gateway + " refused (nothing listens on UDP 5351)");
            continue;
        }
        auto reply = parse_pcp_reply(std::span(buf, size_t(n)), nonce, internal_port);
        if (reply.kind == PcpReply::ignore) continue;
        if (reply.kind == PcpReply::natpmp_only)
            throw Error(PP_ERR_UNSUPPORTED, "gateway " + gateway + " speaks NAT-PMP, not PCP");
        if (reply.kind == PcpReply::refused)
            throw Error(PP_ERR_UNREACHABLE,
                        "gateway " + gateway + " refused the mapping: " + pcp_result_text(reply.result));
        PcpAnswer a;
        a.lifetime = reply.lifetime;
        a.external_port = reply.external_port;
        a.external_ip = reply.external_ip;
        char mine[INET_ADDRSTRLEN] = "";
        ::inet_ntop(AF_INET, &self.sin_addr, mine, sizeof mine);
        a.client_ip = mine;
        return a;
    }
}

Mapping pcp_new(uint16_t port, const Options &o) {
    Mapping m;
    m.protocol = Protocol::pcp;
    m.gateway = gateway_of(o);
    random_bytes(m.pcp_nonce);
    auto a = pcp_map(m.gateway, port, port, o.lifetime_s, m.pcp_nonce, o.timeout_ms);
    m.external_ip = a.external_ip;
    m.external_port = a.external_port;
    m.internal_ip = a.client_ip;
    m.internal_port = port;
    m.lifetime_s = a.lifetime;
    return m;
}

// ---- NAT-PMP (RFC 6886) through libnatpmp --------------------------------------------------------

struct NatPmp {
    natpmp_t n{};
    std::string gateway;
    explicit NatPmp(const std::string &gw) : gateway(gw) {
        in_addr addr{};
        if (::inet_pton(AF_INET, gw.c_str(), &addr) != 1)
            throw Error(PP_ERR_INVALID_ARGUMENT, "gateway '" + gw + "' is not an IPv4 address");
        if (int rc = initnatpmp(&n, 1, addr.s_addr); rc < 0)
            throw Error(PP_ERR_IO, std::string("NAT-PMP: ") + strnatpmperr(rc));
    }
    ~NatPmp() { closenatpmp(&n); }
    NatPmp(const NatPmp &) = delete;
    NatPmp &operator=(const NatPmp &) = delete;

    // Waits for the answer to the request just sent, retransmitting on libnatpmp's schedule but
    // within our own deadline (its own gives up after about two minutes). A response that does
    // not answer this request is skipped (natpmp_read_answer).
    natpmpresp_t answer(uint16_t type, uint16_t internal_port, unsigned timeout_ms) {
        auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            natpmpresp_t r{};
            int rc = natpmp_read_answer(n, r, type, internal_port);
            if (rc >= 0) return r;
            if (rc != NATPMP_TRYAGAIN) {
                if (errno == ECONNREFUSED || rc == NATPMP_ERR_RECVFROM)
                    throw Error(PP_ERR_UNREACHABLE, "gateway " + gateway + " refused (nothing listens on UDP 5351)");
                throw Error(PP_ERR_UNREACHABLE, "gateway " + gateway + ": " + strnatpmperr(rc));
            }
            auto now = Clock::now();
            if (now >= deadline)
                throw Error(PP_ERR_UNREACHABLE, "gateway " + gateway + " did not answer within " +
                                                    std::to_string(timeout_ms) + " ms");
            timeval tv{};
            getnatpmprequesttimeout(&n, &tv);
            long wait_ms = tv.tv_sec * 1000 + tv.tv_usec / 1000;
            long left = long(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count());
            pollfd p{n.s, POLLIN, 0};
            ::poll(&p, 1, int(std::clamp(wait_ms, 1L, left + 1)));
        }
    }
    std::string public_address(unsigned timeout_ms) {
        if (int rc = sendpublicaddressrequest(&n); rc < 0)
            throw Error(PP_ERR_UNREACHABLE, "gateway " + gateway + ": " + strnatpmperr(rc));
        auto r = answer(NATPMP_RESPTYPE_PUBLICADDRESS, 0, timeout_ms);
        char text[INET_ADDRSTRLEN] = "";
        ::inet_ntop(AF_INET, &r.pnu.publicaddress.addr, text, sizeof text);
        return text;
    }
    natpmpresp_t map(uint16_t internal, uint16_t external, uint32_t lifetime, unsigned timeout_ms) {
        if (int rc = sendnewportmappingrequest(&n, NATPMP_PROTOCOL_UDP, internal, external, lifetime); rc < 0)
            throw Error(PP_ERR_UNREACHABLE, "gateway " + gateway + ": " + strnatpmperr(rc));
        return answer(NATPMP_RESPTYPE_UDPPORTMAPPING, internal, timeout_ms);
    }
    std::string local_ip() const {
        sockaddr_in self{};
        socklen_t len = sizeof self;
        ::getsockname(n.s, reinterpret_cast<sockaddr *>(&self), &len);
        char text[INET_ADDRSTRLEN] = "";
        ::inet_ntop(AF_INET, &self.sin_addr, text, sizeof text);
        return text;
    }
};

Mapping natpmp_new(uint16_t port, const Options &o) {
    Mapping m;
    m.protocol = Protocol::natpmp;
    m.gateway = gateway_of(o);
    NatPmp pmp(m.gateway);
    m.external_ip = pmp.public_address(o.timeout_ms);
    auto r = pmp.map(port, port, o.lifetime_s, o.timeout_ms);
    m.external_port = r.pnu.newportmapping.mappedpublicport;
    m.lifetime_s = r.pnu.newportmapping.lifetime;
    m.internal_ip = pmp.local_ip();
    m.internal_port = port;
    return m;
}

// ---- UPnP-IGD through miniupnpc ----------------------------------------------------------------

struct DevList {
    UPNPDev *list = nullptr;
    ~DevList() {
        if (list) freeUPNPDevlist(list);
    }
};
struct Urls {
    UPNPUrls urls{};
    bool filled = false;
    ~Urls() {
        if (filled) FreeUPNPUrls(&urls);
    }
};

struct Igd {
    Urls urls;
    IGDdatas data{};
    std::string lan_ip, external_ip;
};

// SSDP discovery (waits `timeout_ms` for answers), then the first connected IGD's description.
void upnp_find(Igd &igd, unsigned timeout_ms) {
    int error = 0;
    DevList devs;
    // miniupnpc searches one device type after the other and listens `delay` ms for each (and
    // again after every answer), so the budget is split between the two IGD versions; its own
    // default list of five types would take five times the budget on a LAN without UPnP.
    static const char *const kTypes[] = {"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                                         "urn:schemas-upnp-org:device:InternetGatewayDevice:2", nullptr};
    devs.list = upnpDiscoverDevices(kTypes, int(std::max(timeout_ms / 2, 100u)), nullptr, nullptr,
                                    UPNP_LOCAL_PORT_ANY, 0, 2, &error, 0);
    if (!devs.list) throw Error(PP_ERR_UNREACHABLE, "no UPnP device answered the SSDP search");
    char lan[64] = "";
    int r = UPNP_GetValidIGD(devs.list, &igd.urls.urls, &igd.data, lan, sizeof lan);
    igd.urls.filled = r != 0;
    if (r == 0) throw Error(PP_ERR_UNREACHABLE, "UPnP devices answered, but none is an Internet Gateway Device");
    if (r == 3) throw Error(PP_ERR_UNREACHABLE, "a UPnP device answered that is not an Internet Gateway Device");
    if (r == 2) throw Error(PP_ERR_UNREACHABLE, "the Internet Gateway Device says its WAN link is down");
    igd.lan_ip = lan;
    char ext[64] = "";
    if (int rc = UPNP_GetExternalIPAddress(igd.urls.urls.controlURL, igd.data.first.servicetype, ext);
        rc != UPNPCOMMAND_SUCCESS)
        throw Error(PP_ERR_UNREACHABLE, std::string("the gateway does not tell its external address: ") + strupnperror(rc));
    igd.external_ip = ext;
}

void upnp_add(const std::string &control, const std::string &service, const std::string &lan_ip, uint16_t port,
              uint16_t &external, uint32_t &lifetime) {
    std::string ext = std::to_string(external), in = std::to_string(port), lease = std::to_string(lifetime);
    int rc = UPNP_AddPortMapping(control.c_str(), service.c_str(), ext.c_str(), in.c_str(), lan_ip.c_str(),
                                 kDescription, "UDP", nullptr, lease.c_str());
    if (rc == 725) {  // OnlyPermanentLeasesSupported: the gateway keeps it until we delete it
        lifetime = 0;
        rc = UPNP_AddPortMapping(control.c_str(), service.c_str(), ext.c_str(), in.c_str(), lan_ip.c_str(),
                                 kDescription, "UDP", nullptr, "0");
    }
    if (rc == 718) {  // ConflictInMappingEntry: the port is taken; IGDv2 picks a free one
        char reserved[8] = "";
        rc = UPNP_AddAnyPortMapping(control.c_str(), service.c_str(), ext.c_str(), in.c_str(), lan_ip.c_str(),
                                    kDescription, "UDP", nullptr, lease.c_str(), reserved);
        if (rc == UPNPCOMMAND_SUCCESS) external = uint16_t(std::atoi(reserved));
    }
    if (rc != UPNPCOMMAND_SUCCESS)
        throw Error(PP_ERR_UNREACHABLE, "the gateway refused the mapping: " + std::string(strupnperror(rc)) +
                                            " (" + std::to_string(rc) + ")");
}

Mapping upnp_new(uint16_t port, const Options &o) {
    Igd igd;
    upnp_find(igd, o.timeout_ms);
    Mapping m;
    m.protocol = Protocol::upnp;
    m.upnp_control_url = igd.urls.urls.controlURL;
    m.upnp_service_type = igd.data.first.servicetype;
    m.gateway = m.upnp_control_url;
    m.external_ip = igd.external_ip;
    m.internal_ip = igd.lan_ip;
    m.internal_port = port;
    m.external_port = port;
    m.lifetime_s = o.lifetime_s;
    upnp_add(m.upnp_control_url, m.upnp_service_type, m.internal_ip, port, m.external_port, m.lifetime_s);
    return m;
}

Mapping map_with(Protocol p, uint16_t port, const Options &o) {
    switch (p) {
    case Protocol::pcp: return pcp_new(port, o);
    case Protocol::natpmp: return natpmp_new(port, o);
    case Protocol::upnp: return upnp_new(port, o);
    }
    throw Error(PP_ERR_INVALID_ARGUMENT, "unknown port-mapping protocol");
}

} // namespace

const char *name(Protocol p) {
    switch (p) {
    case Protocol::pcp: return "PCP";
    case Protocol::natpmp: return "NAT-PMP";
    case Protocol::upnp: return "UPnP-IGD";
    }
    return "?";
}

std::string default_gateway() {
    // /proc/net/route: Iface Destination Gateway Flags ...; hex in host byte order.
    std::ifstream f("/proc/net/route");
    std::string line;
    std::getline(f, line);
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string iface, dest, gw;
        unsigned flags = 0;
        if (!(in >> iface >> dest >> gw >> std::hex >> flags)) continue;
        if (dest != "00000000" || !(flags & 0x2)) continue;  // RTF_GATEWAY
        in_addr a{};
        a.s_addr = uint32_t(std::stoul(gw, nullptr, 16));
        char text[INET_ADDRSTRLEN] = "";
        ::inet_ntop(AF_INET, &a, text, sizeof text);
        return text;
    }
    return "";
}

std::optional<Options> options_from_environment() {
    Options o;
    // The lease to ask for: a knob for tests that watch a renewal happen in seconds.
    if (const char *lt = std::getenv("PIXELPASS_PORTMAP_LIFETIME"); lt && *lt) {
        char *end = nullptr;
        long v = std::strtol(lt, &end, 10);
        if (*end || v < 1 || v > 86400)
            throw Error(PP_ERR_INVALID_ARGUMENT, "PIXELPASS_PORTMAP_LIFETIME: '" + std::string(lt) +
                                                     "' is not a number of seconds (1-86400)");
        o.lifetime_s = uint32_t(v);
    }
    const char *env = std::getenv("PIXELPASS_PORTMAP");
    if (!env || !*env) return o;
    std::string list = env;
    if (list == "off") return std::nullopt;
    o.protocols.clear();
    size_t at = 0;
    while (at <= list.size()) {
        size_t comma = std::min(list.find(',', at), list.size());
        std::string p = list.substr(at, comma - at);
        if (p == "pcp") o.protocols.push_back(Protocol::pcp);
        else if (p == "natpmp") o.protocols.push_back(Protocol::natpmp);
        else if (p == "upnp") o.protocols.push_back(Protocol::upnp);
        else if (!p.empty())
            throw Error(PP_ERR_INVALID_ARGUMENT,
                        "PIXELPASS_PORTMAP: '" + p + "' is not off, pcp, natpmp or upnp (comma-separated)");
        at = comma + 1;
    }
    return o;
}

Mapping map_udp(uint16_t internal_port, const Options &options) {
    std::string why;
    for (Protocol p : options.protocols) {
        try {
            return map_with(p, internal_port, options);
        } catch (const Error &e) {
            why += (why.empty() ? "" : "; ") + std::string(name(p)) + ": " + e.what();
        }
    }
    throw Error(PP_ERR_UNREACHABLE, why.empty() ? "no port-mapping protocol enabled" : why);
}

void renew(Mapping &m, const Options &o) {
    switch (m.protocol) {
    case Protocol::pcp: {
        auto a = pcp_map(m.gateway, m.internal_port, m.external_port, o.lifetime_s, m.pcp_nonce, o.timeout_ms);
        m.external_ip = a.external_ip;
        m.external_port = a.external_port;
        m.lifetime_s = a.lifetime;
        return;
    }
    case Protocol::natpmp: {
        NatPmp pmp(m.gateway);
        auto r = pmp.map(m.internal_port, m.external_port, o.lifetime_s, o.timeout_ms);
        m.external_port = r.pnu.newportmapping.mappedpublicport;
        m.lifetime_s = r.pnu.newportmapping.lifetime;
        return;
    }
    case Protocol::upnp: {
        uint32_t lifetime = o.lifetime_s;
        upnp_add(m.upnp_control_url, m.upnp_service_type, m.internal_ip, m.internal_port, m.external_port, lifetime);
        m.lifetime_s = lifetime;
        return;
    }
    }
}

void unmap(const Mapping &m, const Options &o) {
    switch (m.protocol) {
    case Protocol::pcp:
        pcp_map(m.gateway, m.internal_port, 0, 0, m.pcp_nonce, o.timeout_ms);
        return;
    case Protocol::natpmp: {
        NatPmp pmp(m.gateway);
        pmp.map(m.internal_port, 0, 0, o.timeout_ms);
        return;
    }
    case Protocol::upnp: {
        std::string ext = std::to_string(m.external_port);
        int rc = UPNP_DeletePortMapping(m.upnp_control_url.c_str(), m.upnp_service_type.c_str(), ext.c_str(), "UDP",
                                        nullptr);
        if (rc != UPNPCOMMAND_SUCCESS)
            throw Error(PP_ERR_UNREACHABLE, "the gateway did not delete the mapping: " + std::string(strupnperror(rc)));
        return;
    }
    }
}

std::vector<Availability> probe(const Options &options) {
    // A real mapping of a throwaway port, deleted at once: a gateway that answers but refuses to
    // map (miniupnpd with a reserved WAN address, a router with UPnP "read-only") is not available.
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in any{};
    any.sin_family = AF_INET;
    socklen_t len = sizeof any;
    if (s.fd < 0 || ::bind(s.fd, reinterpret_cast<sockaddr *>(&any), sizeof any) != 0 ||
        ::getsockname(s.fd, reinterpret_cast<sockaddr *>(&any), &len) != 0)
        throw Error(PP_ERR_IO, std::string("cannot open a UDP socket: ") + std::strerror(errno));
    uint16_t port = ntohs(any.sin_port);
    Options once = options;
    once.lifetime_s = 60;
    std::vector<Availability> out;
    for (Protocol p : options.protocols) {
        Availability a;
        a.protocol = p;
        try {
            Mapping m = map_with(p, port, once);
            a.available = true;
            a.external_ip = m.external_ip;
            a.detail = "gateway " + m.gateway + " mapped " + m.external_ip + ":" + std::to_string(m.external_port) +
                       " to " + m.internal_ip + ":" + std::to_string(port);
            try {
                unmap(m, once);
            } catch (const Error &e) {
                a.detail += std::string(" (deleting the test mapping failed: ") + e.what() + "; it expires in 60 s)";
            }
        } catch (const Error &e) {
            a.detail = e.what();
        }
        out.push_back(std::move(a));
    }
    return out;
}

// ---- Keeper ------------------------------------------------------------------------------------

Keeper::Keeper(uint16_t internal_port, Options options, Log log)
    : port_(internal_port), options_(std::move(options)), log_(std::move(log)), thread_([this] { run(); }) {}

Keeper::~Keeper() {
    {
        std::lock_guard lock(m_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

std::optional<Mapping> Keeper::wait(std::chrono::milliseconds limit) {
    std::unique_lock lock(m_);
    cv_.wait_for(lock, limit, [this] { return first_done_; });
    return mapping_;
}

nlohmann::json Keeper::stats() const {
    std::lock_guard lock(m_);
    nlohmann::json j{{"state", mapping_ ? "mapped" : first_done_ ? "failed" : "trying"}, {"renewals", renewals_}};
    if (mapping_) {
        j["protocol"] = name(mapping_->protocol);
        j["external"] = mapping_->external_ip + ":" + std::to_string(mapping_->external_port);
        j["internal"] = mapping_->internal_ip + ":" + std::to_string(mapping_->internal_port);
        j["gateway"] = mapping_->gateway;
        j["lifetime_s"] = mapping_->lifetime_s;
    }
    if (first_done_) j["map_ms"] = map_ms_;
    if (!error_.empty()) j["error"] = error_;
    return j;
}

void Keeper::run() {
    auto started = Clock::now();
    std::optional<Mapping> got;
    std::string why;
    try {
        got = map_udp(port_, options_);
    } catch (const Error &e) {
        why = e.what();
    }
    {
        std::lock_guard lock(m_);
        mapping_ = got;
        error_ = why;
        first_done_ = true;
        map_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    }
    cv_.notify_all();
    if (!got) {
        if (log_) log_(false, "no port mapping (" + why + ")");
        return;
    }
    if (log_)
        log_(false, std::string(name(got->protocol)) + " port mapping " + got->external_ip + ":" +
                        std::to_string(got->external_port) + " -> UDP " + std::to_string(port_));
    // Renew at half the granted lease (a permanent UPnP lease, 0, needs none), retrying sooner when
    // the gateway did not answer.
    for (;;) {
        std::chrono::seconds next{got->lifetime_s ? std::max<uint32_t>(got->lifetime_s / 2, 5) : 24 * 3600};
        {
            std::unique_lock lock(m_);
            if (cv_.wait_for(lock, next, [this] { return stop_; })) break;
        }
        try {
            renew(*got, options_);
            std::lock_guard lock(m_);
            mapping_ = got;
            ++renewals_;
            error_.clear();
        } catch (const Error &e) {
            {
                std::lock_guard lock(m_);
                error_ = std::string("renewal failed: ") + e.what();
            }
            if (log_) log_(true, "port mapping renewal failed: " + std::string(e.what()));
            got->lifetime_s = std::max<uint32_t>(got->lifetime_s / 2, 10);
        }
    }
    try {
        unmap(*got, options_);
    } catch (const Error &e) {
        if (log_) log_(true, "port mapping not deleted: " + std::string(e.what()));
    }
}

} // namespace pp::nat::portmap
