/* wl_flip: a fullscreen Wayland window that flips between black and white at irregular, known
 * times, for capture-latency's portal measurement. After each flip is committed and flushed to the
 * compositor it prints "FLIP <unix ms> <1 = white, 0 = black>" on stdout. The irregular period
 * (400–600 ms) keeps the flips from locking to the capture's 30 fps grid.
 *
 * Usage: wl-flip SECONDS      (needs WAYLAND_DISPLAY and an xdg-shell compositor, e.g. sway)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <wayland-client.h>

#include "xdg-shell-client-protocol.h"

static struct wl_compositor *compositor;
static struct wl_shm *shm;
static struct xdg_wm_base *wm_base;
static int width = 0, height = 0, configured = 0;

static double unix_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void wm_ping(void *data, struct xdg_wm_base *base, uint32_t serial) {
    (void)data;
    xdg_wm_base_pong(base, serial);
}
static const struct xdg_wm_base_listener wm_listener = {.ping = wm_ping};

static void on_global(void *data, struct wl_registry *reg, uint32_t name, const char *iface, uint32_t version) {
    (void)data;
    (void)version;
    if (strcmp(iface, wl_compositor_interface.name) == 0)
        compositor = wl_registry_bind(reg, name, &wl_compositor_interface, 4);
    else if (strcmp(iface, wl_shm_interface.name) == 0)
        shm = wl_registry_bind(reg, name, &wl_shm_interface, 1);
    else if (strcmp(iface, xdg_wm_base_interface.name) == 0) {
        wm_base = wl_registry_bind(reg, name, &xdg_wm_base_interface, 1);
        xdg_wm_base_add_listener(wm_base, &wm_listener, NULL);
    }
}
static void on_global_remove(void *data, struct wl_registry *reg, uint32_t name) {
    (void)data;
    (void)reg;
    (void)name;
}
static const struct wl_registry_listener registry_listener = {.global = on_global, .global_remove = on_global_remove};

static void surface_configure(void *data, struct xdg_surface *surface, uint32_t serial) {
    (void)data;
    xdg_surface_ack_configure(surface, serial);
    configured = 1;
}
static const struct xdg_surface_listener surface_listener = {.configure = surface_configure};

static void toplevel_configure(void *data, struct xdg_toplevel *t, int32_t w, int32_t h, struct wl_array *states) {
    (void)data;
    (void)t;
    (void)states;
    if (w > 0 && h > 0) {
        width = w;
        height = h;
    }
}
static void toplevel_close(void *data, struct xdg_toplevel *t) {
    (void)data;
    (void)t;
    exit(0);
}
static const struct xdg_toplevel_listener toplevel_listener = {.configure = toplevel_configure,
                                                                .close = toplevel_close};

/* One solid-colour buffer of the current size. */
static struct wl_buffer *solid_buffer(uint32_t argb) {
    int stride = width * 4, size = stride * height;
    int fd = memfd_create("wl-flip", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, size) != 0) {
        perror("wl-flip: memfd");
        exit(1);
    }
    uint32_t *pixels = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (pixels == MAP_FAILED) {
        perror("wl-flip: mmap");
        exit(1);
    }
    for (int i = 0; i < width * height; ++i) pixels[i] = argb;
    munmap(pixels, (size_t)size);
    struct wl_shm_pool *pool = wl_shm_create_pool(shm, fd, size);
    struct wl_buffer *buffer = wl_shm_pool_create_buffer(pool, 0, width, height, stride, WL_SHM_FORMAT_XRGB8888);
    wl_shm_pool_destroy(pool);
    close(fd);
    return buffer;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: wl-flip SECONDS\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    struct wl_display *display = wl_display_connect(NULL);
    if (!display) {
        fprintf(stderr, "wl-flip: cannot connect to the Wayland display (is WAYLAND_DISPLAY set?)\n");
        return 1;
    }
    struct wl_registry *registry = wl_display_get_registry(display);
    wl_registry_add_listener(registry, &registry_listener, NULL);
    wl_display_roundtrip(display);
    if (!compositor || !shm || !wm_base) {
        fprintf(stderr, "wl-flip: the compositor lacks wl_compositor, wl_shm or xdg_wm_base\n");
        return 1;
    }
    struct wl_surface *surface = wl_compositor_create_surface(compositor);
    struct xdg_surface *xsurface = xdg_wm_base_get_xdg_surface(wm_base, surface);
    xdg_surface_add_listener(xsurface, &surface_listener, NULL);
    struct xdg_toplevel *toplevel = xdg_surface_get_toplevel(xsurface);
    xdg_toplevel_add_listener(toplevel, &toplevel_listener, NULL);
    xdg_toplevel_set_app_id(toplevel, "pp-wl-flip");
    xdg_toplevel_set_fullscreen(toplevel, NULL);
    wl_surface_commit(surface);
    while (!configured)
        if (wl_display_dispatch(display) < 0) return 1;
    /* sway sizes a toplevel only once it is mapped: show a small one, then take the fullscreen
     * size from the configure that follows. */
    int sized = width > 0;
    if (!sized) width = height = 64;
    int buffer_w = width, buffer_h = height;
    struct wl_buffer *colours[2] = {solid_buffer(0xff000000u), solid_buffer(0xffffffffu)};
    wl_surface_attach(surface, colours[0], 0, 0);
    wl_surface_commit(surface);
    configured = 0;
    while (!sized && (!configured || width == buffer_w))
        if (wl_display_dispatch(display) < 0) return 1;
    int shown = 0;
    srand((unsigned)getpid());
    double end = mono_s() + seconds, next = mono_s();
    while (mono_s() < end) {
        if (width != buffer_w || height != buffer_h) {
            wl_buffer_destroy(colours[0]);
            wl_buffer_destroy(colours[1]);
            colours[0] = solid_buffer(0xff000000u);
            colours[1] = solid_buffer(0xffffffffu);
            buffer_w = width;
            buffer_h = height;
        }
        if (mono_s() >= next) {
            shown = !shown;
            wl_surface_attach(surface, colours[shown], 0, 0);
            wl_surface_damage_buffer(surface, 0, 0, width, height);
            wl_surface_commit(surface);
            wl_display_flush(display);
            printf("FLIP %.3f %d\n", unix_ms(), shown);
            fflush(stdout);
            next = mono_s() + 0.4 + 0.2 * (double)rand() / RAND_MAX;
        }
        /* Serve the compositor's events (pings, buffer releases) until the next flip. */
        while (wl_display_prepare_read(display) != 0) wl_display_dispatch_pending(display);
        wl_display_flush(display);
        struct pollfd p = {wl_display_get_fd(display), POLLIN, 0};
        int wait_ms = (int)((next - mono_s()) * 1000);
        if (poll(&p, 1, wait_ms > 0 ? wait_ms : 0) > 0) {
            wl_display_read_events(display);
            wl_display_dispatch_pending(display);
        } else {
            wl_display_cancel_read(display);
        }
    }
    wl_display_disconnect(display);
    return 0;
}
