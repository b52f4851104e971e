"""mpv_frames.match_ticks: mpv's ticks (one per displayed frame, each with the time-pos the
reporting script read when it got to it) become one frame each, also after a burst in which the
script read the burst's last frame first."""
from mpv_frames import match_ticks

STEP = 1 / 30


def ticks(reads, start=3600.0):
    """Ticks 10 ms apart reading the frame numbers `reads` (None: no time-pos yet)."""
    return [(i * 0.01, -1 if n is None else start + n * STEP) for i, n in enumerate(reads)]


def numbers(frames, start=3600.0):
    return [round((pts - start) / STEP) for _, pts in frames]


def test_a_steady_stream_is_one_frame_per_tick():
    frames = match_ticks(ticks([None, 0, 1, 2, 3, 4]))
    assert numbers(frames) == [0, 1, 2, 3, 4]
    assert [clock for clock, _ in frames] == [0.01, 0.02, 0.03, 0.04, 0.05]


def test_a_burst_read_late_still_counts_every_frame():
    # Frames 2, 3, 4 displayed within a few ms: the script's first tick of the three reads 4.
    frames = match_ticks(ticks([0, 1, 4, 4, 4, 5]))
    assert numbers(frames) == [0, 1, 2, 3, 4, 5]
    # Each is given the clock of the tick that matched it: at or after its display.
    assert [clock for clock, _ in frames] == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]


def test_distinct_reads_alone_would_miss_the_burst():
    reads = [0, 1, 4, 4, 4, 5]
    assert len(set(reads)) == 4 and len(match_ticks(ticks(reads))) == 6


def test_a_frame_never_displayed_is_not_invented():
    # A jump with no ticks to match it (mpv dropped frames 2 and 3): only ticks count.
    frames = match_ticks(ticks([0, 1, 4, 5]))
    assert len(frames) == 4


def test_a_time_pos_jump_starts_the_count_afresh():
    # mpv's time-pos before it learnt the stream's start, then the real values: no 100k frames.
    frames = match_ticks([(0.0, 0.0), (0.01, 3605.0), (0.02, 3605.0 + STEP), (0.03, 3605.0 + 2 * STEP)])
    assert len(frames) == 4
    assert [round(pts, 3) for _, pts in frames] == [0.0, 3605.0, round(3605.0 + STEP, 3), round(3605.0 + 2 * STEP, 3)]


def test_a_gap_in_the_stream_is_not_matched_to_later_ticks():
    # 30 fps; after frame 9 the host skipped the viewer a second ahead (frames 10-39 never sent):
    # within MAX_PENDING_S the ticks again get the frames they show, not ones 30 frames older.
    reads = list(range(10)) + list(range(40, 70))
    frames = match_ticks([(i * STEP, 3600.0 + n * STEP) for i, n in enumerate(reads)])
    assert len(frames) == len(reads)
    # Once a frame of the gap waited MAX_PENDING_S unmatched, the ticks since are given the frames
    # they read (40, 41, ...), not the gap's (10, 11, ...), which were never shown.
    assert numbers(frames) == reads


def test_a_short_gap_leaves_no_standing_offset():
    # A skip of 14 frames (under half a second): each tick took the next frame of the gap in turn,
    # none waited MAX_PENDING_S as it stood at 0.5 s, and every later tick was matched to a frame
    # 14 older than the one it showed, for good.
    reads = list(range(10)) + list(range(24, 120))
    frames = match_ticks([(i * STEP, 3600.0 + n * STEP) for i, n in enumerate(reads)])
    assert len(frames) == len(reads)
    assert numbers(frames)[20:] == reads[20:]
