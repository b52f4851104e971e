// publish/publisher: feeds the host's one encode to media servers (RTMP/RTMPS, SRT) beside the
// P2P viewers. Each target is a reader of the media fan-out — so it shares the encoder's output
// and never adds an encoder — that pushes the MPEG-TS into a small GStreamer pipeline of its own:
//
//   rtmp(s)://  appsrc → tsdemux ─ h264parse ─┬─ flvmux → rtmp2sink
//                                └ aacparse ──┘
//   srt://      appsrc → srtsink (the MPEG-TS as the viewers get it)
//
// Isolation: a target's pipeline, thread and ring cursor are its own. A slow or dead server fills
// only that target's bounded queue; the ring then moves the target's cursor to the newest
// keyframe (counted as a drop) and never waits for it. A failed target retries with backoff
// 1, 2, 4 … 30 s while the host keeps sharing. Holding a reader keeps the media pipeline running
// with no P2P viewer; destroying the Publisher releases it, so the pipeline still stops with the
// host.
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/host.hpp"
#include "publish/target.hpp"
#include "stream/source.hpp"

namespace pp::publish {

// Throws PP_ERR_MISSING_PLUGIN naming the Debian package when an element a target needs is
// missing (rtmp2sink and srtsink: gstreamer1.0-plugins-bad), PP_ERR_UNSUPPORTED in a build
// without media support.
void require_plugins(const std::vector<Target> &targets);

class Publisher {
public:
    // Starts publishing every target at once (one thread each). `events` gets state changes
    // (PP_EVENT_LOG with json {"publish": <target stats>}) from those threads.
    Publisher(std::vector<Target> targets, std::shared_ptr<stream::Source> source, EventSink events);
    // Stops every target and joins its thread; no event is emitted after it returns.
    ~Publisher();
    Publisher(const Publisher &) = delete;
    Publisher &operator=(const Publisher &) = delete;

    // [{"target": label, "protocol", "state": "connecting"|"live"|"retrying", "reason",
    //   "retry_in_s", "bitrate_kbps", "bytes", "drops", "attempts", "connects"}...]
    nlohmann::json stats() const;

    class Runner;

private:
    std::vector<std::unique_ptr<Runner>> runners_;
};

} // namespace pp::publish
