#include "host/host.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <cstdlib>
#include <ctime>
#include <cmath>
#include <map>
#include <set>
#include <thread>

#include <gnutls/crypto.h>
#include <nlohmann/json.hpp>

#include "capture/capture.hpp"
#include "common/error.hpp"
#include "common/hex.hpp"
#include "common/random.hpp"
#include "fanout/fanout.hpp"
#include "gather/gather.hpp"
#include "http3/server.hpp"
#include "media/media.hpp"
#include "nat/agent.hpp"
#include "nat/guess.hpp"
#include "nat/portmap.hpp"
#include "nat/path_offer.hpp"
#include "nat/paths.hpp"
#include "nat/turn.hpp"
#include "net/interfaces.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "ratecontrol/link_report.hpp"
#include "ratecontrol/ratecontrol.hpp"
#include "net/udp.hpp"
#include "publish/publisher.hpp"
#include "pixelpass_version.h"
#include "quic/endpoint.hpp"
#include "rendezvous/advice.hpp"
#include "rendezvous/punch.hpp"
#include "rendezvous/rendezvous.hpp"
#include "stream/keyframe_budget.hpp"
#include "stream/synthetic.hpp"
#include "ticket/ticket.hpp"

namespace pp {

namespace {

// How often the adaptive bitrate looks at the viewers: fast enough to react within 3 s.
constexpr uint64_t kRateTick = 500'000'000;  // ns
// Port guessing's fan on the host starts this long after the offer (see guess_toward).
constexpr unsigned kHostFanDelayMs = 1000;

// The Source that config.source names: the synthetic generator (endless, paced to bitrate_kbps
// when given, else as fast as viewers read), or the media pipeline behind its fan-out, fed by the
// capture source. Missing plugins and encoders throw here, so the host fails at start.
std::shared_ptr<stream::Source> make_source(const HostConfig &config, EventSink media_events) {
    if (config.source == "synthetic") {
        stream::SyntheticConfig sc;
        sc.rate_bps = static_cast<uint64_t>(config.bitrate_kbps) * 1000;
        return std::make_shared<stream::SyntheticSource>(sc);
    }
    auto capture = capture::make_capture_source(config, media_events);  // warnings, portal log lines
    return media::make_source(config, std::move(media_events), std::move(capture));
}

std::string machine_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "pixelpass host";
    return buf;
}

// "Bearer <token>" against the token the ticket grants (ticket::access_token), in time
// independent of where they differ.
bool authorized(std::string_view header, const std::string &expected) {
    constexpr std::string_view kScheme = "bearer ";
    if (header.size() < kScheme.size()) return false;
    for (size_t i = 0; i < kScheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
    std::string_view hex = header.substr(kScheme.size());
    while (!hex.empty() && hex.front() == ' ') hex.remove_prefix(1);
    // Compare against a same-length copy so the time depends on the length only.
    uint8_t diff = hex.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < expected.size(); ++i) {
        char c = i < hex.size() ? static_cast<char>(std::tolower(static_cast<unsigned char>(hex[i]))) : 0;
        diff |= static_cast<uint8_t>(c ^ expected[i]);
    }
    return diff == 0;
}

} // namespace

struct Host::Core {
    HostConfig config;
    std::shared_ptr<Identity> identity;
    std::vector<uint8_t> secret;
    int64_t expiry = 0;        // the ticket's, Unix seconds; 0 = never
    std::string access_token;  // ticket::access_token(secret, expiry): what viewers must send
    bool expired = false;      // the expiry passed: every request is refused
    std::unique_ptr<net::Timer> expiry_timer;
    std::shared_ptr<stream::Source> source;
    fanout::FanoutSource *media = nullptr;  // `source` when it is the media fan-out
    EventSink events;
    bool events_open = true;  // loop thread only
    unsigned max_viewers = kDefaultMaxViewers;
    std::string name;

    std::unique_ptr<net::Loop> loop;
    std::unique_ptr<quic::Endpoint> endpoint;
    std::unique_ptr<nat::Agent> agent;  // STUN on the endpoint's socket
    std::unique_ptr<nat::TurnClient> turn;  // the relay allocation, when one is configured
    std::unique_ptr<nat::portmap::Keeper> portmap;  // the gateway's port mapping (own thread)
    std::unique_ptr<publish::Publisher> publisher;  // media servers fed beside the viewers
    std::unique_ptr<net::Waker> waker;
    quic::CongestionControl congestion_control = quic::kDefaultCongestionControl;
    uint16_t port = 0;
    std::vector<std::pair<std::string, uint16_t>> direct_candidates;  // what /paths offers
    std::vector<uint8_t> probe_key;
    std::unique_ptr<nat::ProbeBudget> probe_budget;  // shared by every PeerPaths (nat/probe_budget): outlives them
    std::map<uint64_t, std::unique_ptr<nat::PeerPaths>> paths;  // by connection id
    std::unique_ptr<rendezvous::Rendezvous> rendezvous;  // where viewers leave their candidates
    std::unique_ptr<rendezvous::Puncher> puncher;        // probes toward them
    uint64_t rendezvous_ignored = 0;                     // values that were no offer of ours
    std::unique_ptr<nat::guess::Guesser> guesser;        // port guessing toward offers that need it
    std::string own_nat = "unknown";                     // as the ticket shows it (advice host_nat_kind)
    // Adaptive bitrate (media sources only): the controller, its tick, the rate last applied.
    std::unique_ptr<ratecontrol::Controller> rate;
    std::unique_ptr<net::Timer> rate_timer;
    unsigned applied_kbps = 0;
    int64_t applied_unix_ms = 0;  // when the encoder last got a new bitrate (wall clock, for tests and logs)
    std::string rate_off;              // why the encoder's bitrate cannot follow; empty = it does
    std::set<uint64_t> told_too_slow;  // viewers already warned that their path is too poor

    struct Viewer {
        uint64_t id;
        std::string address;
        int64_t joined;
        std::string found;  // how its path was found, as it joined
        // Its joins force a keyframe on everybody's stream at most once per 2 s.
        stream::KeyframeBudget keyframes{};
    };
    std::map<uint64_t, Viewer> viewers;  // by connection id: admitted viewers
    bool ticket_used = false;            // config.one_viewer: a viewer was admitted
    uint64_t next_viewer_id = 1;
    struct Totals {
        uint64_t requests = 0, joined = 0, refused_full = 0, refused_auth = 0, bytes_sent = 0, drops = 0;
        uint64_t refused_expired = 0, ended_expired = 0, refused_streams = 0, refusals_not_logged = 0;
        uint64_t keyframes_refused = 0, refused_one_viewer = 0, refused_paths = 0;
    } totals;
    double refusal_tokens = 10;  // token bucket of VIEWER_REFUSED events (see refusal_logged())
    std::chrono::steady_clock::time_point refusal_refill = std::chrono::steady_clock::now();

    ~Core() {
        if (loop) loop->call([this] { shutdown(false); });
        // Deletes the gateway's mapping (blocking, so off the loop thread); its log lines still
        // reach the loop, which runs until below.
        portmap.reset();
        publisher.reset();  // its readers keep the media pipeline running
        // The media source posts its events to the loop: stop it (joining its threads) while the
        // loop still runs.
        media = nullptr;
        source.reset();
        loop.reset();
    }

