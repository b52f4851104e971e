"""Shared helpers for the pixelpass pytest suite (run by meson: see tests/python/meson.build)."""
import base64
import os
import zlib

import pytest

import pixelpass


@pytest.fixture(scope="session", autouse=True)
def library_loaded():
    """Fail early and clearly if the binding cannot load the library under test."""
    path = os.environ.get("PIXELPASS_LIBRARY")
    assert path, "PIXELPASS_LIBRARY must point at the built libpixelpass (meson sets it)"
    assert pixelpass.library_path() == path
    pixelpass.version()


FINGERPRINT = bytes(range(32))
SECRET = bytes(range(100, 120))


def envelope(body: bytes) -> str:
    """The ticket text for a raw binary body: "pxp" + base32(body || CRC-32(body) big-endian),
    lowercase, unpadded (docs/TICKET.md). Lets a test build tickets the encoder never writes."""
    data = body + zlib.crc32(body).to_bytes(4, "big")
    return "pxp" + base64.b32encode(data).decode().rstrip("=").lower()


def unenvelope(text: str) -> bytes:
    """The binary body of an encoded ticket (the inverse of envelope(); checks the CRC)."""
    b32 = text[3:].upper()
    data = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    body, crc = data[:-4], data[-4:]
    assert zlib.crc32(body).to_bytes(4, "big") == crc
    return body
