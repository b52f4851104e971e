// net/address: one socket address (IPv4 or IPv6 plus port) as a comparable, printable value.
// Dual-stack sockets see IPv4 peers as v4-mapped IPv6 (::ffff:a.b.c.d); ip()/to_string() print
// those as plain IPv4 so users never see the mapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <netinet/in.h>
#include <sys/socket.h>

namespace pp::net {

class Address {
public:
    Address() = default;
    Address(const sockaddr *sa, socklen_t len);

    // A numeric IPv4 or IPv6 address ("192.0.2.1", "::1", "fe80::1%eth0"). Throws
    // pp::Error(PP_ERR_INVALID_ARGUMENT) for anything else (no DNS).
    static Address parse(std::string_view ip, uint16_t port);
    // The wildcard address of `family` (AF_INET or AF_INET6).
    static Address any(int family, uint16_t port);

    bool empty() const { return len_ == 0; }
    int family() const { return storage_.ss_family; }
    uint16_t port() const;
    void set_port(uint16_t port);

    bool is_v4_mapped() const;
    bool is_loopback() const;
    bool is_link_local() const;
    bool is_any() const;
    // The IPv4 address as ::ffff:a.b.c.d (for a dual-stack socket); other addresses unchanged.
    Address to_v4_mapped() const;
    // ::ffff:a.b.c.d as plain IPv4; other addresses unchanged.
    Address unmapped() const;

    std::string ip() const;         // "192.0.2.1", "2001:db8::1"
    std::string to_string() const;  // "192.0.2.1:4433", "[2001:db8::1]:4433"

    const sockaddr *sa() const { return reinterpret_cast<const sockaddr *>(&storage_); }
    sockaddr *sa() { return reinterpret_cast<sockaddr *>(&storage_); }
    socklen_t len() const { return len_; }
    // For filling by recvmsg/getsockname: the buffer and its capacity, then set_len().
    socklen_t capacity() const { return sizeof storage_; }
    void set_len(socklen_t len) { len_ = len; }

    bool operator==(const Address &other) const;

private:
    sockaddr_storage storage_{};
    socklen_t len_ = 0;
};

} // namespace pp::net
