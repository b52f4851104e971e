// net/handle: RAII ownership of a libuv handle. libuv frees nothing itself and a handle's memory
// must outlive uv_close() until its close callback runs, so the owner hands the memory to that
// callback instead of deleting it. Use only on the loop thread.
#pragma once

#include <memory>

#include <uv.h>

namespace pp::net {

template <typename T>
class Handle {
public:
    Handle() : handle_(std::make_unique<T>()) {}
    ~Handle() { close(); }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;

    T *get() const { return handle_.get(); }
    // Call right after a successful uv_*_init: from then on the handle must be closed, not freed.
    void initialized() { initialized_ = true; }

    void close() {
        if (!handle_) return;
        if (!initialized_) {
            handle_.reset();
            return;
        }
        auto *raw = reinterpret_cast<uv_handle_t *>(handle_.release());
        raw->data = nullptr;
        uv_close(raw, [](uv_handle_t *h) { std::unique_ptr<T> owner(reinterpret_cast<T *>(h)); });
    }

private:
    std::unique_ptr<T> handle_;
    bool initialized_ = false;
};

} // namespace pp::net
