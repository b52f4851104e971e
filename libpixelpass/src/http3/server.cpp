#include "http3/server.hpp"

#include <nghttp3/nghttp3.h>

#include <algorithm>
#include <string_view>
#include <type_traits>

#include "http3/nv.hpp"

namespace pp::http3 {

namespace {

constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr size_t kReadChunk = 256 * 1024;  // body bytes per DATA frame from a Reader

} // namespace

struct ServerSession::Stream {
    int64_t id;
    Request request;
    size_t header_bytes = 0;
    bool responded = false;
    std::unique_ptr<stream::Reader> reader;
    std::string body;
    bool body_sent = false;
    bool starved = false;
    bool failed = false;  // a callback threw for it: reset, waiting for its close
    bool close_connection = false;  // Response::close_connection
    uint64_t acked = 0;
};

// Every callback body runs inside guard(): an exception must never unwind through nghttp3's C
// frames (undefined behaviour, and nghttp3's state would be left half-updated). A throw resets
// only the stream it concerned, is counted, and the connection and its other streams go on.
struct ServerSession::Callbacks {
    static ServerSession &self(void *user_data) { return *static_cast<ServerSession *>(user_data); }

    template <typename F>
    static auto guard(void *user_data, int64_t stream_id, F &&body) noexcept -> decltype(body()) {
        try {
            return body();
        } catch (...) {
            self(user_data).fail_stream(stream_id);
        }
        using R = decltype(body());
        if constexpr (std::is_same_v<R, nghttp3_ssize>) return NGHTTP3_ERR_WOULDBLOCK;  // until its close
        else return 0;
    }

    static int begin_headers(nghttp3_conn *conn, int64_t stream_id, void *user_data, void *) {
        return guard(user_data, stream_id, [&] {
            auto &s = self(user_data);
            auto &slot = s.streams_[stream_id];
            if (!slot) {
                slot = std::make_unique<Stream>();
                slot->id = stream_id;
            }
            nghttp3_conn_set_stream_user_data(conn, stream_id, slot.get());
            return 0;
        });
    }

    static int recv_header(nghttp3_conn *, int64_t stream_id, int32_t token, nghttp3_rcbuf *name,
                           nghttp3_rcbuf *value, uint8_t, void *user_data, void *stream_user_data) {
        return guard(user_data, stream_id, [&] {
            auto *st = static_cast<Stream *>(stream_user_data);
            if (!st) return 0;
            std::string_view n = view(name), v = view(value);
            st->header_bytes += n.size() + v.size() + 32;
            if (st->header_bytes > kMaxHeaderBytes) {
                st->request.oversized = true;
                return 0;
            }
            switch (token) {
            case NGHTTP3_QPACK_TOKEN__METHOD: st->request.method = v; break;
            case NGHTTP3_QPACK_TOKEN__PATH: st->request.path = v; break;
            case NGHTTP3_QPACK_TOKEN__AUTHORITY: st->request.authority = v; break;
            case NGHTTP3_QPACK_TOKEN_AUTHORIZATION: st->request.authorization = v; break;
            default: st->request.headers.push_back({std::string(n), std::string(v)}); break;
            }
            return 0;
        });
    }

    static int recv_data(nghttp3_conn *, int64_t stream_id, const uint8_t *, size_t len, void *user_data,
                         void *) {
        // Request bodies carry nothing we use: drop them and give the credit back at once.
        return guard(user_data, stream_id, [&] {
            self(user_data).conn_.credit(stream_id, len);
            return 0;
        });
    }

    static int deferred_consume(nghttp3_conn *, int64_t stream_id, size_t consumed, void *user_data, void *) {
        return guard(user_data, stream_id, [&] {
            self(user_data).conn_.credit(stream_id, consumed);
            return 0;
        });
    }

    static int end_stream(nghttp3_conn *, int64_t stream_id, void *user_data, void *stream_user_data) {
        return guard(user_data, stream_id, [&] {
            auto *st = static_cast<Stream *>(stream_user_data);
            if (st && !st->responded) self(user_data).respond(*st);
            return 0;
        });
    }

