// http3/client: the viewer side of HTTP/3 — several concurrent GETs on one QUIC connection, each
// streaming its response to a handler. Body bytes are credited back to the host only when the
// handler says it consumed them, so a slow player slows the host down instead of filling memory.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http3/session.hpp"

namespace pp::http3 {

class ResponseHandler {
public:
    virtual ~ResponseHandler() = default;
    virtual void on_headers(int status, const std::vector<Header> &headers) = 0;
    // A piece of the body, valid during the call only. Call ClientSession::consume() for these
    // bytes once they are passed on (now or later): until then the host's window stays shut.
    virtual void on_data(int64_t stream_id, std::span<const uint8_t> data) = 0;
    // The whole response arrived.
    virtual void on_end() = 0;
    // The response was cut: the stream was reset or the connection went. `code` is the HTTP/3
    // error code (0 when the connection itself ended).
    virtual void on_error(uint64_t code, const std::string &reason) = 0;
};

class ClientSession final : public Session {
public:
    explicit ClientSession(quic::Connection &conn);
    // Tells every handler still waiting that the connection is gone.
    ~ClientSession() override;

    // Sends a GET (or other bodiless request) and returns its stream ID. Throws
    // pp::Error(PP_ERR_STATE) when HTTP/3 is not up yet or the host allows no more streams.
    int64_t request(std::string_view method, std::string_view path, const std::vector<Header> &headers,
                    std::shared_ptr<ResponseHandler> handler);
    // `bytes` of a response body were passed on: let the host send that much more.
    void consume(int64_t stream_id, size_t bytes);
    // Abandons a request: no more callbacks for it, the host is told to stop.
    void cancel(int64_t stream_id);
    bool ready() const { return h3() != nullptr; }

    uint64_t body_bytes() const { return body_bytes_; }
    size_t active_requests() const { return requests_.size(); }

protected:
    void callbacks(nghttp3_callbacks &cb) override;

private:
    struct Request;
    struct Callbacks;
    friend struct Callbacks;

    std::unordered_map<int64_t, std::unique_ptr<Request>> requests_;
    uint64_t body_bytes_ = 0;
};

} // namespace pp::http3
