// http3/server: the host side of HTTP/3. Collects each request's headers, asks the host's handler
// for a Response, and sends it: a short body from memory, or a long one straight from a
// stream::Reader — zero-copy, each byte released back to the Reader once the viewer acknowledged
// it. A Reader that runs dry parks its stream until resume_starved().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "http3/session.hpp"
#include "stream/source.hpp"

namespace pp::http3 {

struct Request {
    std::string method, path, authority;
    std::string authorization;    // the raw "authorization" value; compare in constant time
    std::vector<Header> headers;  // every other field
    bool oversized = false;       // the header block passed the size limit; fields were dropped
};

struct Response {
    int status = 200;
    std::vector<Header> headers;             // content-type etc. (content-length is added for `body`)
    std::string body;                        // used when there is no reader
    std::unique_ptr<stream::Reader> reader;  // a long body served until the reader's end
    // Close the connection once this response is delivered (the peer failed to authenticate:
    // it gets its answer, then no connection to keep probing with).
    bool close_connection = false;
};

// Runs on the loop thread for each complete request.
using RequestHandler = std::function<Response(quic::Connection &, const Request &)>;

class ServerSession final : public Session {
public:
    ServerSession(quic::Connection &conn, RequestHandler handler);
    ~ServerSession() override;

    // Re-offers every stream whose Reader came back empty (call after the Source's wake).
    void resume_starved();
    // Queues about `bytes` of filler on each long body whose Reader has it (stream::Reader::pad),
    // sent at once; false when none has.
    bool pad(size_t bytes);

    struct Stats {
        uint64_t requests = 0;
        uint64_t body_bytes_acked = 0;  // body bytes the peer confirmed, all streams
        uint64_t drops = 0;             // Reader-reported skips (slow viewer), all streams
        uint64_t callback_errors = 0;   // exceptions caught at an nghttp3 callback: stream reset
        int64_t backlog_ms = 0;         // the furthest-behind reader's lag behind the live edge
        uint64_t backlog_bytes = 0;     // what its readers have not taken yet, all streams
        uint64_t held_bytes = 0;        // taken but not yet acknowledged (the QUIC send buffer)
        uint64_t padding_held_bytes = 0;  // of which filler (pad())
        uint64_t padding_bytes = 0;       // filler taken, open streams
        uint64_t lost_packets = 0;      // packets with body data declared lost, open streams
        size_t open_streams = 0, streaming = 0;
    };
    Stats stats() const;

protected:
    void callbacks(nghttp3_callbacks &cb) override;

private:
    struct Stream;
    struct Callbacks;
    friend struct Callbacks;

    void respond(Stream &stream);
    // An exception reached an nghttp3 callback: count it and reset that stream alone.
    void fail_stream(int64_t stream_id) noexcept;

    RequestHandler handler_;
    std::unordered_map<int64_t, std::unique_ptr<Stream>> streams_;
    Stats closed_;  // totals of streams already gone
};

} // namespace pp::http3