    static nghttp3_ssize read_data(nghttp3_conn *, int64_t stream_id, nghttp3_vec *vec, size_t veccnt,
                                   uint32_t *pflags, void *user_data, void *stream_user_data) {
        return guard(user_data, stream_id, [&]() -> nghttp3_ssize {
            auto *st = static_cast<Stream *>(stream_user_data);
            if (st && st->failed) return NGHTTP3_ERR_WOULDBLOCK;  // reset; its close is coming
            return fill(st, vec, veccnt, pflags);
        });
    }

    static nghttp3_ssize fill(Stream *st, nghttp3_vec *vec, size_t veccnt, uint32_t *pflags) {
        if (!st) {
            *pflags |= NGHTTP3_DATA_FLAG_EOF;
            return 0;
        }
        if (!st->reader) {
            *pflags |= NGHTTP3_DATA_FLAG_EOF;
            if (st->body_sent || st->body.empty()) return 0;
            st->body_sent = true;
            vec[0].base = reinterpret_cast<uint8_t *>(st->body.data());
            vec[0].len = st->body.size();
            return 1;
        }
        size_t count = 0, total = 0;
        while (count < veccnt && total < kReadChunk) {
            std::span<const uint8_t> piece = st->reader->read(kReadChunk - total);
            if (piece.empty()) break;
            vec[count].base = const_cast<uint8_t *>(piece.data());
            vec[count].len = piece.size();
            total += piece.size();
            ++count;
        }
        if (st->reader->at_end()) {
            *pflags |= NGHTTP3_DATA_FLAG_EOF;
            return static_cast<nghttp3_ssize>(count);
        }
        if (count == 0) {
            st->starved = true;  // the Source wakes us through resume_starved()
            return NGHTTP3_ERR_WOULDBLOCK;
        }
        return static_cast<nghttp3_ssize>(count);
    }

    static int acked_stream_data(nghttp3_conn *, int64_t stream_id, uint64_t len, void *user_data,
                                 void *stream_user_data) {
        return guard(user_data, stream_id, [&] {
            auto *st = static_cast<Stream *>(stream_user_data);
            if (!st || st->failed) return 0;
            st->acked += len;
            if (st->reader) st->reader->release(static_cast<size_t>(len));
            return 0;
        });
    }

    static int stream_close(nghttp3_conn *, int64_t stream_id, uint64_t, void *user_data, void *) {
        return guard(user_data, -1, [&] {
            auto &s = self(user_data);
            auto it = s.streams_.find(stream_id);
            if (it != s.streams_.end()) {
                Stream &st = *it->second;
                if (st.close_connection) s.conn_.close(kNoError, "request refused");
                s.closed_.body_bytes_acked += st.acked;
                if (st.reader) s.closed_.drops += st.reader->stats().value("drops", uint64_t{0});
                s.streams_.erase(it);
            }
            if (quic::Connection::is_bidi_stream(stream_id) && !s.conn_.is_local_stream(stream_id))
                s.conn_.extend_max_streams_bidi(1);
            return 0;
        });
    }

    static int stop_sending(nghttp3_conn *, int64_t stream_id, uint64_t app_error, void *user_data, void *) {
        return guard(user_data, stream_id, [&] {
            self(user_data).conn_.shutdown_stream_read(stream_id, app_error);
            return 0;
        });
    }

