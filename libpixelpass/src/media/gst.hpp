// media/gst: RAII owners and small helpers over GStreamer's C API, shared by the media files.
// Only media/ includes this (GStreamer types stay out of other modules' headers).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <gst/gst.h>

#include "media/capture_source.hpp"

namespace pp::media {

// Initialises GStreamer once per process (thread-safe).
void ensure_gst();

struct ObjectUnref {
    void operator()(gpointer p) const { if (p) gst_object_unref(p); }
};
struct CapsUnref {
    void operator()(GstCaps *p) const { if (p) gst_caps_unref(p); }
};
struct MessageUnref {
    void operator()(GstMessage *p) const { if (p) gst_message_unref(p); }
};
struct ErrorFree {
    void operator()(GError *p) const { if (p) g_error_free(p); }
};
struct GFree {
    void operator()(gpointer p) const { g_free(p); }
};

template <typename T>
using GstPtr = std::unique_ptr<T, ObjectUnref>;
using CapsPtr = std::unique_ptr<GstCaps, CapsUnref>;
using MessagePtr = std::unique_ptr<GstMessage, MessageUnref>;
using GErrorPtr = std::unique_ptr<GError, ErrorFree>;
using GCharPtr = std::unique_ptr<gchar, GFree>;

// A new element from `factory` (reference sunk: adding it to a bin adds the bin's own reference).
// Throws missing_element_error().
ElementPtr make_element(std::string_view factory, const char *name = nullptr);

// Sets a property from its string form (enums by nick, flags as "a+b", numbers) when the element
// has it; returns false when it has not. Elements differ between versions, so absent properties
// are not errors.
bool set_property(GstElement *element, const char *name, const std::string &value);
bool has_property(GstElement *element, const char *name);

// A capsfilter with `caps` (string form).
ElementPtr make_capsfilter(const std::string &caps, const char *name = nullptr);

// Wraps a newly created floating element.
ElementPtr sink_ref(GstElement *floating);

// Adds `elements` to `bin` and links them in order; throws PP_ERR_MEDIA naming the pair that
// did not link.
void add_and_link(GstBin *bin, std::initializer_list<GstElement *> elements);

// "media pipeline failed in x264enc0: <message>" from an error or warning message, with the
// debug detail's last line when it helps.
std::string describe_message(GstMessage *message);

} // namespace pp::media
