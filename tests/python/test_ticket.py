"""Tickets through the Python binding: round trips, paste damage, and every decode error class
with its code."""
import time

import pytest

import pixelpass
from pixelpass import CandidateKind, PixelpassError, Result, Ticket, TicketError

from conftest import FINGERPRINT, SECRET, envelope, unenvelope


def full_ticket():
    t = Ticket.new(FINGERPRINT, SECRET)
    t.add_candidate("192.0.2.10", 4433)
    t.add_candidate("2001:db8::1", 4434, CandidateKind.REFLEXIVE)
    t.add_candidate("198.51.100.7", 61000, kind=CandidateKind.MAPPED)
    t.set_relay("turn.example.net", 3478, "1700000000:pp", "s3cr3t-credential")
    t.expiry = 4102444800  # 2100-01-01
    return t


def test_round_trip_all_fields():
    t = full_ticket()
    text = t.encode()
    assert text.startswith("pxp") and text == text.lower()
    d = Ticket.decode(text)
    assert d.fingerprint == FINGERPRINT
    assert d.secret == SECRET
    assert d.expiry == 4102444800
    assert d.candidates == [
        (CandidateKind.LOCAL, "192.0.2.10", 4433),
        (CandidateKind.REFLEXIVE, "2001:db8::1", 4434),
        (CandidateKind.MAPPED, "198.51.100.7", 61000),
    ]
    assert d.relay["host"] == "turn.example.net"
    assert d.relay["port"] == 3478
    assert d.relay["username"] == "1700000000:pp"
    assert d.encode() == text  # deterministic
    assert d == t and hash(d) == hash(t)


def test_minimal_ticket_and_defaults():
    t = Ticket.new(FINGERPRINT, bytes(16))
    assert t.candidates == [] and t.expiry == 0 and t.relay is None
    d = Ticket.decode(t.encode())
    assert d.secret == bytes(16)
    assert d.to_json()["candidates"] == []


def test_to_json_hides_secrets():
    t = full_ticket()
    j = t.to_json()
    assert j["fingerprint"] == FINGERPRINT.hex()
    assert j["length"] == len(t.encode())
    dumped = repr(j)
    assert SECRET.hex() not in dumped
    assert "s3cr3t-credential" not in dumped
    assert SECRET.hex() not in repr(t) and "s3cr3t" not in repr(t)


def test_relay_cleared():
    t = full_ticket()
    with_relay = t.encode()
    t.set_relay(None)
    assert t.relay is None
    assert len(t.encode()) < len(with_relay)


def test_paste_tolerance():
    text = full_ticket().encode()
    messy = '  <"' + "\n".join(text[i:i + 20].upper() for i in range(0, len(text), 20)) + '">\r\n'
    messy = messy.replace("A", "a\t", 3).replace("B", "b ", 3)
    assert Ticket.decode(messy).encode() == text
    assert Ticket.decode("`" + text.upper() + "'").encode() == text


def test_ticket_lengths_are_short():
    """The lengths the foundation issue asks to report, asserted to stay short."""
    lengths = {}
    for n in (1, 3, 6):
        t = Ticket.new(FINGERPRINT, SECRET[:16])
        for i in range(n):
            t.add_candidate(f"203.0.113.{i + 1}", 40000 + i)
        lengths[n] = len(t.encode())
        t.set_relay("turn.example.net", 3478, "1700000000:pp", "x" * 28)
        lengths[f"{n}+relay"] = len(t.encode())
    print("ticket lengths:", lengths)
    assert lengths[1] < lengths[3] < lengths[6] < 200


def _check(text, code, *detail_words):
    with pytest.raises(TicketError) as info:
        Ticket.decode(text)
    err = info.value
    assert err.code == code, (err.code, err)
    assert isinstance(err, PixelpassError)
    assert err.name == pixelpass.strerror(code)
    assert err.detail, "every decode error carries a detail"
    for word in detail_words:
        assert word in err.detail, (word, err.detail)
    return err


def test_error_prefix():
    text = full_ticket().encode()
    _check("qxp" + text[3:], Result.TICKET_PREFIX, "pxp")
    _check("https://example.org/", Result.TICKET_PREFIX)
    _check("", Result.TICKET_PREFIX)


def test_error_version():
    body = bytearray(unenvelope(full_ticket().encode()))
    body[0] = 2  # a ticket from a newer pixelpass, with a valid checksum
    _check(envelope(bytes(body)), Result.TICKET_VERSION, "2")


def test_error_truncated():
    text = full_ticket().encode()
    # Characters lost from the checksum only: the body's length is known, so the count is exact.
    err = _check(text[:-5], Result.TICKET_TRUNCATED, "5 characters missing")
    assert "at least" not in err.detail
    # Cut into the body's length fields, the decoder can only give a lower bound.
    err = _check(text[:len(text) // 2], Result.TICKET_TRUNCATED, "missing")


def test_error_character():
    text = full_ticket().encode()
    at = 40
    bad = text[:at] + "0" + text[at + 1:]  # '0' is not in the base32 alphabet
    _check(bad, Result.TICKET_CHARACTER, f"position {at + 1}")


def test_error_checksum():
    text = full_ticket().encode()
    at = len(text) // 2
    swapped = "a" if text[at] != "a" else "b"
    _check(text[:at] + swapped + text[at + 1:], Result.TICKET_CHECKSUM)


def test_error_expired():
    t = Ticket.new(FINGERPRINT, SECRET)
    t.expiry = int(time.time()) - 3600
    _check(t.encode(), Result.TICKET_EXPIRED, "expired")


def test_error_malformed():
    body = bytearray(unenvelope(full_ticket().encode()))
    body[1] |= 0x80  # an unknown flag bit, checksum recomputed: the content is inconsistent
    _check(envelope(bytes(body)), Result.TICKET_MALFORMED, "flag")


@pytest.mark.parametrize("build, fragment", [
    (lambda: Ticket.new(FINGERPRINT[:31] + b"", SECRET), None),  # ValueError before C
    (lambda: Ticket.new(FINGERPRINT, b"short"), "secret"),
    (lambda: Ticket.new(FINGERPRINT, SECRET).add_candidate("example.org", 1), "numeric"),
    (lambda: Ticket.new(FINGERPRINT, SECRET).add_candidate("10.0.0.1", 0), "port"),
    (lambda: Ticket.new(FINGERPRINT, SECRET).set_relay("turn:x", 0), "relay"),
])
def test_invalid_arguments(build, fragment):
    if fragment is None:
        with pytest.raises(ValueError):
            build()
        return
    with pytest.raises(PixelpassError) as info:
        build()
    assert info.value.code == Result.INVALID_ARGUMENT
    assert fragment in info.value.detail


def test_closed_ticket():
    t = Ticket.new(FINGERPRINT, SECRET)
    with t:
        assert t.encode()
    with pytest.raises(ValueError):
        t.encode()
    t.close()  # closing twice is harmless
    assert repr(t) == "<Ticket closed>"
