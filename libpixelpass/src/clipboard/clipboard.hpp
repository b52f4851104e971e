// clipboard: copies text (the ticket) to the user's clipboard with whatever this session has:
// wl-copy on Wayland, xclip or xsel on X11, and an OSC 52 escape written to the terminal as the
// fallback for remote shells. Reports which one it used, so the user knows whether to paste.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace pp::clipboard {

// What copy() would try in this session, in order, and what is missing:
// {"session": "wayland"|"x11"|"none", "tools": [{"name","path","usable","problem"}], "terminal": bool}
nlohmann::json probe(int tty_fd = -1);

// Copies `text`. tty_fd, when it is a terminal, allows the OSC 52 fallback. Returns the method
// used: "wl-copy", "xclip", "xsel" or "osc52". Throws Error(PP_ERR_UNSUPPORTED) naming what to
// install when nothing works.
std::string copy(const std::string &text, int tty_fd = -1);

} // namespace pp::clipboard
