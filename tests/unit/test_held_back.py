"""The restore's one pass: the last piece of the data comes only after the check."""

from __future__ import annotations

import io

import pytest

from backupctl.restore import CHUNK, RestoreFailed, _HeldBack


def test_the_last_piece_comes_only_after_the_check_passed() -> None:
    data = bytes(range(256)) * (CHUNK // 256) * 3 + b"tail"
    events: list[str] = []
    reader = _HeldBack(io.BytesIO(data), lambda: events.append("verified"))
    got = b""
    while chunk := reader.read(CHUNK):
        if len(got) + len(chunk) == len(data):
            assert events == ["verified"]  # before the final bytes are handed out
        else:
            assert events == []
        got += chunk
    assert got == data and events == ["verified"] and reader.verified


def test_a_failed_check_keeps_the_last_piece_back() -> None:
    data = b"x" * (CHUNK + 10)

    def mismatch() -> None:
        raise RestoreFailed("checksum mismatch")

    reader = _HeldBack(io.BytesIO(data), mismatch)
    got = reader.read(CHUNK)
    with pytest.raises(RestoreFailed, match="checksum mismatch"):
        while chunk := reader.read(7):
            got += chunk
    assert len(got) < len(data) and not reader.verified


@pytest.mark.parametrize("size", [0, 1, 5000])
def test_small_reads_and_short_streams_return_all_of_it(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    checks: list[int] = []
    reader = _HeldBack(io.BytesIO(data), lambda: checks.append(1))
    got = b""
    while chunk := reader.read(333):
        got += chunk
    assert got == data and checks == [1]
    assert reader.read(10) == b""  # checked once
    assert checks == [1]
