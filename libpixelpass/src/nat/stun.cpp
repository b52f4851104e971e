#include "nat/stun.hpp"

#include <cstring>

#include <gnutls/crypto.h>

#include "common/random.hpp"
#include "ticket/crc32.hpp"

namespace pp::nat::stun {

namespace {

constexpr uint32_t kFingerprintXor = 0x5354554e;

void put16(std::vector<uint8_t> &b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void put32(std::vector<uint8_t> &b, uint32_t v) {
    put16(b, static_cast<uint16_t>(v >> 16));
    put16(b, static_cast<uint16_t>(v));
}
uint16_t get16(const uint8_t *p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t *p) { return uint32_t{get16(p)} << 16 | get16(p + 2); }

// The 14-bit message type interleaves the class bits C1 (bit 8) and C0 (bit 4) into the method.
uint16_t message_type(Method m, Class c) {
    auto mv = static_cast<uint16_t>(m), cv = static_cast<uint16_t>(c);
    return static_cast<uint16_t>((mv & 0x0f) | ((mv & 0x70) << 1) | ((mv & 0xf80) << 2) | ((cv & 1) << 4) |
                                 ((cv & 2) << 7));
}

} // namespace

TransactionId new_transaction_id() {
    TransactionId t;
    random_bytes(t);
    return t;
}

std::vector<uint8_t> long_term_key(std::string_view username, std::string_view realm,
                                   std::string_view password) {
    std::string s = std::string(username) + ":" + std::string(realm) + ":" + std::string(password);
    std::vector<uint8_t> key(16);
    gnutls_hash_fast(GNUTLS_DIG_MD5, s.data(), s.size(), key.data());
    return key;
}

Builder::Builder(Method method, Class cls, const TransactionId &tid) {
    buf_.reserve(128);
    put16(buf_, message_type(method, cls));
    put16(buf_, 0);
    put32(buf_, kMagicCookie);
    buf_.insert(buf_.end(), tid.begin(), tid.end());
}

Builder &Builder::add(uint16_t type, std::span<const uint8_t> value) {
    put16(buf_, type);
    put16(buf_, static_cast<uint16_t>(value.size()));
    buf_.insert(buf_.end(), value.begin(), value.end());
    while (buf_.size() % 4) buf_.push_back(0);
    return *this;
}

Builder &Builder::add(uint16_t type, std::string_view value) {
    return add(type, {reinterpret_cast<const uint8_t *>(value.data()), value.size()});
}

Builder &Builder::add_u32(uint16_t type, uint32_t value) {
    uint8_t b[4] = {static_cast<uint8_t>(value >> 24), static_cast<uint8_t>(value >> 16),
                    static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value)};
    return add(type, b);
}

Builder &Builder::add_xor_address(uint16_t type, const net::Address &address) {
    net::Address a = address.unmapped();
    std::vector<uint8_t> v;
    v.push_back(0);
    uint16_t port = a.port() ^ static_cast<uint16_t>(kMagicCookie >> 16);
    if (a.family() == AF_INET) {
        v.push_back(0x01);
        put16(v, port);
        auto *sin = reinterpret_cast<const sockaddr_in *>(a.sa());
        uint32_t ip = ntohl(sin->sin_addr.s_addr) ^ kMagicCookie;
        put32(v, ip);
    } else {
        v.push_back(0x02);
        put16(v, port);
        auto *sin6 = reinterpret_cast<const sockaddr_in6 *>(a.sa());
        uint8_t mask[16];
        std::memcpy(mask, buf_.data() + 4, 16);  // cookie + transaction id
        for (int i = 0; i < 16; ++i) v.push_back(sin6->sin6_addr.s6_addr[i] ^ mask[i]);
    }
    return add(type, v);
}

void Builder::set_length(size_t body) {
    buf_[2] = static_cast<uint8_t>(body >> 8);
    buf_[3] = static_cast<uint8_t>(body);
}

std::vector<uint8_t> Builder::finish(std::span<const uint8_t> key, bool fingerprint) {
    if (!key.empty()) {
        // The length field covers MESSAGE-INTEGRITY itself when the HMAC is computed.
        set_length(buf_.size() - kHeaderSize + 24);
        uint8_t mac[20];
        gnutls_hmac_fast(GNUTLS_MAC_SHA1, key.data(), key.size(), buf_.data(), buf_.size(), mac);
        add(attr::message_integrity, mac);
    }
    if (fingerprint) {
        set_length(buf_.size() - kHeaderSize + 8);
        uint32_t crc = ticket::crc32(buf_) ^ kFingerprintXor;
        add_u32(attr::fingerprint, crc);
    }
    set_length(buf_.size() - kHeaderSize);
    return std::move(buf_);
}

const Message::Attribute *Message::find(uint16_t type) const {
    for (const auto &a : attributes)
        if (a.type == type) return &a;
    return nullptr;
}

std::optional<net::Address> Message::xor_address(uint16_t type) const {
    const Attribute *a = find(type);
    if (!a || a->value.size() < 8) return std::nullopt;
    const uint8_t *v = a->value.data();
    uint16_t port = get16(v + 2) ^ static_cast<uint16_t>(kMagicCookie >> 16);
    if (v[1] == 0x01) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sin.sin_addr.s_addr = htonl(get32(v + 4) ^ kMagicCookie);
        return net::Address(reinterpret_cast<sockaddr *>(&sin), sizeof sin);
    }
    if (v[1] == 0x02 && a->value.size() >= 20) {
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(port);
        for (int i = 0; i < 16; ++i) sin6.sin6_addr.s6_addr[i] = v[4 + i] ^ raw[4 + i];
        return net::Address(reinterpret_cast<sockaddr *>(&sin6), sizeof sin6);
    }
    return std::nullopt;
}