    void emit(Event e) {
        if (events_open && events) events(e);
    }

    void shutdown(bool announce) {
        if (!announce) events_open = false;
        publisher.reset();  // publishing stops with sharing
        if (endpoint) endpoint->close_all(http3::kNoError, "host stopped");
        paths.clear();  // their routes point into the TURN client
        guesser.reset();  // its fan sockets route the main socket's peers
        expiry_timer.reset();
        puncher.reset();
        rendezvous.reset();  // joins the DHT thread; nothing of it runs afterwards
        turn.reset();
        agent.reset();
        endpoint.reset();
        waker.reset();
        rate_timer.reset();
        if (announce) emit({PP_EVENT_STOPPED, PP_LOG_INFO, 0, PP_OK, "host stopped", "{}"});
        events_open = false;
    }

    http3::Response handle(quic::Connection &conn, const http3::Request &req) {
        ++totals.requests;
        std::string who = conn.remote().unmapped().to_string();
        if (auto refused = refuse_credentials(req, who)) return std::move(*refused);
        http3::Response r;
        if (req.method != "GET" && req.method != "HEAD") {
            r.status = 405;
            r.headers.push_back({"allow", "GET, HEAD"});
            return r;
        }
        auto it = viewers.find(conn.id());
        if (it == viewers.end()) {
            if (config.one_viewer && ticket_used) return refuse_used(who);
            if (viewers.size() >= max_viewers) return refuse_full(who);
            it = admit(conn, who);
            ticket_used = true;
        }
        if (req.path == "/stream.ts" && req.method == "GET" && streams_of(conn) >= max_streams_per_viewer()) {
            ++totals.refused_streams;
            r.status = 429;
            r.headers.push_back({"content-type", "application/json"});
            r.body = nlohmann::json{{"error", "too many streams"}, {"max_streams", max_streams_per_viewer()}}.dump();
            return r;
        }
        if (req.path == "/stream.ts") {
            r.headers.push_back({"content-type", "video/mp2t"});
            r.headers.push_back({"cache-control", "no-store"});
            if (req.method == "GET") {
                net::Waker *w = waker.get();
                auto &keyframes = it->second.keyframes;
                uint64_t refused_before = keyframes.refused();
                r.reader = source->subscribe([w] { w->wake(); }, &keyframes);
                totals.keyframes_refused += keyframes.refused() - refused_before;
            }
            return r;
        }
        if (req.path == "/paths") return offer_paths(conn, req, it->second);
        if (req.path == "/link") {
            // How this viewer's path fares, for the viewer to tell its user (ratecontrol/link_report).
            r.headers.push_back({"content-type", "application/json"});
            r.headers.push_back({"cache-control", "no-store"});
            r.body = ratecontrol::to_json(ratecontrol::report_for(rate_off.empty() ? rate.get() : nullptr, it->second.id,
                                                                    current_bitrate_kbps())).dump();
            return r;
        }
        if (req.path == "/info") {
            r.headers.push_back({"content-type", "application/json"});
            r.body = nlohmann::json{{"name", name},
                                    {"version", PIXELPASS_VERSION},
                                    {"stream", source->describe()},
                                    {"viewers", viewers.size()},
                                    {"max_viewers", max_viewers},
                                    {"found", it->second.found}}
                         .dump();
            return r;
        }
        r.status = 404;
        return r;
    }

    // An expired ticket or a wrong secret: 401 and the connection closes; nullopt when the
    // request may go on.
    std::optional<http3::Response> refuse_credentials(const http3::Request &req, const std::string &who) {
        http3::Response r;
        r.status = 401;
        r.close_connection = true;  // no second guess on this connection
        if (expired || (expiry != 0 && static_cast<int64_t>(time(nullptr)) >= expiry)) {
            // The wall clock may pass the expiry before the timer fires: checked on every request.
            ++totals.refused_expired;
            if (refusal_logged())
                emit({PP_EVENT_VIEWER_REFUSED, PP_LOG_WARNING, 0, PP_ERR_TICKET_EXPIRED,
                      "refused " + who + ": the ticket expired",
                      nlohmann::json{{"reason", "ticket expired"}, {"address", who}}.dump()});
            return r;
        }
        if (!authorized(req.authorization, access_token)) {
            // Nothing else: no body, no hint. The offered value is never logged.
            ++totals.refused_auth;
            if (refusal_logged())
                emit({PP_EVENT_VIEWER_REFUSED, PP_LOG_WARNING, 0, PP_ERR_TICKET_REJECTED,
                      "refused " + who + ": wrong or missing ticket secret",
                      nlohmann::json{{"reason", "ticket rejected"}, {"address", who}}.dump()});
            return r;
        }
        return std::nullopt;
    }

    // A one-viewer ticket that already admitted its viewer: 403 and the connection closes.
    http3::Response refuse_used(const std::string &who) {
        ++totals.refused_one_viewer;
        if (refusal_logged())
            emit({PP_EVENT_VIEWER_REFUSED, PP_LOG_WARNING, 0, PP_ERR_TICKET_REJECTED,
                  "refused " + who + ": the one-viewer ticket was already used",
                  nlohmann::json{{"reason", "one-viewer ticket used"}, {"address", who}}.dump()});
        http3::Response r;
        r.status = 403;
        r.close_connection = true;
        r.headers.push_back({"content-type", "application/json"});
        bool watching = !viewers.empty();  // else that viewer left: the ticket is spent
        r.body = nlohmann::json{{"error", watching ? "this ticket admits one viewer and one is already watching"
                                                   : "this ticket admitted one viewer, who has left: ask the host for a new ticket"},
                                {"one_viewer", true},
                                {"watching", watching}}
                     .dump();
        return r;
    }

    http3::Response refuse_full(const std::string &who) {
        ++totals.refused_full;
        http3::Response r;
        r.status = 503;
        r.close_connection = true;
        r.headers.push_back({"content-type", "application/json"});
        r.body = nlohmann::json{{"error", "host is full"}, {"max_viewers", max_viewers}, {"viewers", viewers.size()}}.dump();
        emit({PP_EVENT_VIEWER_REFUSED, PP_LOG_WARNING, 0, PP_ERR_HOST_FULL,
              "refused " + who + ": host is full (" + std::to_string(viewers.size()) + "/" + std::to_string(max_viewers) + ")",
              nlohmann::json{{"reason", "host is full"}, {"address", who}, {"max_viewers", max_viewers},
                             {"viewers", viewers.size()}}.dump()});
        return r;
    }

    // A connection's first authorized request: it becomes a viewer.
    std::map<uint64_t, Viewer>::iterator admit(quic::Connection &conn, const std::string &who) {
        Viewer v{next_viewer_id++, who, static_cast<int64_t>(time(nullptr)), found_of(conn)};
        auto it = viewers.emplace(conn.id(), v).first;
        endpoint->mark_authenticated(conn.id());  // out of the pre-auth limits
        if (guesser) guesser->settle(conn.remote());  // connected: no more guessing toward it
        ++totals.joined;
        emit({PP_EVENT_VIEWER_JOINED, PP_LOG_INFO, v.id, PP_OK, "viewer " + std::to_string(v.id) + " joined from " + who,
              nlohmann::json{{"path", path_of(conn)}, {"found", v.found}, {"address", who}}.dump()});
        return it;
    }

