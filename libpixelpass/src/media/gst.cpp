#include "media/gst.hpp"

#include <mutex>

#include "common/error.hpp"
#include "media/media.hpp"

namespace pp::media {

void ensure_gst() {
    static std::once_flag once;
    std::call_once(once, [] { gst_init(nullptr, nullptr); });
}

void ElementUnref::operator()(GstElement *element) const {
    if (element) gst_object_unref(element);
}

ElementPtr sink_ref(GstElement *floating) {
    return ElementPtr(floating ? GST_ELEMENT(gst_object_ref_sink(floating)) : nullptr);
}

ElementPtr make_element(std::string_view factory, const char *name) {
    ensure_gst();
    std::string f(factory);
    GstElement *e = gst_element_factory_make(f.c_str(), name);
    if (!e) throw missing_element_error(factory);
    return sink_ref(e);
}

bool has_property(GstElement *element, const char *name) {
    return g_object_class_find_property(G_OBJECT_GET_CLASS(element), name) != nullptr;
}

bool set_property(GstElement *element, const char *name, const std::string &value) {
    if (!has_property(element, name)) return false;
    gst_util_set_object_arg(G_OBJECT(element), name, value.c_str());
    return true;
}

ElementPtr make_capsfilter(const std::string &caps, const char *name) {
    ElementPtr filter = make_element("capsfilter", name);
    CapsPtr parsed(gst_caps_from_string(caps.c_str()));
    if (!parsed) throw Error(PP_ERR_INTERNAL, "bad caps string: " + caps);
    g_object_set(filter.get(), "caps", parsed.get(), nullptr);
    return filter;
}

void add_and_link(GstBin *bin, std::initializer_list<GstElement *> elements) {
    for (GstElement *e : elements) gst_bin_add(bin, e);
    GstElement *prev = nullptr;
    for (GstElement *e : elements) {
        if (prev && !gst_element_link(prev, e)) {
            GCharPtr a(gst_element_get_name(prev)), b(gst_element_get_name(e));
            throw Error(PP_ERR_MEDIA, std::string("media pipeline: cannot link ") + a.get() + " to " +
                                          b.get() + " (incompatible formats)");
        }
        prev = e;
    }
}

std::string describe_message(GstMessage *message) {
    GError *raw = nullptr;
    gchar *debug_raw = nullptr;
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR)
        gst_message_parse_error(message, &raw, &debug_raw);
    else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING)
        gst_message_parse_warning(message, &raw, &debug_raw);
    else
        return GST_MESSAGE_TYPE_NAME(message);
    GErrorPtr error(raw);
    GCharPtr debug(debug_raw);
    GCharPtr source(message->src ? gst_object_get_name(message->src) : g_strdup("pipeline"));
    std::string text = std::string(source.get()) + ": " + (error ? error->message : "unknown error");
    if (debug) {
        // The debug string's last line usually names the concrete cause ("not-negotiated", the
        // device path, the driver's complaint); the rest is source locations.
        std::string d(debug.get());
        auto nl = d.find_last_of('\n');
        std::string last = nl == std::string::npos ? d : d.substr(nl + 1);
        if (last.size() > 200) last = last.substr(0, 200) + "...";
        text += " (" + last + ")";
    }
    return text;
}

} // namespace pp::media
