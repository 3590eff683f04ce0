"""The crash-safe CSV writer of recordings and their events."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biofeedback.acquisition.recorder import RecordingWriter, events_path_for
from biofeedback.acquisition.testing import read_events, read_recording
from biofeedback.core.types import Chunk, Event, StreamInfo
from biofeedback.errors import BiofeedbackError


def info(units="counts"):
    return StreamInfo(fs=250.0, ch_names=("ch1", "ch2"), units=units, source="/dev/ttyACM0 (bridge)")


def test_header_rows_and_events(tmp_path):
    path = tmp_path / "rec.csv"
    gap = Event("gap", "", 3 / 250, 5 / 250, math.nan, {"n_samples": 2, "reason": "counter"})
    with RecordingWriter(path, info(), comments={"protocol": "bridge", "device": "BFB 1 uno\nsecond line"}) as w:
        w.write_chunk(Chunk(np.array([[512, 513, 514], [500, 501, 502]]), 0, info()))
        w.write_chunk(Chunk(np.array([[515, 516], [503, 504]]), 5, info(), (gap,)))
        w.write_chunk(Chunk(np.zeros((2, 0)), 7, info(), (Event("disconnect", "", 7 / 250, 7 / 250),)))
    text = path.read_text().splitlines()
    assert text[:4] == ["# biofeedback recording", "# sampling_rate_hz: 250", "# units: counts",
                        "# source: /dev/ttyACM0 (bridge)"]
    assert "# device: BFB 1 uno second line" in text
    assert text[-6:] == ["sample,ch1,ch2", "0,512,500", "1,513,501", "2,514,502", "5,515,503", "6,516,504"]
    events = read_events(events_path_for(path))
    assert events[0] == {"file": "rec.csv", "channel": "", "kind": "gap", "onset_s": "0.012000",
                         "offset_s": "0.020000", "duration_s": "0.008000", "peak": "", "n_samples": "2"}
    assert events[1]["kind"] == "disconnect" and events[1]["n_samples"] == ""


def test_microvolts_round_trip_exactly_and_stop_index_trims(tmp_path):
    path = tmp_path / "rec.csv"
    scale = 4.5 / 24 / (2**23 - 1) * 1e6
    counts = np.array([[1, -8388608, 8388607, 12345], [0, -1, 2, 3]])
    with RecordingWriter(path, info("uV")) as writer:
        assert writer.write_chunk(Chunk(counts * scale, 10, info("uV")), stop_index=13) == 3
    _, _, index, values = read_recording(path)
    assert index.tolist() == [10, 11, 12]
    np.testing.assert_array_equal(np.rint(values / scale), counts[:, :3])


def test_rows_reach_the_file_before_close(tmp_path):
    path = tmp_path / "rec.csv"
    writer = RecordingWriter(path, info(), flush_interval_s=0.0)
    writer.write_chunk(Chunk(np.ones((2, 4)), 0, info()))
    assert read_recording(path)[2].tolist() == [0, 1, 2, 3]  # readable while still open
    writer.close()
    writer.close()


def test_existing_files_are_kept(tmp_path):
    path = tmp_path / "rec.csv"
    events_path_for(path).write_text("old events\n")
    with pytest.raises(BiofeedbackError, match="--overwrite"):
        RecordingWriter(path, info())
    assert events_path_for(path).read_text() == "old events\n"
    with pytest.raises(BiofeedbackError, match="does not exist"):
        RecordingWriter(tmp_path / "missing" / "rec.csv", info())


def test_the_project_csv_reader_reads_a_recording(tmp_path):
    csv_io = pytest.importorskip("biofeedback.io.csv_io", reason="the project's CSV reader is not there yet")
    path = tmp_path / "rec.csv"
    with RecordingWriter(path, info(), comments={"protocol": "bridge"}) as writer:
        writer.write_chunk(Chunk(np.array([[1, 2, 3], [4, 5, 6]]), 0, info()))
    reader = getattr(csv_io, "read_recording", None) or getattr(csv_io, "read_csv", None)
    if reader is None:
        pytest.skip("biofeedback.io.csv_io has no read_recording/read_csv")
    recording = reader(path)
    assert recording.info.fs == 250 and recording.info.units == "counts"
    np.testing.assert_array_equal(np.asarray(recording.data), [[1, 2, 3], [4, 5, 6]])
