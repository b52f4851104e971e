"""publish-bench: what publishing to media servers costs the host, and how soon a server has it.

1. Host CPU with 0, 1 and 2 RTMP publish targets (a local nginx with libnginx-mod-rtmp on a
   loopback ephemeral port), one P2P viewer reading in every case so the pipeline runs the same
   way; the host runs in its own process and its CPU time is read from /proc over a window.
   The figure is the increase over 0 targets measured in the same run (% of one core).
2. Time from Host.start() to the first frame on the server: start() → the target reports "live",
   and then the time until mpv, started at that moment, has decoded a frame pulled from nginx.

Run: meson test -C build --benchmark publish (or python3 bench/publish_bench.py --seconds 20).
Needs nginx, libnginx-mod-rtmp and mpv; PIXELPASS_LIBRARY and PYTHONPATH as the tests set them.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import threading

import pixelpass

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
CLK_TCK = os.sysconf("SC_CLK_TCK")

HOST_CHILD = r"""
import json, sys, time, pixelpass
urls = json.loads(sys.argv[1])
h = pixelpass.Host(source="test", bind_address="127.0.0.1", no_stun=True, no_port_mapping=True,
                   no_relay=True, encoder="x264", max_viewers=4, publish=urls)
h.start()
print(h.ticket(), flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    print(json.dumps(h.stats()), flush=True)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(tmp):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    os.makedirs(os.path.join(tmp, "logs"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(f"""load_module {RTMP_MODULE};
daemon off; master_process off; worker_processes 1;
error_log {tmp}/error.log info; pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}
""")
    proc = subprocess.Popen(["nginx", "-p", tmp, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("nginx did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class HostProcess:
    def __init__(self, urls):
        self.proc = subprocess.Popen([sys.executable, "-c", HOST_CHILD, json.dumps(urls)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ticket = self.proc.stdout.readline().strip()

    def stats(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def drain(url, stop):
    with urllib.request.urlopen(url, timeout=30) as r:
        while not stop.is_set() and r.read(65536):
            pass


def measure_cpu(urls, seconds):
    host = HostProcess(urls)
    try:
        with pixelpass.Viewer.connect(host.ticket, no_stun=True, no_relay=True) as viewer:
            stop = threading.Event()
            t = threading.Thread(target=drain, args=(viewer.url, stop), daemon=True)
            t.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                s = host.stats()
                if all(p["state"] == "live" for p in s.get("publish", [])) and s.get("pipeline_state") == "PLAYING":
                    break
                time.sleep(0.2)
            time.sleep(2)  # past the encoder's start-up
            c0, t0 = cpu_seconds(host.proc.pid), time.monotonic()
            time.sleep(seconds)
            c1, t1 = cpu_seconds(host.proc.pid), time.monotonic()
            s = host.stats()
            stop.set()
        return 100 * (c1 - c0) / (t1 - t0), s
    finally:
        host.close()


def first_frame(port):
    url = f"rtmp://127.0.0.1:{port}/live/first"
    started = time.monotonic()
    with pixelpass.Host(source="test", bind_address="127.0.0.1", no_stun=True, no_port_mapping=True,
                        no_relay=True, encoder="x264", publish=[url]) as host:
        host.start()
        while host.stats()["publish"][0]["state"] != "live":
            time.sleep(0.02)
        live = time.monotonic() - started
        mpv = time.monotonic()
        subprocess.run(["mpv", "--no-config", "--untimed", "--cache=no", "--vo=null", "--ao=null",
                        "--no-terminal", "--frames=1", url], timeout=120, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        decoded = time.monotonic() - mpv
    return live, decoded


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        nginx, port = start_nginx(tmp)
        try:
            results = {}
            for n in (0, 1, 2):
                # Fresh stream names per run: nginx refuses a name still held by the previous run.
                urls = [f"rtmp://127.0.0.1:{port}/live/bench{n}-{i}" for i in range(n)]
                results[n], stats = measure_cpu(urls, args.seconds)
                print(f"targets={n}: host CPU {results[n]:.1f}% of a core; "
                      f"publish={[(p['state'], p['bitrate_kbps'], p['drops']) for p in stats.get('publish', [])]}",
                      flush=True)
            live, decoded = first_frame(port)
        finally:
            nginx.kill()
            nginx.wait()
    print(json.dumps({
        "load_average_1m": load,
        "host_cpu_percent": results,
        "added_by_one_target": round(results[1] - results[0], 1),
        "added_by_two_targets": round(results[2] - results[0], 1),
        "start_to_live_s": round(live, 2),
        "mpv_first_frame_after_live_s": round(decoded, 2),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
