"""Lab Streaming Layer: clear message without pylsl; round trip when it loads."""

from __future__ import annotations

import builtins
import threading

import numpy as np
import pytest

from biofeedback.acquisition import lsl
from biofeedback.core.types import Chunk, Event, StreamInfo
from biofeedback.errors import BiofeedbackError


def test_missing_pylsl_is_a_one_line_user_error(monkeypatch):
    real_import = builtins.__import__

    def no_pylsl(name, *args, **kwargs):
        if name == "pylsl":
            raise RuntimeError("LSL binary library file was not found.")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pylsl)
    with pytest.raises(BiofeedbackError) as caught:
        lsl.load_pylsl()
    message = str(caught.value)
    assert "pip install 'biofeedback[lsl]'" in message and "binary library" in message and "\n" not in message
    with pytest.raises(BiofeedbackError):
        lsl.LslSource("emg").open()


def test_marker_text():
    event = Event("gap", "", 1.0, 1.1, float("nan"), {"n_samples": 25})
    assert lsl.LslPublisher.describe(event) == "gap n_samples=25"
    assert lsl.LslPublisher.describe(Event("contraction", "ch1", 1, 2, 85.25)) == "contraction ch1 peak=85.25"


def test_publish_and_read_back():
    try:
        lsl.load_pylsl()
    except BiofeedbackError as exc:
        pytest.skip(str(exc))
    info = StreamInfo(fs=250.0, ch_names=("ch1", "ch2"), units="counts", source="test")
    publisher = lsl.LslPublisher(info, name="biofeedback-test-roundtrip")
    data = np.arange(2 * 500, dtype=np.float64).reshape(2, 500)
    stop = threading.Event()

    def feed():
        # Keep publishing until the reader has what it needs (LSL discovery takes a moment).
        position = 0
        while not stop.wait(0.02):
            block = data[:, position % 500:position % 500 + 25]
            publisher.push(Chunk(block, position, info))
            position += 25

    thread = threading.Thread(target=feed, daemon=True)
    source = lsl.LslSource("biofeedback-test-roundtrip", timeout=10)
    thread.start()
    try:
        with source:
            assert source.info.fs == 250 and source.info.ch_names == ("ch1", "ch2")
            assert source.info.units == "counts"
            received = []
            for chunk in source:
                received.append(chunk.data)
                if sum(c.shape[1] for c in received) >= 100:
                    break
    except BiofeedbackError as exc:  # e.g. no multicast on this machine's network
        pytest.skip(f"LSL loopback unavailable here: {exc}")
    finally:
        stop.set()
        thread.join(5)
        publisher.close()
    values = np.concatenate(received, axis=1)
    assert np.all(values[1] - values[0] == 500)  # channels stay aligned, values intact


def test_record_from_an_lsl_stream_and_republish(tmp_path, capsys):
    try:
        lsl.load_pylsl()
    except BiofeedbackError as exc:
        pytest.skip(str(exc))
    from biofeedback import cli
    from biofeedback.acquisition.testing import read_recording

    info = StreamInfo(fs=250.0, ch_names=("a", "b"), units="uV", source="test")
    publisher = lsl.LslPublisher(info, name="biofeedback-test-record")
    stop = threading.Event()

    def feed():
        position = 0
        while not stop.wait(0.02):
            publisher.push(Chunk(np.full((2, 5), position, dtype=float), position, info))
            position += 5

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        out = tmp_path / "lsl.csv"
        status = cli.main(["record", "--quiet", "--port", "lsl:biofeedback-test-record", "--duration", "0.2",
                           "--out", str(out), "--lock-timeout", "10", "--lsl", "--lsl-name", "biofeedback-test-out"])
    finally:
        stop.set()
        thread.join(5)
        publisher.close()
    if status != 0:
        pytest.skip(f"LSL loopback unavailable here: {capsys.readouterr().err.strip()}")
    comments, columns, index, values = read_recording(out)
    assert columns == ["sample", "a", "b"] and comments["units"] == "uV" and index.shape[0] == 50
