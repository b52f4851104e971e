#include "viewer/viewer.hpp"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "common/random.hpp"
#include "http3/client.hpp"
#include "nat/agent.hpp"
#include "nat/guess.hpp"
#include "nat/paths.hpp"
#include "nat/turn.hpp"
#include "net/interfaces.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"
#include "quic/endpoint.hpp"
#include "rendezvous/advice.hpp"
#include "rendezvous/punch.hpp"
#include "rendezvous/rendezvous.hpp"
#include "ticket/ticket.hpp"
#include "viewer/link_watch.hpp"
#include "viewer/local_http.hpp"

namespace pp {

namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;
// Below 1500-byte MTUs even with TURN's Send/Data framing (about 40 bytes) around each packet.
constexpr size_t kRelaySafeUdpPayload = 1400;
// After leaving our candidates on the DHT, how long failed attempts wait for the host's punch:
// the DHT's delivery (up to about 1.5 s measured) plus a QUIC handshake through the opened NAT.
constexpr unsigned kRendezvousWaitMs = 6000;

std::string hex_code(uint64_t code) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(code));
    return buf;
}

std::string seconds_text(unsigned ms) {
    char buf[32];
    if (ms % 1000 == 0)
        std::snprintf(buf, sizeof buf, "%u s", ms / 1000);
    else
        std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000.0);
    return buf;
}

// What a non-200 answer from the host means for the viewer.
pp_result status_error(int status) {
    switch (status) {
    case 401: return PP_ERR_TICKET_REJECTED;
    case 403: return PP_ERR_TICKET_REJECTED;  // a one-viewer ticket already used
    case 503: return PP_ERR_HOST_FULL;
    default: return PP_ERR_PROTOCOL;
    }
}

// "host is full (2/2)" from the host's 503 reason.
std::string full_message(const std::string &body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("viewers") && j.contains("max_viewers"))
        return "host is full (" + j["viewers"].dump() + "/" + j["max_viewers"].dump() + ")";
    return "host is full";
}

} // namespace

struct Viewer::Core : viewer::Upstream {
    ViewerConfig config;
    ticket::Ticket ticket;
    EventSink events;
    bool events_open = true;  // loop thread only
    std::vector<http3::Header> auth;

    std::unique_ptr<net::Loop> loop;
    std::unique_ptr<quic::Endpoint> endpoint;
    std::unique_ptr<nat::Agent> agent;
    std::unique_ptr<nat::TurnClient> turn;
    std::unique_ptr<nat::PeerPaths> paths;  // hole punching, upgrade and failover (with a relay)
    std::optional<nat::TurnConfig> relay;  // resolved before the loop starts
    std::string relay_problem;             // why the relay path is not there, for the final error
    bool relay_pending = false;            // allocating; relayed candidates dial once it is done
    std::unique_ptr<net::Timer> relay_delay;
    std::unique_ptr<net::Timer> stagger, deadline;
    std::unique_ptr<viewer::LocalHttpServer> local;
    std::unique_ptr<viewer::LinkWatch> link;  // the host's verdict on our path, while streaming
    std::vector<net::Address> stun_servers;           // resolved before the loop starts
    std::unique_ptr<rendezvous::Rendezvous> rendezvous;  // where we leave our candidates for the host
    std::string offer_session;                         // USERNAME of the host's punch probes
    std::unique_ptr<net::Timer> rendezvous_wait;       // ends the wait for the host's punch
    bool awaiting_punch = false;                       // failed attempts do not end the connect yet
    std::string nat_kind = "unknown";                  // ours, from STUN
    std::vector<net::Address> probed_by_host;          // host addresses whose punch probes reached us
    bool found_by_rendezvous = false;                  // the winner was dialled at a punch probe's source
    std::unique_ptr<nat::guess::Guesser> guesser;      // port guessing, when the NATs need it

    struct Attempt {
        net::Address address;
        bool relayed = false;
        bool punched = false;  // dialled at the source of the host's punch probe
        uint64_t conn_id = 0;
        bool started = false, done = false;
        std::string why;
    };
    std::vector<Attempt> attempts;
    size_t next_attempt = 0;
    uint64_t winner = 0;
    bool key_mismatch = false;
    std::string key_mismatch_detail;
    net::Address peer;
    nlohmann::json host_info;
    bool shutting_down = false;

    // Shared with API threads.
    mutable std::mutex m;
    std::condition_variable cv;
    bool connected = false;
    std::optional<std::pair<pp_result, std::string>> connect_error;
    std::optional<pp_result> ended;
    std::string url;

    ~Core() {
        if (loop) loop->call([this] { shutdown(); });
        loop.reset();
    }

    void emit(Event e) {
        if (events_open && events) events(e);
    }

    void shutdown() {
        shutting_down = true;
        events_open = false;
        local.reset();  // players first: their requests still name the session
        link.reset();
        stagger.reset();
        deadline.reset();
        if (endpoint) endpoint->close_all(http3::kNoError, "viewer closed");
        relay_delay.reset();
        rendezvous_wait.reset();
        rendezvous.reset();  // joins the DHT thread
        guesser.reset();     // its fan sockets route the main socket's peer
        paths.reset();  // its routes point into the TURN client
        turn.reset();
        agent.reset();
        endpoint.reset();
    }

    http3::ClientSession *session() const {
        if (!endpoint || !winner) return nullptr;
        quic::Connection *c = endpoint->find(winner);
        if (!c || c->closed()) return nullptr;
        return dynamic_cast<http3::ClientSession *>(c->app());
    }