std::optional<uint32_t> Message::u32(uint16_t type) const {
    const Attribute *a = find(type);
    if (!a || a->value.size() < 4) return std::nullopt;
    return get32(a->value.data());
}

std::string Message::text(uint16_t type) const {
    const Attribute *a = find(type);
    if (!a) return {};
    return {reinterpret_cast<const char *>(a->value.data()), a->value.size()};
}

int Message::error_code(std::string *reason) const {
    const Attribute *a = find(attr::error_code);
    if (!a || a->value.size() < 4) return 0;
    const uint8_t *v = a->value.data();
    // RFC 8489 14.8: class 3..6 and number 0..99. Anything else is malformed, not a code that
    // happens to add up (class 3 number 101 must not read as 401).
    int cls = v[2] & 0x07, number = v[3];
    if (cls < 3 || cls > 6 || number > 99) return 0;
    if (reason) reason->assign(reinterpret_cast<const char *>(v + 4), a->value.size() - 4);
    return cls * 100 + number;
}

bool Message::integrity_ok(std::span<const uint8_t> key) const {
    const Attribute *mi = find(attr::message_integrity);
    if (!mi || mi->value.size() != 20) return false;
    std::vector<uint8_t> copy(raw.begin(), raw.begin() + static_cast<ptrdiff_t>(mi->offset));
    size_t len = mi->offset - kHeaderSize + 24;
    copy[2] = static_cast<uint8_t>(len >> 8);
    copy[3] = static_cast<uint8_t>(len);
    uint8_t mac[20];
    gnutls_hmac_fast(GNUTLS_MAC_SHA1, key.data(), key.size(), copy.data(), copy.size(), mac);
    uint8_t diff = 0;
    for (int i = 0; i < 20; ++i) diff |= mac[i] ^ mi->value[i];
    return diff == 0;
}

namespace {
constexpr uint16_t kMessageIntegritySha256 = 0x001c;
} // namespace

std::optional<Message> parse(std::span<const uint8_t> data) {
    if (data.size() < kHeaderSize || (data[0] & 0xc0) != 0) return std::nullopt;
    if (get32(data.data() + 4) != kMagicCookie) return std::nullopt;
    size_t len = get16(data.data() + 2);
    if (len % 4 || kHeaderSize + len != data.size()) return std::nullopt;
    Message m;
    m.raw = data;
    uint16_t type = get16(data.data());
    uint16_t method = static_cast<uint16_t>((type & 0x0f) | ((type >> 1) & 0x70) | ((type >> 2) & 0xf80));
    m.method = static_cast<Method>(method);
    m.cls = static_cast<Class>(((type >> 4) & 1) | ((type >> 7) & 2));
    std::memcpy(m.tid.data(), data.data() + 8, 12);
    size_t off = kHeaderSize;
    bool after_integrity = false, after_fingerprint = false;
    while (off + 4 <= data.size()) {
        uint16_t at = get16(data.data() + off), alen = get16(data.data() + off + 2);
        if (off + 4 + alen > data.size()) return std::nullopt;
        // RFC 8489 14.5/14.7: what follows MESSAGE-INTEGRITY is not covered by it, so only
        // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may; FINGERPRINT is the last attribute.
        if (after_fingerprint) return std::nullopt;
        if (after_integrity && at != attr::fingerprint && at != kMessageIntegritySha256) return std::nullopt;
        after_integrity |= at == attr::message_integrity;
        after_fingerprint |= at == attr::fingerprint;
        m.attributes.push_back({at, data.subspan(off + 4, alen), off});
        if (at == attr::fingerprint) {
            if (alen != 4) return std::nullopt;
            std::vector<uint8_t> copy(data.begin(), data.begin() + static_cast<ptrdiff_t>(off));
            size_t flen = off - kHeaderSize + 8;
            copy[2] = static_cast<uint8_t>(flen >> 8);
            copy[3] = static_cast<uint8_t>(flen);
            if ((ticket::crc32(copy) ^ kFingerprintXor) != get32(data.data() + off + 4)) return std::nullopt;
        }
        off += 4 + ((alen + 3u) & ~3u);
    }
    if (off != data.size()) return std::nullopt;
    return m;
}

} // namespace pp::nat::stun
