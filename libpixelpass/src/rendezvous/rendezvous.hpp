// rendezvous/: how a viewer tells a host behind a NAT where to punch, with no relay between them.
//
// The interface is a store of short-lived values under a key (put, listen, get), small on purpose
// so another rendezvous than OpenDHT could stand behind it. Values are opaque here: seal.hpp makes
// and checks them. Called on the loop thread; every callback runs on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/loop.hpp"
#include "rendezvous/seal.hpp"

namespace pp::rendezvous {

class Rendezvous {
public:
    virtual ~Rendezvous() = default;
    using Value = std::vector<uint8_t>;
    // Every value stored at `key` from now on (and those already there), one call each.
    virtual void listen(const Key &key, std::function<void(const Value &)> on_value) = 0;
    // Stores `value` at `key`; `done(ok, ms)` once the network acknowledged it (or gave up).
    virtual void put(const Key &key, Value value, std::function<void(bool ok, unsigned ms)> done) = 0;
    // The values at `key` now; `done(values, ok, ms)`.
    virtual void get(const Key &key, std::function<void(std::vector<Value>, bool ok, unsigned ms)> done) = 0;
    // {"kind", "bootstrap", "status", "nodes", "puts", "values_received", ...}
    virtual nlohmann::json stats() const = 0;
};

// The DHT nodes a user's peers join when none are configured: the public OpenDHT network (Jami's
// bootstrap). Empty when PIXELPASS_DEFAULT_DHT=off (the test suite sets it: no test reaches out).
std::vector<std::string> default_bootstrap();

// Joins OpenDHT through `bootstrap` ("HOST:PORT" entries, resolved here: call it off the loop).
// Its node runs on a thread of its own and hands every callback to `loop`. Throws
// pp::Error(PP_ERR_INVALID_ARGUMENT) for a malformed entry; an entry that does not resolve is
// skipped and named in stats()["unresolved"].
std::unique_ptr<Rendezvous> join_dht(net::Loop &loop, const std::vector<std::string> &bootstrap);

} // namespace pp::rendezvous

namespace pp::rendezvous {

// doctor's check: joins through `bootstrap`, puts a random value at a random key and gets it
// back from a second node, so it crossed the network. Blocks up to about 4 × timeout_ms; call it
// off any loop.
struct Reachability {
    bool ok = false;
    unsigned put_ms = 0, get_ms = 0;
    size_t nodes = 0;       // DHT nodes known when done
    std::string detail;     // what failed
};
Reachability probe_dht(const std::vector<std::string> &bootstrap, unsigned timeout_ms);

} // namespace pp::rendezvous