    std::string candidate_list() const {
        std::string s;
        for (const auto &a : attempts) s += (s.empty() ? "" : ", ") + a.address.to_string() + (a.relayed ? " (relayed)" : "");
        return s;
    }

    // How the path was found: "dht-punched", "relay-punched", "guessed", "relayed", "mapped" or
    // "direct".
    std::string found_name() const {
        if (paths && paths->kind() == nat::PathKind::punched) return "relay-punched";
        if (guesser && !peer.empty() && guesser->guessed(peer)) return "guessed";
        if (path_name() == "relayed") return "relayed";
        // Dialled at the source of the host's punch, or let in by the host's punch (it says so).
        if (found_by_rendezvous || (host_info.is_object() && host_info.value("found", "") == "dht-punched"))
            return "dht-punched";
        for (const auto &cand : ticket.candidates)
            if (!peer.empty() && cand.kind == PP_CANDIDATE_MAPPED && net::Address::parse(cand.address, cand.port) == peer.unmapped())
                return "mapped";
        return "direct";
    }

    std::string path_name() const {
        if (paths) return nat::path_kind_name(paths->kind());
        if (!endpoint || peer.empty()) return "direct";
        if (guesser && guesser->guessed(peer)) return "direct";  // routed through a fan socket
        return endpoint->socket().routed(peer) ? "relayed" : "direct";
    }

    // ---- connecting ----

    void start() {
        auth = {{"authorization", "Bearer " + ticket::access_token(ticket.secret, ticket.expiry)}};
        if (ticket.one_viewer)
            emit({PP_EVENT_LOG, PP_LOG_INFO, 0, PP_OK,
                  "this ticket admits one viewer: the host refuses any other, and this one again once it leaves",
                  nlohmann::json{{"one_viewer", true}}.dump()});
        auto socket = std::make_unique<net::UdpSocket>(*loop, net::UdpOptions{});
        std::vector<net::Address> relayed;
        for (const auto &cand : ticket.candidates) {
            Attempt a;
            a.address = net::Address::parse(cand.address, cand.port);
            if (cand.kind == PP_CANDIDATE_RELAYED) {
                // Reached from our own allocation on the same relay (the host lets only the
                // relay's address in), so these wait for the allocation.
                relayed.push_back(a.address);
                continue;
            }
            if (config.relay_only) continue;
            if (socket->sendable(a.address).empty()) {
                a.done = true;
                a.why = "no route for its address family";
            }
            attempts.push_back(a);
        }
        quic::Observer observer;
        observer.established = [this](quic::Connection &c) { on_established(c); };
        observer.closed = [this](quic::Connection &c, const quic::CloseInfo &info) { on_closed(c, info); };
        endpoint = std::make_unique<quic::Endpoint>(*loop, std::move(socket), observer);
        agent = std::make_unique<nat::Agent>(*loop, endpoint->socket());
        agent->add_listener([this](const nat::stun::Message &m, const net::Datagram &d) {
            return paths && paths->on_stun(m, d);
        });
        guesser = std::make_unique<nat::guess::Guesser>(*loop, endpoint->socket(), nat::probe_key(ticket.secret),
                                                        [this](const std::string &, const net::Address &at) { on_guessed(at); });
        agent->add_listener([this](const nat::stun::Message &m, const net::Datagram &d) {
            return guesser && guesser->on_stun(m, d);
        });
        agent->add_listener([this](const nat::stun::Message &m, const net::Datagram &d) { return on_host_probe(m, d); });
        stagger = std::make_unique<net::Timer>(*loop, [this] { dial_next(); });
        deadline = std::make_unique<net::Timer>(*loop, [this] { on_deadline(); });
        deadline->arm_at(net::monotonic_ns() + uint64_t{config.connect_timeout_ms} * 1000000);
        if (ticket.candidates.empty()) {
            fail(PP_ERR_UNREACHABLE, "the ticket lists no address for the host");
            return;
        }
        if (relay && !relayed.empty()) {
            start_relay(relayed);
        } else if (config.relay_only) {
            fail(PP_ERR_UNREACHABLE, ticket.relay ? "--relay-only: the ticket's host has no relayed address"
                                                  : "--relay-only: the ticket names no relay (start the host with "
                                                    "--relay turn:HOST[:PORT] --relay-secret SECRET; docs/relay.md)");
            return;
        }
        dial_next();
        // Our own addresses as the world sees them (on this very socket), then the rendezvous.
        agent->discover(stun_servers, [this] { offer_rendezvous(); });
        if (!has_pending()) fail_all();
    }

