"""What the media and publishing integration tests share: polling with a deadline, the options of
a host that stays on loopback (no STUN, port mapping or relay) and encodes the test source, and a
GStreamer that lacks one plugin."""
import glob
import os
import time


def wait_until(predicate, timeout, interval=0.1, what="condition"):
    """Polls `predicate` until it returns something true (which is returned), or fails the test
    after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def host_options(**extra):
    """pixelpass.Host keyword arguments for a loopback-only host on the test source; `extra`
    adds to or overrides them."""
    opts = dict(source="test", bind_address="127.0.0.1", no_stun=True, no_port_mapping=True,
                no_relay=True, encoder="x264", max_viewers=4)
    opts.update(extra)
    return opts


def gst_env_without(tmp_path, plugin_prefix):
    """An environment whose GStreamer has every system plugin except those whose file name starts
    with `plugin_prefix` (links in tmp_path/plugins, a fresh registry), or None when the system's
    plugin directory is not found."""
    system = glob.glob("/usr/lib/*/gstreamer-1.0/libgstcoreelements.so")
    if not system:
        return None
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for lib in glob.glob(os.path.join(os.path.dirname(system[0]), "*.so")):
        if not os.path.basename(lib).startswith(plugin_prefix):
            os.symlink(lib, plugins / os.path.basename(lib))
    return dict(os.environ, GST_PLUGIN_SYSTEM_PATH_1_0=str(plugins), GST_PLUGIN_PATH_1_0="",
                GST_REGISTRY_1_0=str(tmp_path / "registry.bin"))
