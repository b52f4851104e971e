#include <chrono>
#include <future>
#include <thread>

#include "common/random.hpp"
#include "rendezvous/rendezvous.hpp"

namespace pp::rendezvous {

namespace {

using Clock = std::chrono::steady_clock;

// Waits until the node knows at least one other node (its put would else only land in its own
// storage and say "done" at once), or the deadline passes.
bool wait_connected(net::Loop &loop, Rendezvous &node, Clock::time_point deadline) {
    while (Clock::now() < deadline) {
        auto stats = loop.call([&] { return node.stats(); });
        if (stats.value("nodes", 0u) > 0 && stats.value("status", "") == "connected") return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

} // namespace

Reachability probe_dht(const std::vector<std::string> &bootstrap, unsigned timeout_ms) {
    Reachability r;
    net::Loop loop("pp-dht-probe");
    // Two nodes: one puts, the other reads back, so the value has crossed the network.
    auto writer = join_dht(loop, bootstrap);
    auto reader = join_dht(loop, bootstrap);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    Key key;
    random_bytes(key);
    std::vector<uint8_t> value(32);
    random_bytes(value);
    if (!wait_connected(loop, *writer, Clock::now() + timeout) || !wait_connected(loop, *reader, Clock::now() + timeout)) {
        r.detail = "no DHT node answered within " + std::to_string(timeout_ms) + " ms";
    } else {
        auto put = std::make_shared<std::promise<std::pair<bool, unsigned>>>();
        auto put_done = put->get_future();
        loop.call([&] { writer->put(key, value, [put](bool ok, unsigned ms) { put->set_value({ok, ms}); }); });
        if (put_done.wait_for(timeout) != std::future_status::ready) {
            r.detail = "no DHT node stored a value within " + std::to_string(timeout_ms) + " ms";
        } else if (auto [ok, ms] = put_done.get(); !ok) {
            r.put_ms = ms;
            r.detail = "the DHT refused or lost the value (" + std::to_string(ms) + " ms)";
        } else {
            r.put_ms = ms;
            auto got = std::make_shared<std::promise<std::pair<bool, unsigned>>>();
            auto got_done = got->get_future();
            loop.call([&] {
                reader->get(key, [got, value](std::vector<Rendezvous::Value> values, bool, unsigned gms) {
                    bool found = false;
                    for (const auto &v : values) found |= v == value;
                    got->set_value({found, gms});
                });
            });
            if (got_done.wait_for(timeout) != std::future_status::ready) {
                r.detail = "another node did not find the value within " + std::to_string(timeout_ms) + " ms";
            } else if (auto [found, gms] = got_done.get(); !found) {
                r.get_ms = gms;
                r.detail = "another node did not find the value stored";
            } else {
                r.get_ms = gms;
                r.ok = true;
            }
        }
    }
    auto stats = loop.call([&] { return writer->stats(); });
    r.nodes = stats.value("nodes", 0u);
    if (!r.ok && !stats["unresolved"].empty()) r.detail += " (did not resolve: " + stats["unresolved"].dump() + ")";
    loop.call([&] {
        writer.reset();
        reader.reset();
    });
    return r;
}

} // namespace pp::rendezvous
