// http3/session: what the HTTP/3 server and client sessions share — the nghttp3 connection on a
// QUIC connection, its three unidirectional streams, and the glue that moves stream data between
// nghttp3 and the quic::Application interface (write path, acknowledgements, stream lifecycle).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quic/application.hpp"
#include "quic/connection.hpp"

struct nghttp3_conn;
struct nghttp3_callbacks;

namespace pp::http3 {

inline constexpr uint64_t kNoError = 0x100;          // H3_NO_ERROR
inline constexpr uint64_t kInternalError = 0x102;    // H3_INTERNAL_ERROR
inline constexpr uint64_t kRequestCancelled = 0x10c; // H3_REQUEST_CANCELLED

struct Header {
    std::string name, value;
};

class Session : public quic::Application {
public:
    ~Session() override;

    quic::Connection &connection() const { return conn_; }

    // quic::Application
    void start() override;
    uint64_t receive(int64_t stream_id, std::span<const uint8_t> data, bool fin) override;
    void acked(int64_t stream_id, uint64_t bytes) override;
    void stream_closed(int64_t stream_id, std::optional<uint64_t> app_error) override;
    void stream_reset(int64_t stream_id, uint64_t app_error) override;
    void stream_stop_sending(int64_t stream_id, uint64_t app_error) override;
    void stream_unblocked(int64_t stream_id) override;
    void remote_streams_bidi(uint64_t max) override;
    Chunk pending(std::span<quic::Vec> vec) override;
    void written(int64_t stream_id, size_t bytes) override;
    void blocked(int64_t stream_id) override;
    void write_shut(int64_t stream_id) override;

protected:
    Session(quic::Connection &conn, bool server);
    // Fills the role-specific callbacks (headers, data, stream end...). The user data of every
    // callback is this Session.
    virtual void callbacks(nghttp3_callbacks &cb) = 0;
    nghttp3_conn *h3() const { return h3_.get(); }

    quic::Connection &conn_;

private:
    const bool server_;
    std::unique_ptr<nghttp3_conn, void (*)(nghttp3_conn *)> h3_;
};

} // namespace pp::http3
