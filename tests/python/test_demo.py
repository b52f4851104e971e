"""pixelpass.demo(): the main job through the binding — the test source hosted and viewed over
QUIC on loopback in the library's process, decoded headlessly, and its report returned."""
import pytest

import pixelpass


def test_headless_demo_reports_decoded_frames():
    events = []
    try:
        report = pixelpass.demo(events.append, headless=True, seconds=1.5, encoder="x264")
    except pixelpass.UnsupportedError as e:  # a build without GStreamer must say so
        assert "media" in e.detail
        pytest.skip("built without media support")
    assert report["mode"] == "headless"
    assert report["ok"] is True
    assert (report["width"], report["height"]) == (1280, 720)
    assert report["frames_decoded"] >= 20
    assert report["audio_samples"] > 0
    assert report["encoder"] == "x264enc"
    assert report["latency_ms"]["median"] < 1000
    assert any(e.type == pixelpass.EventType.READY for e in events)


def test_demo_rejects_unknown_options_and_encoders():
    with pytest.raises(TypeError):
        pixelpass.demo(colour="blue")
    with pytest.raises(pixelpass.PixelpassError) as err:
        pixelpass.demo(headless=True, seconds=1, encoder="h265")
    assert err.value.code == pixelpass.Result.INVALID_ARGUMENT
