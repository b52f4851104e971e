#include "net/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>

#include <cstring>

#include "common/error.hpp"

namespace pp::net {

Address::Address(const sockaddr *sa, socklen_t len) {
    if (!sa || len == 0 || len > sizeof storage_) return;
    std::memcpy(&storage_, sa, len);
    len_ = len;
}

Address Address::parse(std::string_view text, uint16_t port) {
    std::string ip(text);
    Address out;
    sockaddr_in v4{};
    if (inet_pton(AF_INET, ip.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        return Address(reinterpret_cast<sockaddr *>(&v4), sizeof v4);
    }
    sockaddr_in6 v6{};
    std::string host = ip;
    uint32_t scope = 0;
    if (auto pct = ip.find('%'); pct != std::string::npos) {
        host = ip.substr(0, pct);
        std::string zone = ip.substr(pct + 1);
        scope = if_nametoindex(zone.c_str());
        if (scope == 0) {
            char *end = nullptr;
            unsigned long n = std::strtoul(zone.c_str(), &end, 10);
            if (end && *end == '\0' && !zone.empty()) scope = static_cast<uint32_t>(n);
        }
    }
    if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        v6.sin6_scope_id = scope;
        return Address(reinterpret_cast<sockaddr *>(&v6), sizeof v6);
    }
    throw Error(PP_ERR_INVALID_ARGUMENT, "'" + ip + "' is not a numeric IPv4 or IPv6 address");
}

Address Address::any(int family, uint16_t port) {
    if (family == AF_INET6) {
        sockaddr_in6 v6{};
        v6.sin6_family = AF_INET6;
        v6.sin6_addr = in6addr_any;
        v6.sin6_port = htons(port);
        return Address(reinterpret_cast<sockaddr *>(&v6), sizeof v6);
    }
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_addr.s_addr = htonl(INADDR_ANY);
    v4.sin_port = htons(port);
    return Address(reinterpret_cast<sockaddr *>(&v4), sizeof v4);
}

uint16_t Address::port() const {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in *>(&storage_)->sin_port);
    if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6 *>(&storage_)->sin6_port);
    return 0;
}

void Address::set_port(uint16_t port) {
    if (family() == AF_INET) reinterpret_cast<sockaddr_in *>(&storage_)->sin_port = htons(port);
    if (family() == AF_INET6) reinterpret_cast<sockaddr_in6 *>(&storage_)->sin6_port = htons(port);
}

bool Address::is_v4_mapped() const {
    return family() == AF_INET6 &&
           IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<const sockaddr_in6 *>(&storage_)->sin6_addr);
}

bool Address::is_loopback() const {
    Address a = unmapped();
    if (a.family() == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in *>(a.sa())->sin_addr.s_addr) >> 24) == 127;
    if (a.family() == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6 *>(a.sa())->sin6_addr);
    return false;
}

bool Address::is_link_local() const {
    Address a = unmapped();
    if (a.family() == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in *>(a.sa())->sin_addr.s_addr) >> 16) == 0xa9fe;
    if (a.family() == AF_INET6)
        return IN6_IS_ADDR_LINKLOCAL(&reinterpret_cast<const sockaddr_in6 *>(a.sa())->sin6_addr);
    return false;
}

bool Address::is_any() const {
    if (family() == AF_INET)
        return reinterpret_cast<const sockaddr_in *>(&storage_)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (family() == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6 *>(&storage_)->sin6_addr);
    return false;
}

Address Address::to_v4_mapped() const {
    if (family() != AF_INET) return *this;
    const auto *v4 = reinterpret_cast<const sockaddr_in *>(&storage_);
    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = v4->sin_port;
    v6.sin6_addr.s6_addr[10] = 0xff;
    v6.sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&v6.sin6_addr.s6_addr[12], &v4->sin_addr, 4);
    return Address(reinterpret_cast<sockaddr *>(&v6), sizeof v6);
}

Address Address::unmapped() const {
    if (!is_v4_mapped()) return *this;
    const auto *v6 = reinterpret_cast<const sockaddr_in6 *>(&storage_);
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_port = v6->sin6_port;
    std::memcpy(&v4.sin_addr, &v6->sin6_addr.s6_addr[12], 4);
    return Address(reinterpret_cast<sockaddr *>(&v4), sizeof v4);
}

std::string Address::ip() const {
    Address a = unmapped();
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
    if (a.family() == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(a.sa())->sin_addr, buf, sizeof buf);
        return buf;
    }
    if (a.family() == AF_INET6) {
        const auto *v6 = reinterpret_cast<const sockaddr_in6 *>(a.sa());
        inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
        std::string s = buf;
        if (v6->sin6_scope_id != 0) {
            char name[IF_NAMESIZE] = {};
            s += '%';
            s += if_indextoname(v6->sin6_scope_id, name) ? name : std::to_string(v6->sin6_scope_id);
        }
        return s;
    }
    return "";
}

std::string Address::to_string() const {
    Address a = unmapped();
    if (a.family() == AF_INET6) return "[" + a.ip() + "]:" + std::to_string(a.port());
    if (a.family() == AF_INET) return a.ip() + ":" + std::to_string(a.port());
    return "(none)";
}

bool Address::operator==(const Address &other) const {
    if (family() != other.family()) return false;
    if (family() == AF_INET) {
        const auto *a = reinterpret_cast<const sockaddr_in *>(&storage_);
        const auto *b = reinterpret_cast<const sockaddr_in *>(&other.storage_);
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (family() == AF_INET6) {
        const auto *a = reinterpret_cast<const sockaddr_in6 *>(&storage_);
        const auto *b = reinterpret_cast<const sockaddr_in6 *>(&other.storage_);
        return a->sin6_port == b->sin6_port && a->sin6_scope_id == b->sin6_scope_id &&
               std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    return len_ == other.len_;
}

} // namespace pp::net
