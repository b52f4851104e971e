"""A local stand-in for the speed-test upload endpoint: accepts POST bodies and discards them,
reading at a fixed rate so the measured bandwidth is known. Small receive buffers keep the
kernel from absorbing the body faster than the server reads it."""
import http.server
import socket
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        remaining = int(self.headers.get("Content-Length", "0"))
        chunk = 16 * 1024
        delay = chunk / self.server.bytes_per_second
        started = time.monotonic()
        got = 0
        while remaining > 0:
            data = self.rfile.read(min(chunk, remaining))
            if not data:
                break
            got += len(data)
            remaining -= len(data)
            # Pace by the clock, not by summing sleeps, so a loaded machine does not slow us more.
            ahead = started + got / self.server.bytes_per_second - time.monotonic()
            if ahead > 0:
                time.sleep(min(ahead, delay * 4))
        self.server.received += got
        self.server.requests += 1
        if remaining > 0:
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        super().server_bind()


class UploadServer:
    def __init__(self, mbit_per_s: float):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.bytes_per_second = mbit_per_s * 1e6 / 8
        self.server.received = 0
        self.server.requests = 0
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/__up"

    @property
    def received(self) -> int:
        return self.server.received

    @property
    def requests(self) -> int:
        return self.server.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