    // Anyone can make the host refuse them, so refusal events (log lines) come at most 10 at once
    // and one per second after; totals.refused_* count every refusal.
    bool refusal_logged() {
        auto now = std::chrono::steady_clock::now();
        refusal_tokens = std::min(10.0, refusal_tokens + std::chrono::duration<double>(now - refusal_refill).count());
        refusal_refill = now;
        if (refusal_tokens < 1) {
            ++totals.refusals_not_logged;
            return false;
        }
        refusal_tokens -= 1;
        return true;
    }

    // Concurrent GET /stream.ts on one connection: each is a reader on the source (and may force a
    // keyframe for everybody), so one ticket holder gets a few, not 32.
    unsigned max_streams_per_viewer() const { return config.max_streams_per_viewer ? config.max_streams_per_viewer : 2; }
    size_t streams_of(quic::Connection &conn) const {
        auto *s = dynamic_cast<http3::ServerSession *>(conn.app());
        return s ? s->stats().streaming : 0;
    }

    std::string path_of(const quic::Connection &conn) const {
        auto p = paths.find(conn.id());
        if (p != paths.end()) return nat::path_kind_name(p->second->kind());
        if (guesser && guesser->guessed(conn.remote())) return "direct";  // routed through a fan socket
        return endpoint->socket().routed(conn.remote()) ? "relayed" : "direct";
    }

    // How the connection's path was found: "dht-punched" (a rendezvous offer made us punch toward
    // it), "relay-punched" (candidates traded over the relay), "guessed" (port guessing after an
    // offer), "relayed", else "direct".
    std::string found_of(const quic::Connection &conn) const {
        auto p = paths.find(conn.id());
        if (p != paths.end() && p->second->kind() == nat::PathKind::punched) return "relay-punched";
        if (guesser && guesser->guessed(conn.remote())) return "guessed";
        if (path_of(conn) == "relayed") return "relayed";
        if (puncher && puncher->punched(conn.remote())) return "dht-punched";
        return "direct";
    }

    // As it joined, unless punching over the relay has moved it since.
    std::string found_now(const quic::Connection &conn, const Viewer &v) const {
        std::string now = found_of(conn);
        return now == "relay-punched" || now == "relayed" ? now : v.found;
    }

