// repair: finds and removes audio-routing objects (pixelpass_capture_<pid> sinks, their
// loopbacks, remembered stream targets) left behind by pixelpass processes that died.
//
// What counts as an orphan: an object named for a capture sink whose owner PID no longer runs
// (audio/capture_name.hpp):
//   - "sink":           a Pulse module-null-sink with sink_name=pixelpass_capture_<pid>;
//   - "loopback":       a Pulse module-loopback whose sink= or source= names such a sink (or its
//                       .monitor);
//   - "node":           a PipeWire node named pixelpass_capture_<pid> that no Pulse module owns
//                       (e.g. created with object.linger) and no connected client holds;
//   - "restore-target": a WirePlumber restore-stream entry remembering such a sink as a stream's
//                       target.
// Objects of live PIDs (this process, another pixelpass, or an unrelated process that reused the
// PID — repair never removes what might be in use) are reported under "skipped".
//
// Order: loopbacks, then sinks, then nodes, then remembered targets. A running WirePlumber keeps
// its restore-stream state in memory and rewrites the file from it, so editing the file alone
// would be undone: repair shows WirePlumber a short-lived stand-in stream with the same identity
// and clears its target through the "default" metadata, which makes WirePlumber forget it and
// save; the file is edited directly (atomically) only when WirePlumber is not running.
//
// No server reachable at all is an error (PP_ERR_IO), not a clean report: "clean" is a statement
// about what was inspected, and a missing server usually means the command runs outside the
// user's session (sudo, a bare ssh), where exiting 0 would wrongly say all is well.
#pragma once

#include <cstddef>
#include <string>

namespace pp::repair {

// Returns the JSON report:
//   {"dry_run": bool, "servers": {"pulse": str|null, "pipewire": str|null, "wireplumber": bool},
//    "default_sink": {"before": str|null, "after": str|null}, "state_file": str|null,
//    "removed": [item], "skipped": [item + "reason"], "failed": [item + "reason"], "clean": bool}
// item: {"kind": "loopback"|"sink"|"node"|"restore-target", "id": module index | global id | null,
//        "name": str, "pid": owner, ...kind-specific fields}.
// In a dry run "removed" lists what would be removed. "clean": nothing is left orphaned — after a
// real run, no failures and a re-scan finds no dead owner's object; in a dry run, nothing to do.
// Throws pp::Error: PP_ERR_IO when no audio server is reachable, PP_ERR_UNSUPPORTED when built
// without PipeWire support.
std::string run(bool dry_run);

// run() for the C API's buffer convention, where callers ask once for the size and again with a
// buffer: a repair acts, so asking twice would report the work on the first call and "nothing to
// do" on the second. A report that does not fit in `capacity` bytes (NUL included) is kept for the
// calling thread, and the next call with the same dry_run returns it instead of running again.
std::string run_for_buffer(bool dry_run, size_t capacity);

} // namespace pp::repair
