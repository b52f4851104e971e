// quic/application: the seam between a QUIC connection and the protocol riding on it (HTTP/3).
// The connection calls these from its read and write paths; the application answers in stream
// terms only, so no ngtcp2 type crosses into http3/ and no nghttp3 type into quic/.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

namespace pp::quic {

// One piece of stream data to send. Same layout as ngtcp2_vec and nghttp3_vec.
struct Vec {
    const uint8_t *base;
    size_t len;
};

// Thrown by an Application to close the whole connection with an application error code.
class ApplicationError : public std::runtime_error {
public:
    ApplicationError(uint64_t code, const std::string &what) : std::runtime_error(what), code_(code) {}
    uint64_t code() const { return code_; }

private:
    uint64_t code_;
};

class Application {
public:
    virtual ~Application() = default;

    // 1-RTT keys are in place: open the application's own (control) streams.
    virtual void start() = 0;

    // Stream data arrived in order. Returns how many of these bytes the connection may credit
    // back to the peer's flow control at once; the application credits the rest later through
    // Connection::credit() (how a slow consumer pushes back on the sender).
    virtual uint64_t receive(int64_t stream_id, std::span<const uint8_t> data, bool fin) = 0;
    // The peer acknowledged `bytes` more of what was sent on the stream: they can be released.
    virtual void acked(int64_t stream_id, uint64_t bytes) = 0;
    // The stream is gone in both directions; `app_error` when the peer or we reset it.
    virtual void stream_closed(int64_t stream_id, std::optional<uint64_t> app_error) = 0;
    // The peer reset its sending side (RESET_STREAM).
    virtual void stream_reset(int64_t stream_id, uint64_t app_error) = 0;
    // The peer asked us to stop sending (STOP_SENDING).
    virtual void stream_stop_sending(int64_t stream_id, uint64_t app_error) = 0;
    // The peer raised the stream's flow-control limit: a blocked stream may send again.
    virtual void stream_unblocked(int64_t stream_id) = 0;
    // The peer may now open `max` bidirectional streams in total.
    virtual void remote_streams_bidi(uint64_t max) = 0;

    // Write path. pending() fills `vec` with the next data to send and names its stream (-1 when
    // there is nothing); written() reports how much of it went into packets; blocked() that the
    // stream hit flow control; write_shut() that the stream's sending side is closed.
    struct Chunk {
        int64_t stream_id = -1;
        bool fin = false;
        size_t count = 0;
    };
    virtual Chunk pending(std::span<Vec> vec) = 0;
    virtual void written(int64_t stream_id, size_t bytes) = 0;
    virtual void blocked(int64_t stream_id) = 0;
    virtual void write_shut(int64_t stream_id) = 0;
};

} // namespace pp::quic