    // A value at our rendezvous key: a viewer's sealed candidates, or anything else (ignored).
    void on_rendezvous(const rendezvous::Rendezvous::Value &value) {
        auto offer = rendezvous::open(value, secret, static_cast<int64_t>(time(nullptr)));
        if (!offer || !puncher) {
            ++rendezvous_ignored;
            return;
        }
        if (!puncher->punch(*offer)) return;
        emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK,
              "rendezvous: a viewer (NAT: " + offer->nat + ") offered " + std::to_string(offer->candidates.size()) +
                  " candidates; punching toward them",
              nlohmann::json{{"nat", offer->nat}, {"candidates", offer->candidates.size()}}.dump()});
        guess_toward(*offer);
    }

    // Port guessing (nat/guess) when one NAT is symmetric and the other a cone: we fan or spray
    // toward the viewer's public address, the first of its offer (reflexive ones come first).
    void guess_toward(const rendezvous::Offer &offer) {
        if (!guesser || offer.candidates.empty()) return;
        std::string role = nat::guess::role(own_nat, offer.nat);
        const net::Address peer = offer.candidates.front().unmapped();
        if (role.empty()) return;
        for (auto *c : endpoint->connections())
            if (c->remote().unmapped().ip() == peer.ip()) return;  // already here another way
        // Our fan waits a moment: against a milder cone NAT the punch above gets the viewer in by
        // itself, and a fan's route would then take that connection's packets.
        bool started = role == "fan" ? guesser->fan(offer.session, peer, kHostFanDelayMs) : guesser->spray(offer.session, peer);
        if (started)
            emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK,
                  "rendezvous: our NAT is " + own_nat + ", the viewer's " + offer.nat + ": port guessing (" + role +
                      ") toward " + peer.ip(),
                  nlohmann::json{{"role", role}}.dump()});
    }

    // GET /paths with the viewer's candidates (header pixelpass-paths, JSON): answers with ours
    // and starts probing toward the viewer's, for hole punching and failover to the relay.
    http3::Response offer_paths(quic::Connection &conn, const http3::Request &req, const Viewer &v) {
        http3::Response r;
        r.headers.push_back({"content-type", "application/json"});
        nlohmann::json answer{{"candidates", nlohmann::json::array()}};
        std::string offer_text;
        for (const auto &h : req.headers)
            if (h.name == "pixelpass-paths") offer_text = h.value;
        auto offer = nat::parse_path_offer(offer_text);
        if (!offer) {
            r.status = 400;
            r.body = nlohmann::json{{"error", "malformed pixelpass-paths header"}}.dump();
            return r;
        }
        const std::string &session = offer->session;
        // --relay-only stays on the relay; without a relay there is nothing to fall back to.
        if (config.relay_only || !turn || !turn->allocated() || session.size() < 16 || session.size() > 64) {
            r.body = answer.dump();
            return r;
        }
        for (const auto &[ip, port] : direct_candidates) answer["candidates"].push_back({ip, port});
        answer["relayed"] = {turn->relayed().ip(), turn->relayed().port()};
        r.body = answer.dump();
        if (paths.count(conn.id())) return r;  // asked again: the probing already runs
        if (auto refused = refuse_probing(offer->candidates.size())) return std::move(*refused);
        nat::PeerPaths::Options o;
        o.virtual_remote = conn.remote();
        o.virtual_local = conn.local();
        o.started_relayed = endpoint->socket().routed(conn.remote());
        o.key = probe_key;
        o.session = session;
        o.shared_budget = probe_budget.get();
        uint64_t viewer_id = v.id, conn_id = conn.id();
        auto p = std::make_unique<nat::PeerPaths>(*loop, endpoint->socket(), *agent, turn.get(), o,
                                                  [this, viewer_id, conn_id](nat::PathKind kind, const net::Address &via) {
                                                      path_changed(viewer_id, conn_id, kind, via);
                                                  });
        p->set_peer_relayed(offer->relayed);
        p->add_candidates(offer->candidates);
        paths.emplace(conn.id(), std::move(p));
        return r;
    }

    // A new peer's first punch probes all its candidates at once: when the host-wide budget
    // cannot pay for that now, the viewer gets 429 and may ask again (it keeps the relay path).
    std::optional<http3::Response> refuse_probing(size_t offered) {
        double first_round = static_cast<double>(std::min(offered, nat::kMaxPeerCandidates) + 1);
        if (probe_budget->bucket.available(net::monotonic_ns()) >= first_round) return std::nullopt;
        ++totals.refused_paths;
        unsigned retry_s = static_cast<unsigned>(std::ceil(first_round / probe_budget->per_second));
        http3::Response r;
        r.status = 429;
        r.headers.push_back({"content-type", "application/json"});
        r.headers.push_back({"retry-after", std::to_string(retry_s)});
        r.body = nlohmann::json{{"error", "the host is probing paths for too many viewers at once; ask again later"},
                                {"retry_after_s", retry_s}}
                     .dump();
        return r;
    }

    void path_changed(uint64_t viewer_id, uint64_t conn_id, nat::PathKind kind, const net::Address &via) {
        auto p = paths.find(conn_id);
        nlohmann::json j{{"path", nat::path_kind_name(kind)}, {"via", via.to_string()},
                         {"switches", p != paths.end() ? p->second->switches() : 0}};
        if (quic::Connection *c = endpoint->find(conn_id)) j["rtt_ms"] = c->stats().rtt_ms;
        emit({PP_EVENT_PATH_CHANGED, PP_LOG_INFO, viewer_id, PP_OK,
              "viewer " + std::to_string(viewer_id) + ": path " + nat::path_kind_name(kind) + " via " + via.to_string(),
              j.dump()});
    }

    nlohmann::json probe_stats(uint64_t conn_id) const {
        auto p = paths.find(conn_id);
        if (p == paths.end()) return nullptr;
        const auto &pc = p->second->counters();
        return {{"via", p->second->via().to_string()}, {"candidates", p->second->candidates()},
                {"sent", pc.probes_sent}, {"answered", pc.probes_answered}, {"answers", pc.answers_received},
                {"peer_reflexive", pc.peer_reflexive}, {"rounds", pc.punch_rounds},
                {"relay_permitted", p->second->relay_permitted()}, {"relay_unverified", pc.relay_unverified},
                {"deferred", pc.probes_deferred}, {"answers_refused", pc.answers_refused}};
    }

    bool on_probe(const nat::stun::Message &m, const net::Datagram &d) {
        for (auto &[id, p] : paths)
            if (p->on_stun(m, d)) return true;
        return guesser && guesser->on_stun(m, d);
    }

    void closed(quic::Connection &conn, const quic::CloseInfo &info) {
        paths.erase(conn.id());
        if (guesser) guesser->release(conn.remote());
        auto it = viewers.find(conn.id());
        if (it == viewers.end()) return;
        Viewer v = it->second;
        viewers.erase(it);
        uint64_t bytes = 0, drops = 0;
        if (auto *s = dynamic_cast<http3::ServerSession *>(conn.app())) {
            auto st = s->stats();
            bytes = st.body_bytes_acked;
            drops = st.drops;
        }
        totals.bytes_sent += bytes;
        totals.drops += drops;
        const bool ended_by_expiry = expired && info.kind == quic::CloseKind::local;
        if (ended_by_expiry) ++totals.ended_expired;
        std::string reason = ended_by_expiry ? "ticket expired"
                             : info.kind == quic::CloseKind::peer ? "disconnected"
                             : info.kind == quic::CloseKind::local ? "host stopped"
                                                                  : quic::close_kind_name(info.kind);
        emit({PP_EVENT_VIEWER_LEFT, PP_LOG_INFO, v.id, ended_by_expiry ? PP_ERR_TICKET_EXPIRED : PP_OK,
              "viewer " + std::to_string(v.id) + " left (" + reason + ")",
              nlohmann::json{{"reason", reason}, {"address", v.address}, {"bytes_sent", bytes}}.dump()});
    }

    nlohmann::json nat_stats() const {
        nlohmann::json reflexive = nlohmann::json::array();
        for (const auto &a : agent->reflexive()) reflexive.push_back(a.to_string());
        const auto &c = agent->counters();
        nlohmann::json relay = nullptr;
        if (turn) {
            const auto &t = turn->counters();
            relay = {{"server", turn->config().label},
                     {"allocated", turn->allocated()},
                     {"relayed", turn->allocated() ? turn->relayed().to_string() : ""},
                     {"tx_datagrams", t.tx_datagrams}, {"rx_datagrams", t.rx_datagrams},
                     {"tx_bytes", t.tx_bytes}, {"rx_bytes", t.rx_bytes}, {"refreshes", t.refreshes},
                     {"permissions", turn->permissions()}};
        }
        return {{"reflexive", reflexive},
                {"relay", relay},
                {"port_mapping", portmap ? portmap->stats() : nlohmann::json(nullptr)},
                {"paths", {{"probes_deferred", probe_budget ? probe_budget->deferred : 0}, {"peers", paths.size()}}},
                {"stun", {{"requests", c.requests_sent}, {"retransmits", c.retransmits},
                          {"answers", c.answers}, {"timeouts", c.timeouts},
                          {"bindings_answered", c.bindings_answered}, {"bindings_refused", c.bindings_refused}}}};
    }

    // Arms the end of the session's ticket: at its expiry every connection is closed with
    // ticket::kExpiredCloseCode (viewers report PP_ERR_TICKET_EXPIRED) and new requests get 401.
    void arm_expiry() {
        if (expiry == 0) return;
        expiry_timer = std::make_unique<net::Timer>(*loop, [this] { expire(); });
        auto now = std::chrono::system_clock::now().time_since_epoch();
        int64_t left_ns = expiry * 1'000'000'000 - std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
        expiry_timer->arm_at(net::monotonic_ns() + static_cast<uint64_t>(std::max<int64_t>(left_ns, 0)));
    }

    void expire() {
        expired = true;
        size_t ended = viewers.size();
        if (endpoint) endpoint->close_all(ticket::kExpiredCloseCode, "ticket expired");
        emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, PP_ERR_TICKET_EXPIRED,
              "the ticket expired: " + std::to_string(ended) + " viewer(s) disconnected, new viewers are refused; "
              "restart the host for a new ticket",
              nlohmann::json{{"reason", "ticket expired"}, {"viewers_ended", ended}}.dump()});
    }

    void wake_all() {
        if (!endpoint) return;
        for (auto *c : endpoint->connections())
            if (auto *s = dynamic_cast<http3::ServerSession *>(c->app())) s->resume_starved();
    }

    void start_rate_control() {
        if (!media || config.fixed_bitrate) return;
        ratecontrol::Options o;
        o.max_kbps = media->describe().value("bitrate_kbps", 6000u);
        rate = std::make_unique<ratecontrol::Controller>(o);
        applied_kbps = o.max_kbps;
        rate_timer = std::make_unique<net::Timer>(*loop, [this] { rate_tick(); });
        rate_timer->arm_at(net::monotonic_ns() + kRateTick);
    }

    // Every kRateTick: what each viewer received and how far behind it is, into the controller;
    // its answer to the encoder.
    void rate_tick() {
        rate_timer->arm_at(net::monotonic_ns() + kRateTick);
        if (!endpoint || !rate_off.empty()) return;
        std::vector<ratecontrol::Sample> samples;
        std::map<uint64_t, http3::ServerSession *> sessions;
        for (auto *c : endpoint->connections()) {
            auto it = viewers.find(c->id());
            auto *s = dynamic_cast<http3::ServerSession *>(c->app());
            if (it == viewers.end() || !s) continue;
            auto hs = s->stats();
            auto qs = c->stats();
            if (!hs.streaming) continue;
            samples.push_back({it->second.id, hs.body_bytes_acked, hs.backlog_ms, hs.drops, qs.delivery_rate_bps / 1000,
                               hs.held_bytes, qs.min_rtt_ms, hs.lost_packets, hs.padding_bytes, hs.padding_held_bytes});
            sessions[it->second.id] = s;
        }
        unsigned kbps = rate->update(samples, ratecontrol::Clock::now());
        for (const auto &v : rate->viewers())  // the controller's probes (ratecontrol::Options::probe_share)
            if (v.pad_bytes > 0 && sessions.count(v.id)) sessions[v.id]->pad(v.pad_bytes);
        if (kbps != applied_kbps) {
            if (media->set_bitrate(kbps, rate_off)) {
                applied_kbps = kbps;
                applied_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch()).count();
            } else {
                emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, PP_OK,
                      "adaptive bitrate is off: " + rate_off + "; the stream stays at the configured bitrate", "{}"});
                return;
            }
        }
        for (const auto &v : rate->viewers()) {
            if ((v.followed && !v.below_floor) || !told_too_slow.insert(v.id).second) continue;
            emit({PP_EVENT_LOG, PP_LOG_WARNING, v.id, PP_OK,
                  "viewer " + std::to_string(v.id) + "'s path carries about " +
                      std::to_string(std::lround(v.delivered_kbps())) + " kbit/s, too little for this stream (" +
                      std::to_string(applied_kbps) + " kbit/s" + (v.below_floor ? ", at the floor" : "") +
                      "): it skips ahead to keyframes",
                  "{}"});
        }
    }

    // The video bitrate the encoder runs at: what the controller last applied, else the configured one.
    unsigned current_bitrate_kbps() const {
        if (rate) return applied_kbps;
        return media ? media->describe().value("bitrate_kbps", 0u) : 0u;
    }

    nlohmann::json rate_stats() const {
        nlohmann::json j = rate ? rate->stats() : nlohmann::json::object();
        j["bitrate_kbps"] = rate ? nlohmann::json(applied_kbps) : nlohmann::json(nullptr);
        j["bitrate_changed_unix_ms"] = applied_unix_ms ? nlohmann::json(applied_unix_ms) : nlohmann::json(nullptr);
        j["adaptive"] = rate && rate_off.empty();
        if (!rate_off.empty()) j["off_because"] = rate_off;
        return j;
    }

    // One viewer's line of stats(); adds what its session sent and dropped to the totals.
    nlohmann::json viewer_stats(quic::Connection &c, const Viewer &v, uint64_t &bytes, uint64_t &drops) const {
        auto qs = c.stats();
        http3::ServerSession::Stats hs;
        if (auto *s = dynamic_cast<http3::ServerSession *>(c.app())) hs = s->stats();
        bytes += hs.body_bytes_acked;
        drops += hs.drops;
        return {{"id", v.id},
                {"address", v.address},
                {"path", path_of(c)},
                {"found", found_now(c, v)},
                {"rtt_ms", qs.rtt_ms},
                {"min_rtt_ms", qs.min_rtt_ms},
                {"cwnd", qs.cwnd},
                {"bytes_in_flight", qs.bytes_in_flight},
                {"delivery_rate_kbps", std::lround(qs.delivery_rate_bps / 1000)},
                {"congestion_events", qs.congestion_events},
                {"backlog_ms", hs.backlog_ms},
                {"held_bytes", hs.held_bytes},
                {"padding_bytes", hs.padding_bytes},  // rate control's filler, part of bytes_sent
                {"lost_packets", hs.lost_packets},
                // Approximate: every datagram sent counts (ACK-only ones too).
                {"loss_pct", qs.tx_datagrams ? 100.0 * static_cast<double>(hs.lost_packets) /
                                                   static_cast<double>(qs.tx_datagrams)
                                             : 0.0},
                {"skips", hs.drops},
                {"switches", paths.count(c.id()) ? paths.at(c.id())->switches() : 0},
                {"probes", probe_stats(c.id())},
                {"bytes_sent", hs.body_bytes_acked},
                {"drops", hs.drops},
                {"streams", hs.streaming},
                {"keyframes_forced", v.keyframes.forced()},
                {"keyframes_refused", v.keyframes.refused()},
                {"joined", v.joined}};
    }

    nlohmann::json stats() const {
        nlohmann::json list = nlohmann::json::array();
        uint64_t bytes = totals.bytes_sent, drops = totals.drops;
        if (endpoint)
            for (auto *c : endpoint->connections())
                if (auto it = viewers.find(c->id()); it != viewers.end()) list.push_back(viewer_stats(*c, it->second, bytes, drops));
        nlohmann::json j{{"running", endpoint != nullptr},
                         {"port", port},
                         {"max_viewers", max_viewers},
                         {"viewers", list},
                         {"totals",
                          {{"bytes_sent", bytes},
                           {"drops", drops},
                           {"requests", totals.requests},
                           {"viewers_joined", totals.joined},
                           {"refused_full", totals.refused_full},
                           {"refused_auth", totals.refused_auth},
                           {"refused_expired", totals.refused_expired},
                           {"ended_expired", totals.ended_expired},
                           {"refused_streams", totals.refused_streams},
                           {"keyframes_refused", totals.keyframes_refused},
                           {"refused_one_viewer", totals.refused_one_viewer},
                           {"refused_paths", totals.refused_paths},
                           {"refusals_not_logged", totals.refusals_not_logged}}}};
        j["expiry"] = expiry ? nlohmann::json(expiry) : nlohmann::json(nullptr);
        j["expired"] = expired;
        j["stream"] = source->describe();
        if (media) {
            // Pipeline state, encoder, ring occupancy, starts/stops of the capture.
            j["media"] = media->stats();
            j["encoder"] = j["media"]["producer"].value("encoder", nlohmann::json(nullptr));
            j["pipeline_state"] = j["media"]["producer"].value("state", nlohmann::json(nullptr));
        }
        if (endpoint) {
            const auto &u = endpoint->socket().counters();
            j["udp"] = {{"rx_datagrams", u.rx_datagrams}, {"tx_datagrams", u.tx_datagrams},
                        {"rx_bytes", u.rx_bytes},         {"tx_bytes", u.tx_bytes},
                        {"gso", u.gso},                   {"gro", u.gro}};
            const auto &q = endpoint->counters();
            j["quic"] = {{"accepted", q.accepted},           {"refused_full", q.refused_full},
                         {"retries_sent", q.retries_sent},   {"bad_tokens", q.bad_tokens},
                         {"refused_source", q.refused_source}, {"refused_unauthenticated", q.refused_unauthenticated},
                         {"unauthenticated", endpoint->unauthenticated()}};
        }
        if (agent) j["nat"] = nat_stats();
        if (rendezvous) {
            j["rendezvous"] = rendezvous->stats();
            j["rendezvous"]["ignored"] = rendezvous_ignored;
            if (puncher) j["rendezvous"]["punch"] = puncher->stats();
            if (guesser) j["rendezvous"]["guess"] = guesser->stats();
            j["rendezvous"]["nat"] = own_nat;
        }
        if (rate) {
            j["rate_control"] = rate_stats();
            for (auto &v : j["viewers"])
                for (const auto &r : rate->viewers())
                    if (r.id == v["id"]) {
                        v["receive_kbps"] = std::lround(r.delivered_kbps());
                        v["followed"] = r.followed;
                    }
        }
        j["congestion_control"] = quic::congestion_control_name(congestion_control);
        if (publisher) j["publish"] = publisher->stats();
        return j;
    }
};

