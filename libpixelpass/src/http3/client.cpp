#include "http3/client.hpp"

#include <nghttp3/nghttp3.h>

#include <charconv>

#include "common/error.hpp"
#include "http3/nv.hpp"

namespace pp::http3 {

struct ClientSession::Request {
    int64_t id;
    std::shared_ptr<ResponseHandler> handler;
    int status = 0;
    std::vector<Header> headers;
    bool headers_done = false, ended = false;
};

struct ClientSession::Callbacks {
    static ClientSession &self(void *user_data) { return *static_cast<ClientSession *>(user_data); }

    static Request *find(void *user_data, int64_t stream_id) {
        auto &s = self(user_data);
        auto it = s.requests_.find(stream_id);
        return it == s.requests_.end() ? nullptr : it->second.get();
    }

    template <typename F>
    static int guard(F &&body) {
        try {
            body();
            return 0;
        } catch (const std::exception &) {
            return NGHTTP3_ERR_CALLBACK_FAILURE;
        }
    }

    static int recv_header(nghttp3_conn *, int64_t stream_id, int32_t token, nghttp3_rcbuf *name,
                           nghttp3_rcbuf *value, uint8_t, void *user_data, void *) {
        Request *r = find(user_data, stream_id);
        if (!r || r->headers_done) return 0;
        std::string_view v = view(value);
        if (token == NGHTTP3_QPACK_TOKEN__STATUS) {
            int status = 0;
            std::from_chars(v.data(), v.data() + v.size(), status);
            r->status = status;
        } else {
            r->headers.push_back({std::string(view(name)), std::string(v)});
        }
        return 0;
    }

    static int end_headers(nghttp3_conn *, int64_t stream_id, int, void *user_data, void *) {
        Request *r = find(user_data, stream_id);
        if (!r || r->headers_done) return 0;
        if (r->status >= 100 && r->status < 200) {  // interim response: wait for the final one
            r->status = 0;
            r->headers.clear();
            return 0;
        }
        r->headers_done = true;
        auto handler = r->handler;
        return guard([&] { handler->on_headers(r->status, r->headers); });
    }

    static int recv_data(nghttp3_conn *, int64_t stream_id, const uint8_t *data, size_t len,
                         void *user_data, void *) {
        auto &s = self(user_data);
        s.body_bytes_ += len;
        Request *r = find(user_data, stream_id);
        if (!r) {
            s.conn_.credit(stream_id, len);  // cancelled: nobody will consume it
            return 0;
        }
        auto handler = r->handler;
        return guard([&] { handler->on_data(stream_id, {data, len}); });
    }

    static int deferred_consume(nghttp3_conn *, int64_t stream_id, size_t consumed, void *user_data, void *) {
        self(user_data).conn_.credit(stream_id, consumed);
        return 0;
    }

    static int end_stream(nghttp3_conn *, int64_t stream_id, void *user_data, void *) {
        Request *r = find(user_data, stream_id);
        if (!r || r->ended) return 0;
        r->ended = true;
        auto handler = r->handler;
        return guard([&] { handler->on_end(); });
    }

    static int stream_close(nghttp3_conn *, int64_t stream_id, uint64_t app_error, void *user_data, void *) {
        auto &s = self(user_data);
        auto it = s.requests_.find(stream_id);
        if (it == s.requests_.end()) return 0;
        std::unique_ptr<Request> r = std::move(it->second);
        s.requests_.erase(it);
        if (r->ended) return 0;
        return guard([&] {
            r->handler->on_error(app_error, "the host reset the stream (HTTP/3 error 0x" +
                                                [](uint64_t c) {
                                                    char b[20];
                                                    auto res = std::to_chars(b, b + sizeof b, c, 16);
                                                    return std::string(b, res.ptr);
                                                }(app_error) + ")");
        });
    }

    static int stop_sending(nghttp3_conn *, int64_t stream_id, uint64_t app_error, void *user_data, void *) {
        self(user_data).conn_.shutdown_stream_read(stream_id, app_error);
        return 0;
    }

    static int reset_stream(nghttp3_conn *, int64_t stream_id, uint64_t app_error, void *user_data, void *) {
        self(user_data).conn_.shutdown_stream_write(stream_id, app_error);
        return 0;
    }
};

ClientSession::ClientSession(quic::Connection &conn) : Session(conn, false) {}

ClientSession::~ClientSession() {
    auto requests = std::move(requests_);
    for (auto &[id, r] : requests) {
        if (r->ended) continue;
        try {
            r->handler->on_error(0, "connection to the host closed");
        } catch (...) {
        }
    }
}

void ClientSession::callbacks(nghttp3_callbacks &cb) {
    cb.stream_close = Callbacks::stream_close;
    cb.recv_data = Callbacks::recv_data;
    cb.deferred_consume = Callbacks::deferred_consume;
    cb.recv_header = Callbacks::recv_header;
    cb.end_headers = Callbacks::end_headers;
    cb.stop_sending = Callbacks::stop_sending;
    cb.end_stream = Callbacks::end_stream;
    cb.reset_stream = Callbacks::reset_stream;
}

int64_t ClientSession::request(std::string_view method, std::string_view path,
                               const std::vector<Header> &headers, std::shared_ptr<ResponseHandler> handler) {
    if (!h3() || conn_.closed()) throw Error(PP_ERR_STATE, "the connection to the host is not ready");
    int64_t id = conn_.open_bidi_stream();
    if (id < 0) throw Error(PP_ERR_STATE, "the host allows no more concurrent requests");
    std::vector<nghttp3_nv> nva{make_nv(":method", method), make_nv(":scheme", "https"),
                                make_nv(":authority", "pixelpass"), make_nv(":path", path)};
    for (const auto &h : headers) nva.push_back(make_nv(h.name, h.value));
    int rv = nghttp3_conn_submit_request(h3(), id, nva.data(), nva.size(), nullptr, nullptr);
    if (rv != 0) {
        conn_.shutdown_stream(id, NGHTTP3_H3_INTERNAL_ERROR);
        throw Error(PP_ERR_INTERNAL, std::string("HTTP/3 request: ") + nghttp3_strerror(rv));
    }
    auto r = std::make_unique<Request>();
    r->id = id;
    r->handler = std::move(handler);
    requests_.emplace(id, std::move(r));
    conn_.schedule_write();
    return id;
}

void ClientSession::consume(int64_t stream_id, size_t bytes) { conn_.credit(stream_id, bytes); }

void ClientSession::cancel(int64_t stream_id) {
    auto it = requests_.find(stream_id);
    if (it == requests_.end()) return;
    bool ended = it->second->ended;
    requests_.erase(it);
    if (!ended) conn_.shutdown_stream(stream_id, NGHTTP3_H3_REQUEST_CANCELLED);
}

} // namespace pp::http3
