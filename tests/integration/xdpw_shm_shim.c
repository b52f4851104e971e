/*
 * xdpw_shm_shim: TEST-ONLY LD_PRELOAD for xdg-desktop-portal-wlr 0.7 in the headless portal rig
 * (portal_rig.sh). Never shipped, never installed.
 *
 * Why: xdpw 0.7 refuses to start a screencast unless wlr-screencopy reported a DMA-BUF format for
 * the frame (src/screencast/screencast.c, start_screencast(): it requires
 * screencopy_frame_info[DMABUF].format whenever its portal protocol version is >= 3, which is
 * always). sway with the pixman renderer (no GPU) only ever offers shared-memory buffers, so every
 * share fails with "unable to receive a valid format from wlr_screencopy" (upstream issue #289).
 *
 * What: when xdpw attaches its listener to a zwlr_screencopy_frame_v1, this wraps it so that each
 * shm `buffer` event is followed by a synthetic `linux_dmabuf` event with the same format and size.
 * That satisfies the check. xdpw has no GBM device on such a machine, so it still offers PipeWire
 * only shared-memory buffers: the capture itself is the real shm path.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

struct wl_proxy;
const char *wl_proxy_get_class(struct wl_proxy *proxy);

/* zwlr_screencopy_frame_v1's listener (wlr-screencopy-unstable-v1, version 3), in event order. */
struct frame_listener {
    void (*buffer)(void *, void *, uint32_t format, uint32_t width, uint32_t height, uint32_t stride);
    void (*flags)(void *, void *, uint32_t flags);
    void (*ready)(void *, void *, uint32_t sec_hi, uint32_t sec_lo, uint32_t nsec);
    void (*failed)(void *, void *);
    void (*damage)(void *, void *, uint32_t x, uint32_t y, uint32_t width, uint32_t height);
    void (*linux_dmabuf)(void *, void *, uint32_t format, uint32_t width, uint32_t height);
    void (*buffer_done)(void *, void *);
};

static const struct frame_listener *original; /* xdpw has one listener for all frames */

/* wl_shm formats are DRM fourccs except the two oldest, which are 0 and 1. */
static uint32_t drm_fourcc(uint32_t shm) {
    if (shm == 0) return 0x34325241; /* 'AR24' */
    if (shm == 1) return 0x34325258; /* 'XR24' */
    return shm;
}

static void on_buffer(void *d, void *f, uint32_t format, uint32_t w, uint32_t h, uint32_t stride) {
    original->buffer(d, f, format, w, h, stride);
    if (original->linux_dmabuf) original->linux_dmabuf(d, f, drm_fourcc(format), w, h);
}
static void on_flags(void *d, void *f, uint32_t flags) { original->flags(d, f, flags); }
static void on_ready(void *d, void *f, uint32_t a, uint32_t b, uint32_t c) { original->ready(d, f, a, b, c); }
static void on_failed(void *d, void *f) { original->failed(d, f); }
static void on_damage(void *d, void *f, uint32_t x, uint32_t y, uint32_t w, uint32_t h) {
    if (original->damage) original->damage(d, f, x, y, w, h);
}
static void on_linux_dmabuf(void *d, void *f, uint32_t format, uint32_t w, uint32_t h) {
    if (original->linux_dmabuf) original->linux_dmabuf(d, f, format, w, h);
}
static void on_buffer_done(void *d, void *f) {
    if (original->buffer_done) original->buffer_done(d, f);
}

static const struct frame_listener wrapped = {on_buffer, on_flags, on_ready, on_failed,
                                              on_damage, on_linux_dmabuf, on_buffer_done};

int wl_proxy_add_listener(struct wl_proxy *proxy, void (**implementation)(void), void *data) {
    static int (*real)(struct wl_proxy *, void (**)(void), void *);
    if (!real) real = (int (*)(struct wl_proxy *, void (**)(void), void *))dlsym(RTLD_NEXT, "wl_proxy_add_listener");
    if (strcmp(wl_proxy_get_class(proxy), "zwlr_screencopy_frame_v1") == 0) {
        original = (const struct frame_listener *)implementation;
        implementation = (void (**)(void))&wrapped;
    }
    return real(proxy, implementation, data);
}