namespace {

// Enough for a handshake over a slow relayed path (a few RTTs of up to ~500 ms).
constexpr unsigned kServerHandshakeTimeoutMs = 4000;

// How long start() waits for the gateway's mapping before the ticket goes out without it (UPnP
// discovery alone listens 1.5 s for answers).
constexpr int kPortMapWaitMs = 4000;
// STUN's answers and the relay's allocation: bounded, a ticket without them still works on open paths.
constexpr auto kStunWait = std::chrono::seconds(5);
constexpr auto kRelayWait = std::chrono::seconds(10);

quic::CongestionControl congestion_control_option(const std::string &name) {
    if (name.empty()) return quic::kDefaultCongestionControl;
    auto cc = quic::parse_congestion_control(name);
    if (!cc)
        throw Error(PP_ERR_INVALID_ARGUMENT, "congestion control \"" + name +
                                                 "\" is unknown: use cubic, bbr, bbr2 or reno");
    return *cc;
}

// The port-mapping settings for this host, or nullopt when it maps nothing: --no-port-mapping,
// --relay-only, a loopback-only host, or PIXELPASS_PORTMAP=off (the test suite sets it, so no
// test talks to the machine's real gateway). PIXELPASS_PORTMAP=upnp,natpmp,pcp picks protocols.
std::optional<nat::portmap::Options> port_mapping_options(const HostConfig &config) {
    if (config.no_port_mapping || config.relay_only || gather::loopback_only(config.bind_address)) return std::nullopt;
    return nat::portmap::options_from_environment();
}

// Joins the DHT (so it is warm before anyone connects) and listens at the ticket's rendezvous
// key; a viewer's offer there makes the host punch toward it. Off for --no-dht, --relay-only, a
// loopback-only host without explicit nodes, and with no bootstrap (PIXELPASS_DEFAULT_DHT=off
// and none configured).
// Call it off the loop (bootstrap names resolve here), once the agent exists.
void start_rendezvous(const HostConfig &config, Host::Core &core);

// Releases a Core. From the loop thread (inside an event callback) the loop cannot be joined,
// so the teardown moves to a thread of its own and runs after the callback returns.
void release(std::shared_ptr<Host::Core> core, bool announce) {
    if (!core) return;
    if (core->loop && core->loop->on_loop_thread()) {
        if (!announce) core->events_open = false;
        std::thread([core = std::move(core), announce]() mutable {
            core->loop->call([&] { core->shutdown(announce); });
            core.reset();
        }).detach();
        return;
    }
    if (core->loop) core->loop->call([&] { core->shutdown(announce); });
    core.reset();
}

// ---- Host::start(), step by step: each runs on the caller's thread (DNS and the waits block)
// and enters the loop through call(). ----

void log_warnings(Host::Core &core, const std::vector<gather::Warning> &warnings) {
    for (const auto &w : warnings)  // not a structured binding: clang 14 cannot capture those
        core.loop->call([&] { core.emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, w.first, w.second, "{}"}); });
}

