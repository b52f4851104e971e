#include "net/loop.hpp"

#include <pthread.h>

#include "common/error.hpp"

namespace pp::net {

Loop::Loop(const char *name) {
    int rc = uv_loop_init(&loop_);
    if (rc < 0) throw Error(PP_ERR_IO, std::string("event loop: ") + uv_strerror(rc));
    uv_async_init(&loop_, &wakeup_, &Loop::on_async);
    wakeup_.data = this;
    std::promise<void> started;
    auto started_future = started.get_future();
    thread_ = std::thread([this, name, &started] {
        pthread_setname_np(pthread_self(), name);
        thread_id_ = std::this_thread::get_id();
        started.set_value();
        uv_run(&loop_, UV_RUN_DEFAULT);
    });
    started_future.wait();
}

Loop::~Loop() {
    post([this] {
        stopping_ = true;
        // Close every handle still open (the wakeup handle among them) so uv_run returns.
        uv_walk(
            &loop_,
            [](uv_handle_t *h, void *) {
                if (!uv_is_closing(h)) uv_close(h, nullptr);
            },
            nullptr);
    });
    if (thread_.joinable()) thread_.join();
    uv_loop_close(&loop_);
}

void Loop::post(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
    }
    uv_async_send(&wakeup_);
}

void Loop::on_async(uv_async_t *handle) { static_cast<Loop *>(handle->data)->drain(); }

void Loop::drain() {
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard lock(mutex_);
        batch.swap(tasks_);
    }
    for (auto &task : batch) task();
}

} // namespace pp::net
