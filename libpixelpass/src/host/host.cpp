#include "host/host.hpp"

#include <ctime>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/random.hpp"
#include "ticket/ticket.hpp"

namespace pp {

Host::Host(HostConfig config, EventSink events)
    : config_(std::move(config)), events_(std::move(events)), identity_(Identity::generate()),
      secret_(PP_SECRET_MIN_SIZE) {
    random_bytes(secret_);
}

Host::~Host() = default;

void Host::start() {
    throw Error(PP_ERR_UNSUPPORTED,
                "hosting is not implemented yet: the QUIC tunnel lands with the tunnel issue");
}

void Host::stop() {}

std::string Host::ticket_text() const {
    std::lock_guard lock(mutex_);
    ticket::Ticket t;
    t.fingerprint = identity_->fingerprint();
    t.secret = secret_;
    if (config_.ticket_lifetime_s > 0) t.expiry = static_cast<int64_t>(time(nullptr)) + config_.ticket_lifetime_s;
    return ticket::encode(t);
}

std::string Host::stats_json() const {
    nlohmann::json j;
    j["fingerprint"] = identity_->fingerprint_hex();
    j["running"] = false;
    j["viewers"] = nlohmann::json::array();
    return j.dump();
}

} // namespace pp