// The running service's state before anything listens: its loop and the Source it serves
// (missing plugins and encoders throw here, so the host fails at start).
std::shared_ptr<Host::Core> make_core(const HostConfig &config, std::shared_ptr<EventSink> sink,
                                      std::shared_ptr<Identity> identity, const std::vector<uint8_t> &secret,
                                      std::shared_ptr<stream::Source> source_override, int64_t expiry) {
    auto core = std::make_shared<Host::Core>();
    core->config = config;
    core->identity = std::move(identity);
    core->secret = secret;
    core->expiry = expiry;
    core->access_token = ticket::access_token(secret, expiry);
    core->events = [sink](const Event &e) {
        if (*sink) (*sink)(e);
    };
    core->max_viewers = config.max_viewers ? config.max_viewers : kDefaultMaxViewers;
    core->name = config.name.empty() ? machine_name() : config.name;
    core->loop = std::make_unique<net::Loop>("pp-host");
    Host::Core *c = core.get();
    if (source_override) {
        core->source = std::move(source_override);
    } else {
        // Media events come from media threads: hand them to the loop, where user callbacks run.
        // The Core resets the source before its loop, so `c` outlives every post.
        core->source = make_source(config, [c](const Event &e) { c->loop->post([c, e] { c->emit(e); }); });
    }
    core->media = dynamic_cast<fanout::FanoutSource *>(core->source.get());
    return core;
}

std::vector<publish::Target> publish_targets(const HostConfig &config, const Host::Core &core) {
    auto targets = publish::parse_targets(config.publish, config.publish_key);
    if (!targets.empty()) {
        if (!core.media) throw Error(PP_ERR_INVALID_ARGUMENT, "--publish needs a media source, not --source synthetic");
        publish::require_plugins(targets);
    }
    return targets;
}

gather::RelaySettings relay_settings(const HostConfig &config) {
    return {config.relay, config.relay_username, config.relay_password, config.relay_secret, config.relay_only,
            config.no_relay};
}

// The UDP socket and the QUIC endpoint on it, listening; returns the socket's own addresses.
std::vector<gather::Candidate> open_endpoint(Host::Core &core, quic::CongestionControl cc, bool relay) {
    Host::Core *c = &core;
    const HostConfig &config = core.config;
    return core.loop->call([&] {
        net::UdpOptions options;
        options.bind_ip = config.bind_address;
        options.port = config.port;
        auto socket = std::make_unique<net::UdpSocket>(*c->loop, options);
        const net::Address &bound = socket->local_address();
        c->port = bound.port();
        std::vector<gather::Candidate> local;
        if (!bound.is_any())
            local.push_back({bound.ip(), bound.port(), PP_CANDIDATE_LOCAL});
        else
            for (const auto &a : net::local_addresses(bound.family(), socket->dual_stack()))
                local.push_back({a.ip(), bound.port(), PP_CANDIDATE_LOCAL});
        quic::Observer observer;
        observer.closed = [c](quic::Connection &conn, const quic::CloseInfo &info) { c->closed(conn, info); };
        c->endpoint = std::make_unique<quic::Endpoint>(*c->loop, std::move(socket), observer);
        c->waker = std::make_unique<net::Waker>(*c->loop, [c] { c->wake_all(); });
        c->start_rate_control();
        quic::ServerOptions server;
        server.identity = c->identity;
        server.make_app = [c](quic::Connection &conn) {
            return std::make_unique<http3::ServerSession>(
                conn, [c](quic::Connection &cn, const http3::Request &r) { return c->handle(cn, r); });
        };
        if (config.idle_timeout_ms) server.transport.idle_timeout_ms = config.idle_timeout_ms;
        if (config.keep_alive_ms) server.transport.keep_alive_ms = config.keep_alive_ms;
        // A half-open handshake (a spoofed Initial) holds its slot this long, not ngtcp2's 10 s.
        server.transport.handshake_timeout_ms = kServerHandshakeTimeoutMs;
        server.transport.congestion_control = cc;
        c->congestion_control = cc;
        // A connection that may move onto the relay keeps its packets small enough for TURN.
        if (relay) server.transport.max_udp_payload = 1400;
        c->endpoint->listen(std::move(server));
        c->arm_expiry();
        return local;
    });
}

