#include "http3/session.hpp"

#include <nghttp3/nghttp3.h>

#include "common/error.hpp"

namespace pp::http3 {

static_assert(sizeof(quic::Vec) == sizeof(nghttp3_vec) &&
              offsetof(quic::Vec, base) == offsetof(nghttp3_vec, base) &&
              offsetof(quic::Vec, len) == offsetof(nghttp3_vec, len));

namespace {

[[noreturn]] void fail(int liberr, const char *what) {
    throw quic::ApplicationError(nghttp3_err_infer_quic_app_error_code(liberr),
                                 std::string(what) + ": " + nghttp3_strerror(liberr));
}

} // namespace

Session::Session(quic::Connection &conn, bool server)
    : conn_(conn), server_(server), h3_(nullptr, nghttp3_conn_del) {}

Session::~Session() = default;

void Session::start() {
    if (conn_.uni_streams_left() < 3)
        throw quic::ApplicationError(NGHTTP3_H3_GENERAL_PROTOCOL_ERROR,
                                     "peer allows fewer than 3 unidirectional streams");
    nghttp3_callbacks cb{};
    callbacks(cb);
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    // Few, small header blocks: no dynamic table, so no stream ever waits on QPACK.
    settings.qpack_max_dtable_capacity = 0;
    settings.qpack_encoder_max_dtable_capacity = 0;
    settings.qpack_blocked_streams = 0;
    settings.max_field_section_size = 16 * 1024;
    nghttp3_conn *raw = nullptr;
    int rv = server_ ? nghttp3_conn_server_new(&raw, &cb, &settings, nghttp3_mem_default(), this)
                     : nghttp3_conn_client_new(&raw, &cb, &settings, nghttp3_mem_default(), this);
    if (rv != 0) fail(rv, "HTTP/3 connection");
    h3_.reset(raw);
    if (server_) nghttp3_conn_set_max_client_streams_bidi(raw, conn_.local_max_streams_bidi());

    int64_t control = conn_.open_uni_stream();
    int64_t encoder = conn_.open_uni_stream();
    int64_t decoder = conn_.open_uni_stream();
    if (control < 0 || encoder < 0 || decoder < 0)
        throw quic::ApplicationError(NGHTTP3_H3_INTERNAL_ERROR, "cannot open HTTP/3 control streams");
    if ((rv = nghttp3_conn_bind_control_stream(raw, control)) != 0) fail(rv, "HTTP/3 control stream");
    if ((rv = nghttp3_conn_bind_qpack_streams(raw, encoder, decoder)) != 0) fail(rv, "QPACK streams");
}

uint64_t Session::receive(int64_t stream_id, std::span<const uint8_t> data, bool fin) {
    if (!h3_) return data.size();
    nghttp3_ssize n = nghttp3_conn_read_stream(h3_.get(), stream_id, data.data(), data.size(), fin);
    if (n < 0) fail(static_cast<int>(n), "HTTP/3 read");
    // Body bytes handed to recv_data are not in n: their owner credits them when consumed.
    return static_cast<uint64_t>(n);
}

void Session::acked(int64_t stream_id, uint64_t bytes) {
    if (!h3_) return;
    if (int rv = nghttp3_conn_add_ack_offset(h3_.get(), stream_id, bytes); rv != 0) fail(rv, "HTTP/3 ack");
}

void Session::stream_closed(int64_t stream_id, std::optional<uint64_t> app_error) {
    if (!h3_) return;
    int rv = nghttp3_conn_close_stream(h3_.get(), stream_id, app_error.value_or(NGHTTP3_H3_NO_ERROR));
    if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
        // A stream nghttp3 never saw (opened, then reset before any frame): give the peer its
        // stream credit back ourselves.
        if (server_ && quic::Connection::is_bidi_stream(stream_id) && !conn_.is_local_stream(stream_id))
            conn_.extend_max_streams_bidi(1);
        return;
    }
    if (rv != 0) fail(rv, "HTTP/3 stream close");
}

void Session::stream_reset(int64_t stream_id, uint64_t) {
    if (!h3_) return;
    if (int rv = nghttp3_conn_shutdown_stream_read(h3_.get(), stream_id); rv != 0) fail(rv, "HTTP/3 reset");
}

void Session::stream_stop_sending(int64_t stream_id, uint64_t) {
    if (!h3_) return;
    if (int rv = nghttp3_conn_shutdown_stream_read(h3_.get(), stream_id); rv != 0)
        fail(rv, "HTTP/3 stop sending");
}

void Session::stream_unblocked(int64_t stream_id) {
    if (!h3_) return;
    if (int rv = nghttp3_conn_unblock_stream(h3_.get(), stream_id); rv != 0) fail(rv, "HTTP/3 unblock");
}

void Session::remote_streams_bidi(uint64_t max) {
    if (h3_ && server_) nghttp3_conn_set_max_client_streams_bidi(h3_.get(), max);
}

quic::Application::Chunk Session::pending(std::span<quic::Vec> vec) {
    Chunk chunk;
    if (!h3_) return chunk;
    int fin = 0;
    nghttp3_ssize n = nghttp3_conn_writev_stream(h3_.get(), &chunk.stream_id, &fin,
                                                 reinterpret_cast<nghttp3_vec *>(vec.data()), vec.size());
    if (n < 0) fail(static_cast<int>(n), "HTTP/3 write");
    chunk.fin = fin != 0;
    chunk.count = static_cast<size_t>(n);
    return chunk;
}

void Session::written(int64_t stream_id, size_t bytes) {
    if (!h3_ || stream_id < 0) return;
    if (int rv = nghttp3_conn_add_write_offset(h3_.get(), stream_id, bytes); rv != 0)
        fail(rv, "HTTP/3 write offset");
}

void Session::blocked(int64_t stream_id) {
    if (h3_ && stream_id >= 0) nghttp3_conn_block_stream(h3_.get(), stream_id);
}

void Session::write_shut(int64_t stream_id) {
    if (h3_ && stream_id >= 0) nghttp3_conn_shutdown_stream_write(h3_.get(), stream_id);
}

} // namespace pp::http3
