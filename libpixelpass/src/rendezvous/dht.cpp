// The OpenDHT side of rendezvous/: the only file that includes OpenDHT's headers.
#include <opendht.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>

#include "common/error.hpp"
#include "nat/agent.hpp"
#include "rendezvous/rendezvous.hpp"

namespace pp::rendezvous {

namespace {

constexpr uint16_t kDefaultDhtPort = 4222;

unsigned ms_since(std::chrono::steady_clock::time_point t) {
    return static_cast<unsigned>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count());
}

// What both threads share: the DHT thread only posts to the loop, and the loop drops what comes
// after the node is gone.
struct Shared {
    explicit Shared(net::Loop &l) : loop(l) {}
    net::Loop &loop;
    std::atomic<bool> alive{true};
    std::atomic<uint64_t> values_received{0}, puts_ok{0}, puts_failed{0};
    std::atomic<unsigned> last_put_ms{0}, last_get_ms{0};
    std::atomic<dht::NodeStatus> status{dht::NodeStatus::Disconnected};  // the better of IPv4 and IPv6

};

class OpenDht final : public Rendezvous {
public:
    OpenDht(net::Loop &loop, std::vector<std::string> bootstrap, std::vector<dht::SockAddr> nodes,
            std::vector<std::string> unresolved)
        : bootstrap_(std::move(bootstrap)), unresolved_(std::move(unresolved)) {
        shared_ = std::make_shared<Shared>(loop);
        dht::DhtRunner::Config config;
        config.threaded = true;
        runner_.setOnStatusChanged([shared = shared_](dht::NodeStatus v4, dht::NodeStatus v6) {
            shared->status = std::max(v4, v6);
        });
        runner_.run(0, config);  // any free port, IPv4 and IPv6
        if (!nodes.empty()) runner_.bootstrap(std::move(nodes));
    }

    ~OpenDht() override {
        shared_->alive = false;
        runner_.join();  // no DHT callback runs after this
    }

    void listen(const Key &key, std::function<void(const Value &)> on_value) override {
        auto shared = shared_;
        runner_.listen(dht::InfoHash(key.data(), key.size()),
                       [shared, on_value](const std::vector<std::shared_ptr<dht::Value>> &values, bool expired) {
                           if (expired) return true;
                           for (const auto &v : values) {
                               ++shared->values_received;
                               Value data(v->data.begin(), v->data.end());
                               Shared *s = shared.get();
                               s->loop.post([shared, on_value, data = std::move(data)] {
                                   if (shared->alive) on_value(data);
                               });
                           }
                           return shared->alive.load();
                       });
    }

    void put(const Key &key, Value value, std::function<void(bool, unsigned)> done) override {
        auto shared = shared_;
        auto started = std::chrono::steady_clock::now();
        runner_.put(dht::InfoHash(key.data(), key.size()), dht::Value(value.data(), value.size()),
                    [shared, done, started](bool ok) {
                        unsigned ms = ms_since(started);
                        ++(ok ? shared->puts_ok : shared->puts_failed);
                        shared->last_put_ms = ms;
                        shared->loop.post([shared, done, ok, ms] {
                            if (shared->alive && done) done(ok, ms);
                        });
                    });
    }

    void get(const Key &key, std::function<void(std::vector<Value>, bool, unsigned)> done) override {
        auto shared = shared_;
        auto started = std::chrono::steady_clock::now();
        auto got = std::make_shared<std::vector<Value>>();
        auto mutex = std::make_shared<std::mutex>();
        runner_.get(
            dht::InfoHash(key.data(), key.size()),
            [got, mutex](const std::vector<std::shared_ptr<dht::Value>> &values) {
                std::lock_guard lock(*mutex);
                for (const auto &v : values) got->emplace_back(v->data.begin(), v->data.end());
                return true;
            },
            [shared, done, started, got, mutex](bool ok) {
                unsigned ms = ms_since(started);
                shared->last_get_ms = ms;
                std::vector<Value> values;
                {
                    std::lock_guard lock(*mutex);
                    values = *got;
                }
                shared->loop.post([shared, done, ok, ms, values = std::move(values)]() mutable {
                    if (shared->alive && done) done(std::move(values), ok, ms);
                });
            });
    }

    nlohmann::json stats() const override {
        unsigned good = 0, dubious = 0, cached = 0, incoming = 0;
        runner_.getNodesStats(AF_INET, &good, &dubious, &cached, &incoming);
        return {{"kind", "opendht"},
                {"bootstrap", bootstrap_},
                {"unresolved", unresolved_},
                {"status", dht::statusToStr(shared_->status.load())},
                {"port", runner_.getBoundPort(AF_INET)},
                {"nodes", good + dubious},
                {"values_received", shared_->values_received.load()},
                {"puts", shared_->puts_ok.load()},
                {"puts_failed", shared_->puts_failed.load()},
                {"last_put_ms", shared_->last_put_ms.load()}};
    }

private:
    std::vector<std::string> bootstrap_, unresolved_;
    std::shared_ptr<Shared> shared_;
    mutable dht::DhtRunner runner_;
};

} // namespace

std::vector<std::string> default_bootstrap() {
    const char *env = std::getenv("PIXELPASS_DEFAULT_DHT");
    if (env && std::string_view(env) == "off") return {};
    return {"bootstrap.jami.net:4222"};
}

std::unique_ptr<Rendezvous> join_dht(net::Loop &loop, const std::vector<std::string> &bootstrap) {
    std::vector<dht::SockAddr> nodes;
    std::vector<std::string> unresolved;
    for (const auto &entry : bootstrap) {
        std::vector<net::Address> found;
        try {
            found = nat::resolve(entry, kDefaultDhtPort);
        } catch (const Error &e) {
            throw Error(PP_ERR_INVALID_ARGUMENT, std::string("DHT bootstrap ") + e.what());
        }
        if (found.empty()) unresolved.push_back(entry);
        for (const auto &a : found) nodes.emplace_back(a.sa(), a.len());
    }
    return std::make_unique<OpenDht>(loop, bootstrap, std::move(nodes), std::move(unresolved));
}

} // namespace pp::rendezvous