// A port mapping on the LAN gateway (UPnP-IGD / NAT-PMP / PCP), asked for on its own thread
// while STUN and the relay proceed: those libraries block.
void start_port_mapping(Host::Core &core) {
    auto options = port_mapping_options(core.config);
    if (!options) return;
    Host::Core *c = &core;
    core.portmap = std::make_unique<nat::portmap::Keeper>(
        core.port, *options, [c](bool warning, const std::string &message) {
            c->loop->post([c, warning, message] {
                c->emit({PP_EVENT_LOG, warning ? PP_LOG_WARNING : PP_LOG_INFO, 0, PP_OK, message, "{}"});
            });
        });
}

// The server-reflexive address, learned on the QUIC socket itself, so it is the mapping viewers'
// packets reach. The future is ready once every server answered (or gave up).
std::future<void> start_discovery(Host::Core &core, std::vector<net::Address> servers) {
    auto discovered = std::make_shared<std::promise<void>>();
    auto future = discovered->get_future();
    Host::Core *c = &core;
    core.loop->call([&] {
        c->agent = std::make_unique<nat::Agent>(*c->loop, c->endpoint->socket());
        c->agent->add_listener([c](const nat::stun::Message &m, const net::Datagram &d) { return c->on_probe(m, d); });
        c->probe_key = nat::probe_key(c->secret);
        const HostConfig &hc = c->config;
        c->probe_budget = std::make_unique<nat::ProbeBudget>(hc.probe_burst ? hc.probe_burst : nat::kHostProbeBurst,
                                                             hc.probes_per_second ? hc.probes_per_second : nat::kHostProbesPerSecond);
        c->agent->discover(std::move(servers), [discovered] { discovered->set_value(); });
    });
    return future;
}

// The relay allocation, bounded like STUN: its relayed address, or nullopt (logged) when it
// failed; with --relay-only that ends the start. Relay-to-relay: the host lets its relay's own
// address in, so a viewer allocating on the same relay reaches it with a one-way ticket.
std::optional<net::Address> allocate_relay(Host::Core &core, const nat::TurnConfig &turn) {
    Host::Core *c = &core;
    auto allocated = std::make_shared<std::promise<std::pair<pp_result, std::string>>>();
    auto future = allocated->get_future();
    core.loop->call([&] {
        c->turn = std::make_unique<nat::TurnClient>(*c->agent, c->endpoint->socket(), *c->loop, turn);
        c->turn->allocate([allocated](pp_result rc, const std::string &detail) { allocated->set_value({rc, detail}); });
    });
    std::pair<pp_result, std::string> outcome{PP_ERR_UNREACHABLE, "relay " + turn.label + " does not answer"};
    if (future.wait_for(kRelayWait) == std::future_status::ready) outcome = future.get();
    if (outcome.first == PP_OK)
        return core.loop->call([&] {
            c->turn->permit(turn.server);
            return c->turn->relayed();
        });
    bool relay_only = core.config.relay_only;
    core.loop->call([&] {
        c->turn.reset();
        c->emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, outcome.first,
                 outcome.second + (relay_only ? "" : "; sharing without a relay"), "{}"});
    });
    if (relay_only) {
        core.loop->call([&] { c->shutdown(false); });
        throw Error(outcome.first, outcome.second);
    }
    return std::nullopt;
}

// The gateway's mapping, once it is there or what is left of kPortMapWaitMs is spent.
std::optional<gather::Candidate> wait_mapping(Host::Core &core, std::chrono::steady_clock::time_point started) {
    if (!core.portmap) return std::nullopt;
    auto budget = std::chrono::milliseconds(kPortMapWaitMs) - (std::chrono::steady_clock::now() - started);
    auto m = core.portmap->wait(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max<std::chrono::steady_clock::duration>(budget, std::chrono::milliseconds(0))));
    if (!m) return std::nullopt;
    return gather::Candidate{m->external_ip, m->external_port, PP_CANDIDATE_MAPPED};
}

// What the loop keeps of the ticket's candidates: the direct ones /paths offers, and our NAT's
// kind as the ticket shows it (port guessing's role).
void keep_candidates(Host::Core &core, const std::vector<gather::Candidate> &ordered) {
    std::vector<net::Address> reflexive;
    bool mapped = false;
    for (const auto &cand : ordered) {
        if (cand.kind == PP_CANDIDATE_REFLEXIVE) reflexive.push_back(net::Address::parse(cand.ip, cand.port));
        mapped |= cand.kind == PP_CANDIDATE_MAPPED;
    }
    std::string kind = rendezvous::host_nat_kind(core.port, reflexive, mapped);
    Host::Core *c = &core;
    core.loop->call([&] {
        c->own_nat = kind;
        for (const auto &cand : ordered)
            if (cand.kind != PP_CANDIDATE_RELAYED) c->direct_candidates.emplace_back(cand.ip, cand.port);
    });
}

// Publishing starts now and holds the media pipeline running, viewers or not; then READY.
void announce(Host::Core &core, std::vector<publish::Target> targets, const std::vector<gather::Candidate> &ordered,
              const std::string &fingerprint) {
    Host::Core *c = &core;
    nlohmann::json cands = nlohmann::json::array();
    for (const auto &cand : ordered)
        cands.push_back(net::Address::parse(cand.ip, cand.port).to_string());
    nlohmann::json ready{{"port", core.port},
                         {"candidates", cands},
                         {"fingerprint", fingerprint},
                         {"max_viewers", core.max_viewers},
                         {"stream", core.source->describe()}};
    std::string message = "listening on UDP port " + std::to_string(core.port);
    if (!targets.empty())
        core.publisher = std::make_unique<publish::Publisher>(std::move(targets), core.source, [c](const Event &e) {
            c->loop->post([c, e] { c->emit(e); });
        });
    core.loop->call([&] { c->emit({PP_EVENT_READY, PP_LOG_INFO, 0, PP_OK, message, ready.dump()}); });
}

} // namespace

