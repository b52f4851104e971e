"""Counts the video frames in an MPEG-TS byte stream as it arrives, with each frame's PTS and
arrival time: what a player would get to decode, and (with the host's pts_epoch_unix_ms) how old
each frame is when it reaches the viewer. Enough of PAT/PMT/PES to find H.264 access units."""
import time

PACKET = 188
H264 = 0x1B


def _section(payload):
    pointer = payload[0]
    return payload[1 + pointer:]


class TsFrames:
    def __init__(self):
        self.buf = b""
        self.pmt_pid = None
        self.video_pid = None
        self.frames = []  # (arrival unix ms, pts in 90 kHz)
        self.packets = 0

    def feed(self, data, now_ms=None):
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        buf = self.buf + data
        i = 0
        while i + PACKET <= len(buf):
            if buf[i] != 0x47:  # resynchronise
                i += 1
                continue
            self._packet(buf[i:i + PACKET], now_ms)
            i += PACKET
        self.buf = buf[i:]

    def _packet(self, p, now_ms):
        self.packets += 1
        pid = ((p[1] & 0x1F) << 8) | p[2]
        pusi = p[1] & 0x40
        afc = (p[3] >> 4) & 3
        if not pusi or not afc & 1:
            return
        off = 4 + (1 + p[4] if afc & 2 else 0)
        payload = p[off:]
        if pid == 0:
            sec = _section(payload)
            length = ((sec[1] & 0x0F) << 8) | sec[2]
            for j in range(8, 3 + length - 4, 4):
                program = (sec[j] << 8) | sec[j + 1]
                if program != 0:
                    self.pmt_pid = ((sec[j + 2] & 0x1F) << 8) | sec[j + 3]
                    break
        elif pid == self.pmt_pid:
            sec = _section(payload)
            length = ((sec[1] & 0x0F) << 8) | sec[2]
            j = 12 + (((sec[10] & 0x0F) << 8) | sec[11])
            while j + 5 <= 3 + length - 4:
                stream_type, es_pid = sec[j], ((sec[j + 1] & 0x1F) << 8) | sec[j + 2]
                if stream_type == H264:
                    self.video_pid = es_pid
                j += 5 + (((sec[j + 3] & 0x0F) << 8) | sec[j + 4])
        elif pid == self.video_pid and payload[:3] == b"\0\0\1" and payload[7] & 0x80:
            pts = (((payload[9] >> 1) & 7) << 30 | payload[10] << 22 | (payload[11] >> 1) << 15
                   | payload[12] << 7 | payload[13] >> 1)
            self.frames.append((now_ms, pts))