    // Our allocation on the ticket's relay; the host's relayed addresses are dialled through it
    // once it is there (or become the standby path of a direct connection that won meanwhile).
    void start_relay(const std::vector<net::Address> &relayed) {
        relay_pending = true;
        uint64_t started = net::monotonic_ns();
        turn = std::make_unique<nat::TurnClient>(*agent, endpoint->socket(), *loop, *relay);
        turn->allocate([this, relayed, started](pp_result rc, const std::string &detail) {
            if (rc != PP_OK) {
                relay_pending = false;
                relay_problem = detail;
                emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, rc, detail, "{}"});
                turn.reset();
                if (!has_pending() && !winner && !decided()) fail_all();
                return;
            }
            turn->permit(relay->server);  // the host's allocation answers from the relay's address
            if (is_connected()) {
                // A direct path won before the allocation was done: the relay becomes its standby.
                for (const auto &r : relayed) turn->route(r);
                start_paths();
                return;
            }
            for (const auto &r : relayed) {
                turn->route(r);
                Attempt a;
                a.address = r;
                a.relayed = true;
                attempts.push_back(a);
            }
            // Direct paths get a head start (the first handshake wins, and a direct one is
            // the better path); the relay joins at once when they have all failed.
            uint64_t head_start = started + uint64_t{config.relay_only ? 0u : 250u} * 1000000;
            relay_delay = std::make_unique<net::Timer>(*loop, [this] {
                relay_pending = false;
                stagger->cancel();
                dial_next();
            });
            relay_delay->arm_at(has_pending_direct() ? head_start : 0);
        });
    }

    // ---- rendezvous: our candidates for the host, which punches toward them ----

    void offer_rendezvous() {
        const net::Address &bound = endpoint->socket().local_address();
        nat_kind = rendezvous::classify_nat(agent->reflexive(), net::local_addresses(bound.family(), endpoint->socket().dual_stack()));
        if (!rendezvous || decided()) return;
        uint8_t raw[12];
        random_bytes(raw);
        offer_session = to_hex(raw);
        rendezvous::Offer offer;
        offer.session = offer_session;
        offer.nat = nat_kind;
        offer.issued = static_cast<int64_t>(time(nullptr));
        for (const auto &a : agent->reflexive()) offer.candidates.push_back(a);
        for (const auto &a : net::local_addresses(bound.family(), endpoint->socket().dual_stack())) {
            net::Address c = net::Address::parse(a.ip(), bound.port());
            if (!rendezvous::unfit_candidate(c) && std::find(offer.candidates.begin(), offer.candidates.end(), c) == offer.candidates.end())
                offer.candidates.push_back(c);
        }
        if (offer.candidates.size() > rendezvous::kMaxCandidates) offer.candidates.resize(rendezvous::kMaxCandidates);
        // The host punches within a few seconds of the offer, or not at all: after that, failed
        // attempts may end the wait (the connect deadline still bounds it).
        awaiting_punch = true;
        rendezvous_wait = std::make_unique<net::Timer>(*loop, [this] {
            if (guesser && guesser->active()) {  // port guessing is bounded: wait for its end
                rendezvous_wait->arm_at(net::monotonic_ns() + 250 * 1000000ull);
                return;
            }
            awaiting_punch = false;
            if (!has_pending() && !winner && !decided()) fail_all();
        });
        rendezvous_wait->arm_at(net::monotonic_ns() + uint64_t{kRendezvousWaitMs} * 1000000);
        std::string role = start_guessing();
        rendezvous->put(rendezvous::rendezvous_key(ticket.secret), rendezvous::seal(offer, ticket.secret),
                        [this, role, n = offer.candidates.size()](bool ok, unsigned ms) {
                            // The host fans once it has our offer: our guesses start when it is stored.
                            if (ok && role == "spray" && !decided()) guesser->spray(offer_session, host_public());
                            emit({PP_EVENT_LOG, ok ? PP_LOG_DEBUG : PP_LOG_WARNING, 0, ok ? PP_OK : PP_ERR_UNREACHABLE,
                                  ok ? "rendezvous: " + std::to_string(n) + " candidates left for the host in " +
                                           std::to_string(ms) + " ms"
                                     : "rendezvous: the DHT did not store our candidates (" + std::to_string(ms) + " ms)",
                                  nlohmann::json{{"ok", ok}, {"ms", ms}, {"nat", nat_kind}}.dump()});
                        });
    }

    // The host's public address as the ticket shows it (its first IPv4 reflexive candidate).
    net::Address host_public() const {
        for (const auto &cand : ticket.candidates)
            if (cand.kind == PP_CANDIDATE_REFLEXIVE && cand.address.find(':') == std::string::npos)
                return net::Address::parse(cand.address, cand.port);
        return {};
    }

    // Port guessing (nat/guess) when one NAT is symmetric and the other a cone: the fan opens
    // now, before the host has our offer; a spray waits until the offer is stored (see the put).
    std::string start_guessing() {
        std::string host_nat = rendezvous::ticket_nat_kind(ticket);
        std::string role = nat::guess::role(nat_kind, host_nat);
        net::Address host = host_public();
        if (role.empty() || host.empty()) return "";
        if (role == "fan" && !guesser->fan(offer_session, host)) return "";
        emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK,
              "rendezvous: our NAT is " + nat_kind + ", the host's " + host_nat + ": port guessing (" + role +
                  ") toward " + host.ip(),
              nlohmann::json{{"role", role}}.dump()});
        return role;
    }

    // Port guessing found a port of the host that lets us in (spray), or a fan socket the host's
    // guess reached (the main socket now routes the host's address through it): dial it.
    void on_guessed(const net::Address &at) {
        if (winner || decided()) return;
        emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK, "rendezvous: port guessing found the host at " + at.to_string(), "{}"});
        Attempt a;
        a.address = at;
        attempts.push_back(a);
        dial(attempts.back());
    }

    // The host's punch probe (authenticated with the ticket): its NAT is open toward us now, from
    // that address. Dial it at once rather than wait for a retransmission of an earlier Initial.
    bool on_host_probe(const nat::stun::Message &m, const net::Datagram &d) {
        if (offer_session.empty() || m.method != nat::stun::Method::binding || m.cls != nat::stun::Class::request)
            return false;
        if (m.text(nat::stun::attr::username) != offer_session || !m.integrity_ok(nat::probe_key(ticket.secret)))
            return false;
        net::Address from = d.remote.unmapped();
        if (std::find(probed_by_host.begin(), probed_by_host.end(), from) != probed_by_host.end()) return false;
        if (probed_by_host.size() >= rendezvous::kMaxCandidates) return false;
        probed_by_host.push_back(from);
        if (winner || decided()) return false;
        emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK, "rendezvous: the host punched toward us from " + from.to_string(), "{}"});
        Attempt a;
        a.address = from;
        a.punched = true;
        attempts.push_back(a);
        dial(attempts.back());
        return false;  // the agent answers it
    }

    bool has_pending_direct() const {
        for (const auto &a : attempts)
            if (!a.done && !a.relayed) return true;
        return false;
    }

    bool has_pending() const {
        if (relay_pending) return true;
        if (awaiting_punch) return true;
        for (const auto &a : attempts)
            if (!a.done) return true;
        return false;
    }

    // Starts the QUIC handshake toward `a`; false when it cannot even start.
    bool dial(Attempt &a) {
        quic::ClientOptions options;
        options.pin = ticket.fingerprint;
        options.make_app = [](quic::Connection &c) { return std::make_unique<http3::ClientSession>(c); };
        options.transport.handshake_timeout_ms = config.connect_timeout_ms;
        if (config.idle_timeout_ms) options.transport.idle_timeout_ms = config.idle_timeout_ms;
        if (config.keep_alive_ms) options.transport.keep_alive_ms = config.keep_alive_ms;
        // Whatever the window lets the host send ahead is video the player sees late when it
        // stalls, and hides the stall from the host's slow-reader rule. 1 MiB covers a
        // 20 Mbit/s stream at 400 ms RTT; ngtcp2 still grows it for a reader that keeps up.
        options.transport.stream_window = 1u << 20;
        // A connection that may move onto the relay keeps its packets small enough for TURN.
        if (relay) options.transport.max_udp_payload = kRelaySafeUdpPayload;
        try {
            a.conn_id = endpoint->connect(a.address, std::move(options)).id();
            a.started = true;
            emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK, "trying " + a.address.to_string(), "{}"});
            return true;
        } catch (const std::exception &e) {
            a.done = true;
            a.why = e.what();
            return false;
        }
    }

    void dial_next() {
        if (winner || decided()) return;
        while (next_attempt < attempts.size()) {
            Attempt &a = attempts[next_attempt++];
            if (a.done || a.started) continue;
            if (dial(a)) break;
        }
        // The next candidate starts after a short stagger, or at once when this one fails.
        if (next_attempt < attempts.size())
            stagger->arm_at(net::monotonic_ns() + uint64_t{config.stagger_ms} * 1000000);
    }

    Attempt *attempt_of(uint64_t conn_id) {
        for (auto &a : attempts)
            if (a.started && a.conn_id == conn_id) return &a;
        return nullptr;
    }

    bool is_connected() const {
        std::lock_guard lock(m);
        return connected && !ended;
    }

    bool decided() const {
        std::lock_guard lock(m);
        return connected || connect_error.has_value();
    }

    void on_established(quic::Connection &conn) {
        if (winner || decided()) {
            conn.close(http3::kNoError, "another path won");
            return;
        }
        if (!attempt_of(conn.id())) return;
        winner = conn.id();
        peer = conn.remote();
        found_by_rendezvous = attempt_of(winner)->punched;
        stagger->cancel();
        for (auto &a : attempts)
            if (a.started && !a.done && a.conn_id != winner)
                if (quic::Connection *c = endpoint->find(a.conn_id)) c->close(http3::kNoError, "another path won");
        // Prove the ticket now, so a refusal surfaces at connect time, not at the first player.
        auto info = std::make_shared<InfoHandler>(this);
        try {
            session()->request("GET", "/info", auth, info);
        } catch (const std::exception &e) {
            fail(PP_ERR_PROTOCOL, std::string("cannot ask the host for its info: ") + e.what());
        }
    }

    struct InfoHandler : http3::ResponseHandler {
        explicit InfoHandler(Core *core) : core(core) {}
        void on_headers(int s, const std::vector<http3::Header> &) override { status = s; }
        void on_data(int64_t stream_id, std::span<const uint8_t> data) override {
            if (body.size() < kMaxErrorBody) body.append(reinterpret_cast<const char *>(data.data()), data.size());
            if (auto *s = core->session()) s->consume(stream_id, data.size());
        }
        void on_end() override { core->info_done(status, body); }
        void on_error(uint64_t, const std::string &reason) override {
            if (!core->shutting_down) core->fail(PP_ERR_CONNECTION_LOST, "the host closed the connection: " + reason);
        }
        Core *core;
        int status = 0;
        std::string body;
    };

    void info_done(int status, const std::string &body) {
        if (decided()) return;
        if (status == 200) {
            host_info = nlohmann::json::parse(body, nullptr, false);
            if (host_info.is_discarded()) host_info = nlohmann::json::object();
            connect_done();
            return;
        }
        pp_result code = status_error(status);
        if (status == 403) fail(code, one_viewer_refusal(body));
        else if (code == PP_ERR_TICKET_REJECTED) fail(code, "ticket rejected by host");
        else if (code == PP_ERR_HOST_FULL) fail(code, full_message(body));
        else fail(code, "the host answered /info with HTTP status " + std::to_string(status));
    }

    // The host's 403 for a one-viewer ticket, in plain words (its JSON says whether that viewer
    // is still watching; the host is the one the ticket pins, so its answer is trusted).
    static std::string one_viewer_refusal(const std::string &body) {
        auto j = nlohmann::json::parse(body, nullptr, false);
        bool left = j.is_object() && j.contains("watching") && j["watching"].is_boolean() && !j["watching"].get<bool>();
        return left ? "this ticket admitted one viewer, who has left: ask the host for a new ticket"
                    : "this ticket admits one viewer and one is already watching";
    }

    void connect_done() {
        deadline->cancel();
        if (guesser) guesser->settle(peer);  // guessing toward the host stops; its path stays
        try {
            local = std::make_unique<viewer::LocalHttpServer>(*loop, config.listen_port,
                                                              viewer::LocalHttpServer::make_token(), *this);
        } catch (const Error &e) {
            fail(e.code(), e.what());
            return;
        }
        std::string u = local->url();
        {
            std::lock_guard lock(m);
            connected = true;
            url = u;
        }
        cv.notify_all();
        nlohmann::json ready{{"address", peer.to_string()},
                             {"path", path_name()},
                             {"found", found_name()},
                             {"url", u},
                             {"host", host_info}};
        if (quic::Connection *c = endpoint->find(winner)) ready["rtt_ms"] = c->stats().rtt_ms;
        emit({PP_EVENT_READY, PP_LOG_INFO, 0, PP_OK, "connected to " + peer.to_string(), ready.dump()});
        start_link_watch();
        start_paths();
    }

    // The user hears it when the host finds our path too poor for the stream, and when it recovers.
    void start_link_watch() {
        link = std::make_unique<viewer::LinkWatch>(
            *loop, [this] { return session(); }, auth,
            [this](const ratecontrol::PathVerdict::Notice &n, const nlohmann::json &details) {
                emit({PP_EVENT_LOG, n.too_poor ? PP_LOG_WARNING : PP_LOG_INFO, 0, PP_OK, n.message,
                      nlohmann::json{{"path_too_poor", n.too_poor}, {"link", details}}.dump()});
            });
    }

    // ---- hole punching, path upgrade and failover ----

    // With a relay on both sides (the standby path), trade candidates with the host over the
    // connection and let nat::PeerPaths probe, upgrade and fall back.
    void start_paths() {
        if (paths || config.relay_only || !turn || !turn->allocated() || !winner) return;
        net::Address host_relayed;
        std::vector<net::Address> host_direct;
        for (const auto &cand : ticket.candidates) {
            net::Address a = net::Address::parse(cand.address, cand.port);
            if (cand.kind == PP_CANDIDATE_RELAYED) {
                if (host_relayed.empty()) host_relayed = a;
            } else {
                host_direct.push_back(a);
            }
        }
        if (host_relayed.empty()) return;
        quic::Connection *c = endpoint->find(winner);
        if (!c) return;
        uint8_t raw[12];
        random_bytes(raw);
        nat::PeerPaths::Options o;
        o.virtual_remote = c->remote();
        o.virtual_local = c->local();
        o.started_relayed = endpoint->socket().routed(c->remote());
        o.key = nat::probe_key(ticket.secret);
        o.session = to_hex(raw);
        o.leads = true;
        o.behind_nat = true;
        for (const auto &a : net::local_addresses(endpoint->socket().local_address().family(), endpoint->socket().dual_stack()))
            if (a.unmapped().ip() == turn->mapped().ip()) o.behind_nat = false;
        paths = std::make_unique<nat::PeerPaths>(*loop, endpoint->socket(), *agent, turn.get(), o,
                                                 [this](nat::PathKind kind, const net::Address &via) {
                                                     path_changed(kind, via);
                                                 });
        paths->set_peer_relayed(host_relayed);
        // Our candidates: every local address on our port, and the reflexive one the relay saw.
        nlohmann::json mine = nlohmann::json::array();
        const net::Address &bound = endpoint->socket().local_address();
        for (const auto &a : net::local_addresses(bound.family(), endpoint->socket().dual_stack()))
            if (!a.is_loopback() && a.ip().rfind("fe80", 0) != 0) mine.push_back({a.ip(), bound.port()});
        if (!turn->mapped().empty()) mine.push_back({turn->mapped().ip(), turn->mapped().port()});
        for (const auto &r : agent->reflexive())
            if (r != turn->mapped()) mine.push_back({r.ip(), r.port()});
        nlohmann::json offer{{"session", o.session},
                             {"candidates", mine},
                             {"relayed", {turn->relayed().ip(), turn->relayed().port()}}};
        auto headers = auth;
        headers.push_back({"pixelpass-paths", offer.dump()});
        try {
            session()->request("GET", "/paths", headers, std::make_shared<PathsHandler>(this));
        } catch (const std::exception &e) {
            emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, PP_ERR_PROTOCOL,
                  std::string("cannot offer direct paths to the host: ") + e.what(), "{}"});
        }
        paths->add_candidates(host_direct);  // probing starts now; the host's answer may add more
    }

    struct PathsHandler : http3::ResponseHandler {
        explicit PathsHandler(Core *core) : core(core) {}
        void on_headers(int s, const std::vector<http3::Header> &) override { status = s; }
        void on_data(int64_t stream_id, std::span<const uint8_t> data) override {
            if (body.size() < kMaxErrorBody) body.append(reinterpret_cast<const char *>(data.data()), data.size());
            if (auto *s = core->session()) s->consume(stream_id, data.size());
        }
        void on_end() override { core->paths_answer(status, body); }
        void on_error(uint64_t, const std::string &) override {}
        Core *core;
        int status = 0;
        std::string body;
    };

    void paths_answer(int status, const std::string &body) {
        if (!paths) return;
        auto j = nlohmann::json::parse(body, nullptr, false);
        if (status == 429) {
            // The host's probe budget is spent (nat/probe_budget): the relay path stays.
            std::string why = j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "busy";
            emit({PP_EVENT_LOG, PP_LOG_WARNING, 0, PP_OK,
                  "the host does not look for a direct path now (" + why + "): the stream stays on the relay", "{}"});
            return;
        }
        if (status != 200 || !j.is_object()) {
            // An older host: no upgrade, the relay path stays (and works).
            emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK, "the host does not trade paths (HTTP " + std::to_string(status) + ")", "{}"});
            return;
        }
        std::vector<net::Address> more;
        try {
            for (const auto &c : j.value("candidates", nlohmann::json::array()))
                more.push_back(net::Address::parse(c.at(0).get<std::string>(), c.at(1).get<uint16_t>()));
        } catch (const std::exception &) {
            return;
        }
        paths->add_candidates(more);
    }

    void path_changed(nat::PathKind kind, const net::Address &via) {
        nlohmann::json j{{"path", nat::path_kind_name(kind)}, {"via", via.to_string()}, {"switches", paths ? paths->switches() : 0}};
        if (quic::Connection *c = endpoint ? endpoint->find(winner) : nullptr) j["rtt_ms"] = c->stats().rtt_ms;
        emit({PP_EVENT_PATH_CHANGED, PP_LOG_INFO, 0, PP_OK,
              std::string("path to the host: ") + nat::path_kind_name(kind) + " via " + via.to_string(), j.dump()});
    }

    void on_closed(quic::Connection &conn, const quic::CloseInfo &info) {
        if (conn.id() == winner && winner) {
            winner = 0;
            bool was_connected;
            {
                std::lock_guard lock(m);
                was_connected = connected;
            }
            if (was_connected) {
                finish(info);
            } else if (!decided()) {
                if (info.kind == quic::CloseKind::peer)
                    fail(PP_ERR_CONNECTION_LOST, "the host closed the connection while checking the ticket");
                else
                    fail(PP_ERR_CONNECTION_LOST, std::string("connection lost while checking the ticket: ") +
                                                     quic::close_kind_name(info.kind));
            }
            return;
        }
        Attempt *a = attempt_of(conn.id());
        if (!a || a->done) return;
        a->done = true;
        a->why = info.detail.empty() ? quic::close_kind_name(info.kind) : info.detail;
        if (info.kind == quic::CloseKind::key_mismatch) {
            key_mismatch = true;
            key_mismatch_detail = info.detail;
        }
        if (winner || decided()) return;
        emit({PP_EVENT_LOG, PP_LOG_DEBUG, 0, PP_OK, a->address.to_string() + ": " + a->why, "{}"});
        if (next_attempt < attempts.size()) {
            dial_next();  // a failure starts the next candidate without waiting for the stagger
        }
        if (!has_pending()) fail_all();
    }

    void fail_all() {
        if (decided()) return;
        if (key_mismatch) {
            fail(PP_ERR_HOST_KEY_MISMATCH, "the host is not the one the ticket names: " + key_mismatch_detail);
            return;
        }
        std::string reasons;
        for (const auto &a : attempts) reasons += (reasons.empty() ? "" : "; ") + a.address.to_string() + ": " + a.why;
        fail(PP_ERR_UNREACHABLE, "host unreachable at " + candidate_list() + " (" + reasons + ")" + relay_hint());
    }

    // What the user can do when no path worked: the relay's own problem, or how to get one.
    std::string relay_hint() const {
        if (!relay_problem.empty()) return "; the relay path failed too: " + relay_problem;
        if (config.no_relay && ticket.relay) return "; the ticket offers a relay but --no-relay is set";
        bool has_relayed = false;
        for (const auto &c : ticket.candidates) has_relayed |= c.kind == PP_CANDIDATE_RELAYED;
        return has_relayed ? "" : nat_hint();
    }

    // Both NAT kinds (ours from STUN, the host's from its ticket) and the remedy that fits.
    std::string nat_hint() const {
        return rendezvous::unreachable_hint(nat_kind, rendezvous::ticket_nat_kind(ticket), rendezvous != nullptr);
    }

    void on_deadline() {
        if (decided()) return;
        if (key_mismatch) {
            fail(PP_ERR_HOST_KEY_MISMATCH, "the host is not the one the ticket names: " + key_mismatch_detail);
            return;
        }
        fail(PP_ERR_UNREACHABLE, "host unreachable at " + candidate_list() + ": timed out after " +
                                     seconds_text(config.connect_timeout_ms) + relay_hint());
    }

    void fail(pp_result code, std::string detail) {
        {
            std::lock_guard lock(m);
            if (connected || connect_error) return;
            connect_error = std::make_pair(code, detail);
        }
        cv.notify_all();
        if (stagger) stagger->cancel();
        if (deadline) deadline->cancel();
        // Close every attempt; the closes go out on the loop, after this callback.
        if (endpoint)
            for (auto *c : endpoint->connections()) c->close(http3::kNoError, "");
    }

    // The connection ended after it was up.
    void finish(const quic::CloseInfo &info) {
        pp_result code = PP_ERR_CONNECTION_LOST;
        std::string message;
        switch (info.kind) {
        case quic::CloseKind::peer:
            if (info.code == http3::kNoError || (!info.application && info.code == 0)) {
                code = PP_OK;
                message = "the host stopped sharing";
            } else if (info.application && info.code == ticket::kExpiredCloseCode) {
                code = PP_ERR_TICKET_EXPIRED;
                message = "the ticket expired: ask the host for a new one";
            } else {
                message = "the host closed the connection (error " + hex_code(info.code) +
                          (info.detail.empty() ? "" : ": " + info.detail) + ")";
            }
            break;
        case quic::CloseKind::local:
            code = PP_OK;
            message = "disconnected";
            break;
        case quic::CloseKind::idle_timeout:
            message = "connection lost: the host stopped answering (" + info.detail + ")";
            break;
        case quic::CloseKind::unreachable:
            message = "connection lost: the host is gone (" + info.detail + ")";
            break;
        default:
            message = std::string("connection lost: ") + quic::close_kind_name(info.kind) +
                      (info.detail.empty() ? "" : " (" + info.detail + ")");
            break;
        }
        {
            std::lock_guard lock(m);
            ended = code;
        }
        cv.notify_all();
        emit({PP_EVENT_STOPPED, code == PP_OK ? PP_LOG_INFO : PP_LOG_ERROR, 0, code, message,
              nlohmann::json{{"reason", message}}.dump()});
    }

    // ---- viewer::Upstream: one player request becomes one HTTP/3 request ----

    struct Relay : http3::ResponseHandler {
        Core *core;
        viewer::LocalResponse *sink;
        uint64_t conn_id;
        int64_t stream_id = -1;
        int status = 0;
        std::string content_type = "video/mp2t";
        std::string error_body;
        size_t unconsumed = 0;  // bytes the player has not taken: credit withheld from the host
        bool finished = false;

        Relay(Core *c, viewer::LocalResponse *s, uint64_t id) : core(c), sink(s), conn_id(id) {}

        http3::ClientSession *session() const { return conn_id == core->winner ? core->session() : nullptr; }

        void on_headers(int s, const std::vector<http3::Header> &headers) override {
            status = s;
            for (const auto &h : headers)
                if (h.name == "content-type") content_type = h.value;
            if (status == 200 && sink) sink->start(content_type);
        }
        void on_data(int64_t id, std::span<const uint8_t> data) override {
            if (!sink || status != 200) {
                if (sink && error_body.size() < kMaxErrorBody)
                    error_body.append(reinterpret_cast<const char *>(data.data()), data.size());
                if (auto *s = session()) s->consume(id, data.size());
                return;
            }
            if (sink->body(data) && unconsumed == 0) {
                if (auto *s = session()) s->consume(id, data.size());
            } else {
                unconsumed += data.size();  // the player is behind: the host waits for it
            }
        }
        void on_end() override {
            finished = true;
            if (!sink) return;
            auto *s = std::exchange(sink, nullptr);
            if (status == 200) {
                s->end(PP_OK);
            } else {
                pp_result code = status_error(status);
                // The host's own words where they help the player's user: host full, or this
                // viewer already runs as many players as the host allows (429, "too many streams").
                bool host_says = code == PP_ERR_HOST_FULL || (status == 429 && !error_body.empty());
                std::string reason = code == PP_ERR_TICKET_REJECTED ? "ticket rejected by host"
                                     : host_says                    ? error_body
                                                                    : "host answered HTTP " + std::to_string(status);
                s->end(code, reason);
            }
        }
        void on_error(uint64_t, const std::string &reason) override {
            finished = true;
            if (auto *s = std::exchange(sink, nullptr)) s->end(PP_ERR_CONNECTION_LOST, reason);
        }
        void resume() {
            if (unconsumed == 0) return;
            if (auto *s = session()) s->consume(stream_id, unconsumed);
            unconsumed = 0;
        }
    };

    struct RelayHandle : viewer::UpstreamRequest {
        std::shared_ptr<Relay> relay;
        explicit RelayHandle(std::shared_ptr<Relay> r) : relay(std::move(r)) {}
        ~RelayHandle() override {
            relay->sink = nullptr;
            if (!relay->finished)
                if (auto *s = relay->session()) s->cancel(relay->stream_id);
        }
        void resume() override { relay->resume(); }
    };

    std::unique_ptr<viewer::UpstreamRequest> open(const std::string &path, viewer::LocalResponse &sink) override {
        http3::ClientSession *s = session();
        if (!s) {
            sink.end(PP_ERR_CONNECTION_LOST, "the connection to the host is gone");
            return nullptr;
        }
        auto relay = std::make_shared<Relay>(this, &sink, winner);
        try {
            relay->stream_id = s->request("GET", path, auth, relay);
        } catch (const Error &e) {
            sink.end(e.code() == PP_ERR_STATE ? PP_ERR_CONNECTION_LOST : e.code(), e.what());
            return nullptr;
        }
        return std::make_unique<RelayHandle>(relay);
    }

    nlohmann::json stats() const {
        nlohmann::json j{{"path", path_name()}, {"found", found_name()}, {"nat", nat_kind},
                         {"switches", paths ? paths->switches() : 0}};
        if (rendezvous) j["rendezvous"] = rendezvous->stats();
        if (guesser) j["guess"] = guesser->stats();
        if (paths) {
            const auto &pc = paths->counters();
            j["via"] = paths->via().to_string();
            j["probes"] = {{"candidates", paths->candidates()}, {"sent", pc.probes_sent},
                           {"answered", pc.probes_answered}, {"answers", pc.answers_received},
                           {"peer_reflexive", pc.peer_reflexive}, {"rounds", pc.punch_rounds}};
        }
        if (turn) {
            const auto &t = turn->counters();
            j["relay"] = {{"server", turn->config().label},
                          {"relayed", turn->allocated() ? turn->relayed().to_string() : ""},
                          {"tx_datagrams", t.tx_datagrams}, {"rx_datagrams", t.rx_datagrams},
                          {"tx_bytes", t.tx_bytes}, {"rx_bytes", t.rx_bytes}};
        } else if (!relay_problem.empty()) {
            j["relay"] = {{"error", relay_problem}};
        }
        {
            std::lock_guard lock(m);
            j["connected"] = connected && !ended;
        }
        if (!peer.empty()) j["address"] = peer.to_string();
        // Which of the ticket's candidates the connection runs to (a "mapped" one is the host's
        // port mapping on its gateway).
        for (const auto &cand : ticket.candidates)
            if (!peer.empty() && net::Address::parse(cand.address, cand.port) == peer.unmapped())
                j["candidate"] = cand.kind == PP_CANDIDATE_MAPPED      ? "mapped"
                                 : cand.kind == PP_CANDIDATE_REFLEXIVE ? "reflexive"
                                 : cand.kind == PP_CANDIDATE_RELAYED   ? "relayed"
                                                                       : "local";
        if (endpoint && winner) {
            if (quic::Connection *c = endpoint->find(winner)) {
                auto s = c->stats();
                j["rtt_ms"] = s.rtt_ms;
                j["min_rtt_ms"] = s.min_rtt_ms;
                j["udp_bytes_received"] = s.rx_bytes;
                j["udp_bytes_sent"] = s.tx_bytes;
            }
            if (auto *s = session()) {
                j["bytes_received"] = s->body_bytes();
                j["requests"] = s->active_requests();
            }
        }
        if (local) j["local"] = local->stats();
        if (link) {
            j["link"] = link->stats();
            j["path_too_poor"] = link->too_poor();
        }
        if (!host_info.is_null()) j["host"] = host_info;
        return j;
    }
};