namespace {

void start_rendezvous(const HostConfig &config, Host::Core &core) {
    // A loopback-only host joins only nodes given explicitly (the demo's rendezvous on one
    // machine), never the public default: nobody outside could reach it.
    if (config.no_dht || config.relay_only) return;
    if (gather::loopback_only(config.bind_address) && config.dht_bootstrap.empty()) return;
    auto bootstrap = config.dht_bootstrap.empty() ? rendezvous::default_bootstrap() : config.dht_bootstrap;
    if (bootstrap.empty()) return;
    std::unique_ptr<rendezvous::Rendezvous> node;
    Host::Core *c = &core;
    try {
        node = rendezvous::join_dht(*core.loop, bootstrap);
    } catch (const Error &) {
        throw;  // a malformed --dht-bootstrap: the user fixes it
    } catch (const std::exception &e) {
        core.loop->call([&] {
            c->emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, PP_ERR_IO,
                     std::string("the DHT node did not start (") + e.what() + "): sharing without a rendezvous", "{}"});
        });
        return;
    }
    core.loop->call([&] {
        c->puncher = std::make_unique<rendezvous::Puncher>(*c->loop, c->endpoint->socket(), c->probe_key);
        c->guesser = std::make_unique<nat::guess::Guesser>(
            *c->loop, c->endpoint->socket(), c->probe_key, [c](const std::string &, const net::Address &peer) {
                c->emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK, "rendezvous: port guessing opened a path to " +
                         peer.to_string(), "{}"});
            });
        c->guesser->set_connected([c](const net::Address &peer) {
            for (auto *conn : c->endpoint->connections())
                if (conn->remote().unmapped().ip() == peer.unmapped().ip()) return true;
            return false;
        });
        c->rendezvous = std::move(node);
        c->rendezvous->listen(rendezvous::rendezvous_key(c->secret),
                              [c](const rendezvous::Rendezvous::Value &v) { c->on_rendezvous(v); });
    });
}

} // namespace

Host::Host(HostConfig config, EventSink events)
    : config_(std::move(config)), events_(std::make_shared<EventSink>(std::move(events))),
      identity_(Identity::generate()), secret_(PP_SECRET_MIN_SIZE) {
    publish::parse_targets(config_.publish, config_.publish_key);  // bad URLs fail at once
    random_bytes(secret_);
}

Host::~Host() {
    std::shared_ptr<Core> core;
    {
        std::lock_guard lock(mutex_);
        core = std::move(core_);
    }
    release(std::move(core), false);
}

void Host::set_source(std::shared_ptr<stream::Source> source) {
    std::lock_guard lock(mutex_);
    source_override_ = std::move(source);
}

void Host::start() {
    std::lock_guard lock(mutex_);
    if (core_) throw Error(PP_ERR_STATE, "the host is already running");
    int64_t now = static_cast<int64_t>(time(nullptr));
    int64_t expiry = config_.ticket_lifetime_s > 0 ? now + config_.ticket_lifetime_s : 0;
    auto core = make_core(config_, events_, identity_, secret_, source_override_, expiry);
    auto targets = publish_targets(config_, *core);
    auto congestion_control = congestion_control_option(config_.congestion_control);
    // The relay and STUN servers: resolved here, off the loop (DNS blocks).
    gather::RelayPlan relay = gather::plan_relay(relay_settings(config_), expiry, now);
    log_warnings(*core, relay.warnings);
    std::vector<net::Address> stun;
    if (!config_.no_stun && !config_.relay_only) {
        std::vector<gather::Warning> warnings;
        stun = gather::stun_servers(config_.stun_servers, gather::loopback_only(config_.bind_address), warnings);
        log_warnings(*core, warnings);
    }
    gather::Found found;
    found.local = open_endpoint(*core, congestion_control, relay.turn.has_value());
    start_port_mapping(*core);
    auto portmap_started = std::chrono::steady_clock::now();
    auto discovered = start_discovery(*core, stun);
    start_rendezvous(config_, *core);
    discovered.wait_for(kStunWait);
    found.reflexive = core->loop->call([&] { return core->agent->reflexive(); });
    if (relay.turn) {
        found.relayed = allocate_relay(*core, *relay.turn);
        if (!found.relayed) relay.ticket.reset();
    }
    if (!stun.empty() && found.reflexive.empty())
        log_warnings(*core, {{PP_ERR_UNREACHABLE, "no STUN server answered: the ticket carries local addresses only"}});
    found.mapped = wait_mapping(*core, portmap_started);
    found.relay_only = config_.relay_only;
    auto ordered = gather::order_candidates(found, ticket::kMaxCandidates);
    keep_candidates(*core, ordered);
    candidates_.clear();
    reflexive_.clear();
    relayed_.clear();
    mapped_.clear();
    for (const auto &cand : ordered) {
        std::pair<std::string, uint16_t> p{cand.ip, cand.port};
        candidates_.push_back(p);
        if (cand.kind == PP_CANDIDATE_REFLEXIVE) reflexive_.push_back(p);
        if (cand.kind == PP_CANDIDATE_RELAYED) relayed_.push_back(p);
        if (cand.kind == PP_CANDIDATE_MAPPED) mapped_.push_back(p);
    }
    relay_ = relay.ticket;
    expiry_ = expiry;
    core_ = core;
    announce(*core, std::move(targets), ordered, identity_->fingerprint_hex());
}

void Host::stop() {
    std::shared_ptr<Core> core;
    {
        std::lock_guard lock(mutex_);
        core = std::move(core_);
    }
    release(std::move(core), true);
}

std::string Host::ticket_text() const {
    std::lock_guard lock(mutex_);
    ticket::Ticket t;
    t.fingerprint = identity_->fingerprint();
    t.secret = secret_;
    for (const auto &cand : candidates_) {
        bool reflexive = std::find(reflexive_.begin(), reflexive_.end(), cand) != reflexive_.end();
        bool relayed = std::find(relayed_.begin(), relayed_.end(), cand) != relayed_.end();
        bool mapped = std::find(mapped_.begin(), mapped_.end(), cand) != mapped_.end();
        ticket::add_candidate(t, relayed    ? PP_CANDIDATE_RELAYED
                                 : mapped   ? PP_CANDIDATE_MAPPED
                                 : reflexive ? PP_CANDIDATE_REFLEXIVE
                                             : PP_CANDIDATE_LOCAL,
                              cand.first, cand.second);
    }
    if (relay_ && core_) ticket::set_relay(t, *relay_);
    t.expiry = expiry_;
    t.one_viewer = config_.one_viewer;  // so a viewer knows before it dials
    if (!core_ && config_.ticket_lifetime_s > 0)
        t.expiry = static_cast<int64_t>(time(nullptr)) + config_.ticket_lifetime_s;
    return ticket::encode(t);
}

std::string Host::stats_json() const {
    std::shared_ptr<Core> core;
    {
        std::lock_guard lock(mutex_);
        core = core_;
    }
    nlohmann::json j;
    if (core) {
        j = core->loop->call([&] { return core->stats(); });
        j["name"] = core->name;
    } else {
        j = {{"running", false}, {"viewers", nlohmann::json::array()}, {"max_viewers", config_.max_viewers ? config_.max_viewers : kDefaultMaxViewers}};
    }
    j["fingerprint"] = identity_->fingerprint_hex();
    // Only a short hash of the secret, so two reports can be matched without revealing it.
    uint8_t digest[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, secret_.data(), secret_.size(), digest);
    j["secret_hash"] = to_hex({digest, 4});
    return j.dump();
}

} // namespace pp