    static int reset_stream(nghttp3_conn *, int64_t stream_id, uint64_t app_error, void *user_data, void *) {
        return guard(user_data, stream_id, [&] {
            self(user_data).conn_.shutdown_stream_write(stream_id, app_error);
            return 0;
        });
    }
};

void ServerSession::fail_stream(int64_t stream_id) noexcept {
    ++closed_.callback_errors;
    if (stream_id < 0) return;
    auto it = streams_.find(stream_id);
    if (it != streams_.end()) it->second->failed = true;
    try {
        conn_.shutdown_stream(stream_id, kInternalError);
        conn_.schedule_write();
    } catch (...) {
        // Resetting failed too: the stream is left to the connection's end.
    }
}

ServerSession::ServerSession(quic::Connection &conn, RequestHandler handler)
    : Session(conn, true), handler_(std::move(handler)) {}

ServerSession::~ServerSession() = default;

void ServerSession::callbacks(nghttp3_callbacks &cb) {
    cb.acked_stream_data = Callbacks::acked_stream_data;
    cb.stream_close = Callbacks::stream_close;
    cb.recv_data = Callbacks::recv_data;
    cb.deferred_consume = Callbacks::deferred_consume;
    cb.begin_headers = Callbacks::begin_headers;
    cb.recv_header = Callbacks::recv_header;
    cb.stop_sending = Callbacks::stop_sending;
    cb.end_stream = Callbacks::end_stream;
    cb.reset_stream = Callbacks::reset_stream;
}

void ServerSession::respond(Stream &st) {
    st.responded = true;
    ++closed_.requests;
    Response r;
    if (st.request.oversized) {
        r.status = 431;
    } else {
        r = handler_(conn_, st.request);
    }
    st.close_connection = r.close_connection;
    std::string status = std::to_string(r.status);
    std::string length;
    std::vector<nghttp3_nv> nva;
    nva.push_back(make_nv(":status", status));
    for (const auto &h : r.headers) nva.push_back(make_nv(h.name, h.value));
    nghttp3_data_reader dr{Callbacks::read_data};
    const nghttp3_data_reader *reader = nullptr;
    if (r.reader) {
        st.reader = std::move(r.reader);
        reader = &dr;
    } else {
        length = std::to_string(r.body.size());
        nva.push_back(make_nv("content-length", length));
        st.body = std::move(r.body);
        if (!st.body.empty()) reader = &dr;
        // A short answer goes before the long bodies on this connection: a viewer asking how its
        // path fares (GET /link) while the video saturates that path gets it within a round trip,
        // not after the video queued ahead of it. Best effort: the default order still delivers.
        nghttp3_pri urgent{NGHTTP3_DEFAULT_URGENCY - 1, 0};
        nghttp3_conn_set_stream_priority(h3(), st.id, &urgent);
    }
    int rv = nghttp3_conn_submit_response(h3(), st.id, nva.data(), nva.size(), reader);
    if (rv != 0)
        throw quic::ApplicationError(nghttp3_err_infer_quic_app_error_code(rv),
                                     std::string("HTTP/3 response: ") + nghttp3_strerror(rv));
    conn_.schedule_write();
}

void ServerSession::resume_starved() {
    bool any = false;
    for (auto &[id, st] : streams_) {
        if (!st->starved) continue;
        st->starved = false;
        nghttp3_conn_resume_stream(h3(), id);
        any = true;
    }
    if (any) conn_.schedule_write();
}

bool ServerSession::pad(size_t bytes) {
    bool any = false;
    for (auto &[id, st] : streams_) {
        if (!st->reader || st->failed || !st->reader->pad(bytes)) continue;
        any = true;
        if (st->starved) {
            st->starved = false;
            nghttp3_conn_resume_stream(h3(), id);
        }
    }
    if (any) conn_.schedule_write();
    return any;
}

ServerSession::Stats ServerSession::stats() const {
    Stats s = closed_;
    for (const auto &[id, st] : streams_) {
        s.body_bytes_acked += st->acked;
        ++s.open_streams;
        if (st->reader) {
            ++s.streaming;
            auto rs = st->reader->stats();
            s.drops += rs.value("drops", uint64_t{0});
            s.backlog_ms = std::max(s.backlog_ms, rs.value("backlog_ms", int64_t{0}));
            s.backlog_bytes += rs.value("backlog", uint64_t{0});
            s.held_bytes += rs.value("held_bytes", uint64_t{0});
            s.padding_held_bytes += rs.value("padding_held_bytes", uint64_t{0});
            s.padding_bytes += rs.value("padding_bytes", uint64_t{0});
            s.lost_packets += conn_.stream_lost_packets(st->id);
        }
    }
    return s;
}

} // namespace pp::http3