namespace {

void release(std::shared_ptr<Viewer::Core> core) {
    if (!core) return;
    if (core->loop && core->loop->on_loop_thread()) {
        core->events_open = false;
        std::thread([core = std::move(core)]() mutable { core.reset(); }).detach();
        return;
    }
    core.reset();
}

} // namespace

Viewer::Viewer(ViewerConfig config, EventSink events) {
    auto core = std::make_shared<Core>();
    core->ticket = ticket::decode(config.ticket_text);
    if (config.relay_only && config.no_relay)
        throw Error(PP_ERR_INVALID_ARGUMENT, "--relay-only and --no-relay contradict each other: pick one");
    if (core->ticket.relay && !config.no_relay) {
        // Resolved here: DNS blocks, and the loop must not.
        const auto &r = *core->ticket.relay;
        auto found = nat::resolve(r.host.find(':') != std::string::npos ? "[" + r.host + "]" : r.host, r.port);
        if (found.empty()) {
            core->relay_problem = "relay " + r.host + " does not resolve";
        } else {
            nat::TurnConfig tc;
            tc.server = found.front();
            tc.username = r.username;
            tc.password = r.credential;
            tc.label = "turn:" + (r.host.find(':') != std::string::npos ? "[" + r.host + "]" : r.host) + ":" +
                       std::to_string(r.port);
            core->relay = tc;
        }
    }
    if (config.connect_timeout_ms == 0) config.connect_timeout_ms = 10000;
    // STUN and the DHT's bootstrap are resolved here too (DNS blocks).
    if (!config.no_stun && !config.relay_only) {
        auto names = config.stun_servers.empty() ? nat::default_stun_servers() : config.stun_servers;
        for (const auto &name : names) {
            auto found = nat::resolve(name, 3478);
            core->stun_servers.insert(core->stun_servers.end(), found.begin(), found.end());
        }
    }
    core->config = std::move(config);
    core->events = std::move(events);
    core->loop = std::make_unique<net::Loop>("pp-viewer");
    Core *c = core.get();
    if (!c->config.no_dht && !c->config.relay_only) {
        auto bootstrap = c->config.dht_bootstrap.empty() ? rendezvous::default_bootstrap() : c->config.dht_bootstrap;
        if (!bootstrap.empty()) c->rendezvous = rendezvous::join_dht(*c->loop, bootstrap);
    }
    c->loop->call([c] { c->start(); });

    std::unique_lock lock(c->m);
    bool decided = c->cv.wait_for(lock, std::chrono::milliseconds(c->config.connect_timeout_ms + 5000),
                                  [c] { return c->connected || c->connect_error.has_value(); });
    std::optional<std::pair<pp_result, std::string>> error = c->connect_error;
    lock.unlock();
    if (!decided) error = std::make_pair(PP_ERR_INTERNAL, std::string("the connection attempt did not conclude"));
    if (error) {
        core.reset();  // tears the loop down before the error surfaces
        throw Error(error->first, error->second);
    }
    core_ = std::move(core);
}

Viewer::~Viewer() { release(std::move(core_)); }

std::string Viewer::url() const {
    std::lock_guard lock(core_->m);
    if (!core_->connected) throw Error(PP_ERR_STATE, "viewer is not connected");
    return core_->url;
}

std::string Viewer::stats_json() const {
    return core_->loop->call([&] { return core_->stats(); }).dump();
}

pp_result Viewer::wait(int timeout_ms) {
    std::unique_lock lock(core_->m);
    auto done = [&] { return core_->ended.has_value(); };
    if (timeout_ms < 0)
        core_->cv.wait(lock, done);
    else if (!core_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), done))
        return PP_ERR_STATE;
    return *core_->ended;
}

} // namespace pp
