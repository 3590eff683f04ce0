"""Session folder: private files, append-only rows, atomic metadata, tolerant reading, repair, storage errors."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import time

import numpy as np
import pytest

from biofeedback.core.types import Event, StreamInfo
from biofeedback.errors import InputFileError
from biofeedback.io.csv_io import read_csv
from biofeedback.session import store
from biofeedback.session.phases import Phase
from biofeedback.session.protocol import parse_protocol
from biofeedback.session.runner import ProtocolRunner
from biofeedback.session.store import (
    SessionStorageError, SessionWriter, load_session, new_session_folder, repair_session, sessions_root,
)

FS = 100.0
PROTOCOL = parse_protocol('[[phase]]\nrole = "baseline"\nduration_s = 2\n[[phase]]\nrole = "work"\nduration_s = 1\n'
                          '[[phase]]\nrole = "rest"\nduration_s = 2\n', "p.toml", "p")


def make_writer(folder, n_channels=2, **kwargs):
    info = StreamInfo(fs=FS, ch_names=tuple(f"ch{i + 1}" for i in range(n_channels)), units="uV", source="test")
    runner = ProtocolRunner(PROTOCOL, FS)
    meta = {"user": "u", "protocol": PROTOCOL.to_dict(), "schedule": runner.schedule.as_list()}
    return SessionWriter(folder, info, meta, **kwargs), runner


def signal(n, n_channels=2, start=0):
    k = np.arange(start, start + n)
    return np.vstack([np.sin(k * 0.1 * (c + 1)) * 10 + c for c in range(n_channels)])


def write_all(writer, runner, stop, chunk=30, start=0):
    pos = start
    while pos < stop:
        n = min(chunk, stop - pos)
        writer.write_samples(pos, signal(n, writer.info.n_channels, pos), runner.cues_for(pos, n))
        for ph in runner.pop_finished(pos + n):
            writer.write_phase(ph)
        pos += n


def test_private_folder_and_files(tmp_path):
    folder = tmp_path / "a" / "b" / "session"
    writer, runner = make_writer(folder)
    write_all(writer, runner, 500)
    writer.close("complete")
    for d in (tmp_path / "a", tmp_path / "a" / "b", folder):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["events.csv", "phases.csv", "samples.csv", "session.json"]
    for p in folder.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    meta = json.loads((folder / "session.json").read_text())
    assert meta["status"] == "complete" and meta["format"] == "biofeedback-session" and meta["ended_at"]
    assert meta["software"].startswith("biofeedback ") and meta["fs"] == FS and meta["n_samples"] == 500


def test_round_trip(tmp_path):
    writer, runner = make_writer(tmp_path / "s")
    write_all(writer, runner, 500)
    writer.write_event(Event("spasm", "ch1", 0.5, 1.25, 12.5, {"cue": "rest", "shape": "phasic", "ratio": 2.0}), 0)
    writer.write_event(Event("gap", "ch1,ch2", 4.0, 4.0, math.nan, {"n_samples": 0}))
    writer.add_note("hello")
    writer.close("complete")
    s = load_session(tmp_path / "s")
    assert s.warnings == [] and s.status == "complete" and s.meta["notes"] == ["hello"]
    assert s.recording.data.shape == (2, 500) and s.present.all()
    assert np.allclose(s.recording.data, signal(500), rtol=1e-9, atol=1e-9)
    assert list(s.recording.cues[:200]) == ["relax"] * 200 and set(s.recording.cues[200:300]) == {"contract"}
    e = s.events[0]
    assert (e.kind, e.channel, e.onset_s, e.offset_s, e.peak) == ("spasm", "ch1", 0.5, 1.25, 12.5)
    assert e.extra["cue"] == "rest" and e.extra["phase"] == 0 and e.extra["ratio"] == 2.0
    assert math.isnan(s.events[1].peak) and s.events[1].extra["n_samples"] == 0
    assert [(p.index, p.role, p.start_s, p.end_s) for p in s.phases] == \
        [(0, "baseline", 0.0, 2.0), (1, "work", 2.0, 3.0), (2, "rest", 3.0, 5.0)]
    assert all(isinstance(p, Phase) and p.extra["completed"] for p in s.phases)
    # The samples file is the project's own CSV recording format.
    rec = read_csv(tmp_path / "s" / "samples.csv")
    assert rec.data.shape == (2, 500) and rec.info.fs == FS and list(rec.cues) == list(s.recording.cues)


def test_rows_reach_the_disk_within_the_flush_interval_without_new_writes(tmp_path):
    flushed = []
    writer, runner = make_writer(tmp_path / "s", flush_interval_s=0.05, on_flush=flushed.append)
    writer.write_samples(0, signal(10), runner.cues_for(0, 10))
    deadline = time.monotonic() + 5.0
    while not flushed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flushed and flushed[-1] == 10
    rows = (tmp_path / "s" / "samples.csv").read_text().splitlines()
    assert rows[-1].startswith("9,") and rows[-1].endswith(",relax")
    writer.close()


def test_session_json_is_replaced_atomically(tmp_path, monkeypatch):
    writer, runner = make_writer(tmp_path / "s")
    before = (tmp_path / "s" / "session.json").read_text()

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(store.os, "replace", broken_replace)
    with pytest.raises(SessionStorageError):
        writer.add_note("never seen")
    monkeypatch.undo()
    assert (tmp_path / "s" / "session.json").read_text() == before
    assert load_session(tmp_path / "s").meta["notes"] == []


def test_cut_last_lines_and_power_cut_zeros_are_tolerated_then_repaired(tmp_path):
    folder = tmp_path / "s"
    writer, runner = make_writer(folder)
    write_all(writer, runner, 250)  # into the work phase: phase 0 written
    writer.flush(sync=True)
    # A crash: no close; then a cut row, NUL bytes of a power cut, a cut event row.
    with open(folder / "samples.csv", "ab") as fh:
        fh.write(b"250,1.23")
    with open(folder / "events.csv", "ab") as fh:
        fh.write(b"ch1,spasm,1.0")
    with open(folder / "phases.csv", "ab") as fh:
        fh.write(b"\x00" * 64)
    s = load_session(folder)
    assert s.recording.n_samples == 250 and s.status == "recording"
    assert len(s.warnings) == 4 and any("samples.csv: ignored an incomplete last line" in w for w in s.warnings)
    assert any("repair" in w for w in s.warnings)
    assert [p.index for p in s.phases] == [0]
    data, actions = repair_session(folder)
    assert data.status == "repaired" and data.warnings == []
    assert data.recording.n_samples == 250 and np.allclose(data.recording.data, signal(250), atol=1e-8)
    assert any("interrupted phase 'work'" in a for a in actions)
    cut = data.phases[-1]
    assert (cut.index, cut.start_s, cut.end_s, cut.extra["completed"]) == (1, 2.0, 2.5, False)
    assert "repaired" in data.meta["notes"][-1]
    assert (folder / "samples.csv").read_bytes().endswith(b",contract\n")
    # Idempotent.
    again, actions = repair_session(folder)
    assert actions == [] and len(again.phases) == 2
    writer._stop.set()


def test_repair_writes_rows_of_phases_that_ended_without_one(tmp_path):
    folder = tmp_path / "s"
    writer, runner = make_writer(folder)
    for pos in range(0, 420, 30):  # samples only: no phase rows written
        n = min(30, 420 - pos)
        writer.write_samples(pos, signal(n, 2, pos), runner.cues_for(pos, n))
    writer.flush()
    writer._stop.set()
    data, actions = repair_session(folder)
    assert [(p.index, p.start_s, p.end_s, p.extra["completed"]) for p in data.phases] == \
        [(0, 0.0, 2.0, True), (1, 2.0, 3.0, True), (2, 3.0, 4.2, False)]


def test_corrupted_row_inside_is_an_error_naming_the_line_and_repair_drops_it(tmp_path):
    folder = tmp_path / "s"
    writer, runner = make_writer(folder)
    write_all(writer, runner, 100)
    writer.close()
    path = folder / "samples.csv"
    lines = path.read_text().splitlines(keepends=True)
    k = next(i for i, line in enumerate(lines) if line.startswith("40,"))
    lines[k] = "40,garbage\n"
    path.write_text("".join(lines))
    with pytest.raises(InputFileError, match=f"line {k + 1}") as info:
        load_session(folder)
    assert "repair" in str(info.value)
    data, actions = repair_session(folder)
    assert any("corrupted" in a for a in actions)
    assert data.recording.n_samples == 100 and not data.present[40] and data.present.sum() == 99
    assert [e.kind for e in data.recording.events] == ["gap"]


def test_gaps_keep_the_time_axis(tmp_path):
    writer, runner = make_writer(tmp_path / "s")
    writer.write_samples(0, signal(50), runner.cues_for(0, 50))
    writer.write_samples(80, signal(20, 2, 80), runner.cues_for(80, 20))
    writer.close()
    s = load_session(tmp_path / "s")
    assert s.recording.n_samples == 100 and s.present.sum() == 70 and not s.present[50:80].any()
    assert np.allclose(s.recording.data[:, 50:80], np.repeat(signal(50)[:, -1:], 30, axis=1), atol=1e-8)
    gap = s.recording.events[0]
    assert (gap.kind, gap.onset_s, gap.offset_s, gap.extra["n_samples"]) == ("gap", 0.5, 0.8, 30)


def test_full_disk_keeps_what_was_written(tmp_path, monkeypatch):
    folder = tmp_path / "s"
    writer, runner = make_writer(folder, flush_interval_s=1.0)
    write_all(writer, runner, 100)
    writer.flush()
    calls = {"n": 0}
    real_write = os.write

    def full(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:  # half of the buffer fits, then the disk is full
            return real_write(fd, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_os_write", full)
    writer.write_samples(100, signal(100, 2, 100), runner.cues_for(100, 100))
    with pytest.raises(SessionStorageError) as info:
        writer.flush()
    message = str(info.value)
    assert "disk is full" in message and "repair" in message and "\n" not in message
    with pytest.raises(SessionStorageError):
        writer.write_samples(200, signal(10, 2, 200), runner.cues_for(200, 10))
    with pytest.raises(SessionStorageError):
        writer.close("complete")
    monkeypatch.undo()
    s = load_session(folder)  # readable: every complete row, the cut one ignored
    assert 100 <= s.recording.n_samples < 200 and s.present.all()
    assert np.allclose(s.recording.data, signal(s.recording.n_samples), atol=1e-8)
    assert s.meta["status"] in ("interrupted", "recording")
    data, _ = repair_session(folder)
    assert data.warnings == [] and data.recording.n_samples == s.recording.n_samples


def test_read_only_location_is_one_clear_line(tmp_path, monkeypatch):
    def read_only(path, mode=0o777):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(store.os, "mkdir", read_only)
    with pytest.raises(SessionStorageError) as info:
        make_writer(tmp_path / "x" / "s")
    message = str(info.value)
    assert "read-only" in message and str(tmp_path / "x" / "s") in message and "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SessionStorageError, match="permission denied"):
            make_writer(ro / "s")
    finally:
        ro.chmod(0o700)


def test_folder_names_and_root(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    assert sessions_root() == tmp_path / "sessions"
    from datetime import datetime

    now = datetime(2026, 11, 21, 18, 0, 0)
    first = new_session_folder(sessions_root(), "anna", "glazer", now)
    assert first == tmp_path / "sessions" / "anna" / "20261121-180000-glazer"
    first.mkdir(parents=True)
    assert new_session_folder(sessions_root(), "anna", "glazer", now).name == "20261121-180000-glazer-2"
    with pytest.raises(SessionStorageError, match="not an empty folder"):
        (first / "x").write_text("x")
        make_writer(first)


def test_not_a_session(tmp_path):
    with pytest.raises(InputFileError, match="not a session folder"):
        load_session(tmp_path)
    with pytest.raises(InputFileError, match="not found"):
        load_session(tmp_path / "nope")
