// ux: the CLI's everyday experience on top of the C API — the Host/View menu, the bandwidth
// consent prompt, the live status line, JSON lines for scripts, the clipboard note, the doctor
// table. Every decision lives in the library; this file asks, prints and redraws.
#pragma once

#include <atomic>
#include <string>

#include "pixelpass.h"

namespace pixelpass_cli::ux {

// Output mode, set once from the flags before any host or viewer runs.
struct Mode {
    bool json = false;         // events and status as JSON lines on stdout
    bool status_line = false;  // a redrawn status line on stderr (stderr is a terminal)
    bool copy = false;         // put the ticket on the clipboard
};
Mode &mode();

// True when a person can answer questions: stdin and stderr are terminals.
bool interactive();

// The event callback for hosts and viewers: a log line on stderr, or a JSON line on stdout.
void print_event(const pp_event *event, void *user_data);

// Before hosting: prints config warnings; on the first run, with a person at the terminal, asks
// for consent to the bandwidth test and runs it. Returns false when the config is broken.
bool before_host();

// `--reconfigure`: re-runs the bandwidth test (asks first unless assume_yes). Exit status.
int reconfigure(bool assume_yes);

// After the ticket is known: prints it (plain or JSON) and copies it when asked to.
void announce_ticket(const std::string &ticket);

// Keeps the host running until `stop` is set or the host ends, redrawing the status line (or
// printing JSON stats lines).
void host_loop(pp_host *host, const std::atomic<bool> &stop);

// `pixelpass doctor`: the table (or JSON); exit status 1 when sharing cannot work here.
int doctor(bool json, unsigned probe_timeout_ms);

// The interactive menu. `run_host` starts hosting with the top-level flags.
int menu(int (*run_host)(), const std::atomic<bool> &stop);

// The menu's View: asks for the ticket, offers the players, launches one, keeps the tunnel up.
int interactive_view(const std::atomic<bool> &stop);

} // namespace pixelpass_cli::ux
