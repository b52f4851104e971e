// viewer/link_watch: asks the host every couple of seconds how the viewer's path fares (GET /link,
// ratecontrol/link_report) while a stream runs, and reports when the verdict changes: "the path
// carries too little for this stream" once, and once again when it carries it again. A host that
// does not answer /link (an older one) is asked once only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http3/client.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "ratecontrol/link_report.hpp"

namespace pp::viewer {

class LinkWatch {
public:
    static constexpr uint64_t kPollNs = 2'000'000'000;

    using SessionGetter = std::function<http3::ClientSession *()>;
    // A change of verdict, with the report it came from (as JSON) for the event's details.
    using NoticeSink = std::function<void(const ratecontrol::PathVerdict::Notice &, const nlohmann::json &)>;

    // Construct on the loop thread; polling starts at once. `auth` goes with every request.
    LinkWatch(net::Loop &loop, SessionGetter session, std::vector<http3::Header> auth, NoticeSink notices);
    ~LinkWatch();
    LinkWatch(const LinkWatch &) = delete;
    LinkWatch &operator=(const LinkWatch &) = delete;

    // The verdict and the last report (ratecontrol::PathVerdict::stats), plus "supported": false
    // once the host answered /link with anything but a report.
    nlohmann::json stats() const;
    bool too_poor() const { return verdict_.too_poor(); }

private:
    struct Handler;

    void tick();
    void answered(int status, std::string body);

    SessionGetter session_;
    std::vector<http3::Header> auth_;
    NoticeSink notices_;
    std::unique_ptr<net::Timer> timer_;
    std::shared_ptr<Handler> pending_;  // the request in flight, if any
    ratecontrol::PathVerdict verdict_;
    bool supported_ = true;
    uint64_t failures_ = 0;  // answers that were not a report (bad status or body)
};

} // namespace pp::viewer
