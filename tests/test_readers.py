"""``read_recording`` / ``iter_recording``: every real recording in ../shared, and broken files of each format."""

from __future__ import annotations

import importlib.util
import json
import os
import struct

import numpy as np
import pytest

from biofeedback.errors import BiofeedbackError, InputFileError, ParameterError
from biofeedback.io.readers import RECORDING_SUFFIXES, detect_format, iter_recording, read_recording

# ---------------------------------------------------------------------------
# every file under ../shared/data/real
# ---------------------------------------------------------------------------
# path: (format, fs, channels, duration s, units, reader options). The options are what a user must say
# because the file does not: the rate of header-less text and spreadsheets, the EMG column of the
# Biometrics files (the goniometer column empties after ~1 s), the label column of the Myo files, and the
# resampling rate of the UCI file (its millisecond time stamps are irregular).
SHARED = {
    "backyardbrains_rEMG/amp_off.wav": ("wav", 44100, 1, 1.730, "counts", {}),
    "backyardbrains_rEMG/amp_on_baseline.wav": ("wav", 44100, 1, 1.382, "counts", {}),
    "backyardbrains_rEMG/pulse_1.wav": ("wav", 44100, 1, 2.136, "counts", {}),
    "backyardbrains_rEMG/pulse_max.wav": ("wav", 44100, 1, 1.591, "counts", {}),
    "biosignalsnotebooks/classification_game/0_1.txt": ("opensignals", 1000, 2, 6.0, "uV", {}),
    "biosignalsnotebooks/classification_game/1_1.txt": ("opensignals", 1000, 2, 6.6, "uV", {}),
    "biosignalsnotebooks/classification_game/2_1.txt": ("opensignals", 1000, 2, 5.55, "uV", {}),
    "biosignalsnotebooks/classification_game/3_1.txt": ("opensignals", 1000, 2, 6.15, "uV", {}),
    "biosignalsnotebooks/emg_1000_hz_16_bits.txt": ("opensignals", 1000, 1, 40.5, "uV", {}),
    "biosignalsnotebooks/emg_1000_hz_16_bits_solo.txt": ("opensignals", 1000, 1, 87.6, "uV", {}),
    "biosignalsnotebooks/emg_bursts.h5": ("hdf5", 1000, 1, 28.519, "counts", {}),
    "biosignalsnotebooks/emg_fatigue.h5": ("hdf5", 1000, 1, 126.9, "counts", {}),
    "biosppy/emg.txt": ("csv", 1000, 1, 100.0, "counts", {}),
    "biosppy/emg_1.txt": ("csv", 1000, 1, 63.88, "counts", {}),
    "bitalino_edf_oficina/cristian_3reps.edf": ("edf", 1000, 1, 20.0, "mV", {}),
    "bitalino_edf_oficina/cristian_MCV.edf": ("edf", 1000, 1, 15.0, "mV", {}),
    "bitalino_edf_oficina/cristian_pesoleve.edf": ("edf", 1000, 1, 15.0, "mV", {}),
    # not a recording but a table of 31 subjects: it loads as 4 columns of 31 rows when a "rate" is given
    "elderly_emg_dynamometry/Demographics.xlsx": ("xlsx", 1, 4, 31.0, "a.u.", {"fs": 1}),
    "elderly_emg_dynamometry/ID 1.xlsx": ("xlsx", 2000, 4, 10.0005, "a.u.", {"fs": 2000}),
    "emggo/ECG Contaminated.mat": ("mat", 2048, 8, 40801 / 2048, "a.u.", {}),
    "emggo/Sample Data.mat": ("mat", 250, 1, 549.68, "a.u.", {}),
    "myo_readings/12345-1/0.txt": ("csv", 200, 8, 59.625, "a.u.", {"fs": 200, "channels": "!8"}),
    "myo_readings/12345-1/1.txt": ("csv", 200, 8, 59.68, "a.u.", {"fs": 200, "channels": "!8"}),
    "myo_readings/12345-1/7.txt": ("csv", 200, 8, 59.675, "a.u.", {"fs": 200, "channels": "!8"}),
    "openbci_ganglion_myoware/OpenBCI-RAW-S02_S1R0.txt": ("openbci", 200, 4, 131.035, "uV", {}),
    "openbci_ganglion_myoware/OpenBCI-RAW-S02_S1REST.txt": ("openbci", 200, 4, 32.07, "uV", {}),
    "openbci_ganglion_myoware/OpenBCI-RAW-S13_S1R0.txt": ("openbci", 200, 4, 134.785, "uV", {}),
    "openbci_gui_sample/OpenBCI_GUI-v6-blinks-jawClench-alpha.txt": ("openbci", 250, 8, 89.96, "uV", {}),
    "physionet_emgdb/emg_healthy.hea": ("wfdb", 4000, 1, 12.715, "mV", {}),
    "physionet_emgdb/emg_myopathy.hea": ("wfdb", 4000, 1, 27.58425, "mV", {}),
    "physionet_emgdb/emg_neuropathy.hea": ("wfdb", 4000, 1, 36.9645, "mV", {}),
    "psyc9080_biometrics/Carl_1.txt": ("csv", 1000, 1, 24.821, "a.u.", {"fs": 1000, "channels": "0"}),
    "psyc9080_biometrics/Carl_2.txt": ("csv", 1000, 1, 85.26, "a.u.", {"fs": 1000, "channels": "0"}),
    "psyc9080_biometrics/FDI-1.txt": ("csv", 1000, 1, 10.0, "a.u.", {"fs": 1000}),
    "uci_emg_gestures/01/1_raw_data_13-12_22.03.16.txt": ("csv", 1000, 8, 65.661, "a.u.", {"resample": 1000}),
}
# The files next to the recordings that are not recordings.
NOT_RECORDINGS = ("SOURCE.md", "_info.json")


def _shared_files(root):
    out = []
    for folder, _, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            if name.endswith(NOT_RECORDINGS):
                continue
            if name.endswith(".dat") and os.path.exists(os.path.join(folder, name[:-4] + ".hea")):
                continue  # a WFDB record's samples: its .hea is the recording
            out.append(rel)
    return sorted(out)


@pytest.mark.shared_data
def test_every_shared_file_is_covered(shared_data):
    missing = sorted(set(_shared_files(shared_data)) - set(SHARED))
    assert not missing, f"add these files to SHARED with their expected rate/channels/duration: {missing}"


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", sorted(SHARED))
def test_shared_file_loads(shared_data, rel):
    fmt, fs, n_ch, duration, units, options = SHARED[rel]
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"{rel} not in this copy of the shared data")
    assert detect_format(path) == fmt
    rec = read_recording(path, **options)
    assert rec.info.extra["format"] == fmt
    assert rec.info.fs == fs
    assert rec.info.n_channels == n_ch
    assert rec.duration_s == pytest.approx(duration, abs=max(1.5 / fs, 1e-3))
    assert rec.info.units == units
    assert rec.data.dtype == np.float64 and np.isfinite(rec.data).all()
    assert rec.info.source == str(path)


@pytest.mark.shared_data
def test_shared_physical_values_are_plausible(shared_data):
    # OpenSignals 16-bit EMG codes around mid-scale become µV around 0 (±1.5 mV range)
    rec = read_recording(shared_data / "biosignalsnotebooks/emg_1000_hz_16_bits_solo.txt")
    assert abs(np.median(rec.data)) < 50 and np.abs(rec.data).max() <= 1500
    assert "ADC / 2**16" in rec.info.extra["conversion"]
    # the two-device file: the 1000 Hz device by default, the 10 Hz one on request (its 540 rows)
    two = shared_data / "biosignalsnotebooks/emg_1000_hz_16_bits.txt"
    slow = read_recording(two, device="00:07:80:D8:A8:82")
    assert slow.info.fs == 10 and slow.n_samples == 540
    assert read_recording(two, device=1).info.fs == 1000
    # WFDB lower-case "mv" is mV; needle EMG of a few hundred µV
    rec = read_recording(shared_data / "physionet_emgdb/emg_myopathy.hea")
    assert rec.info.units == "mV" and 0.01 < rec.data.std() < 2
    # EDF physical values in mV within the header's range
    rec = read_recording(shared_data / "bitalino_edf_oficina/cristian_MCV.edf")
    assert rec.data.min() >= -1.64 and rec.data.max() <= 1.63
    # OpenBCI old format: no lost packets, the wrap of the sample index is not a jump
    info, chunks = iter_recording(shared_data / "openbci_ganglion_myoware/OpenBCI-RAW-S02_S1REST.txt")
    for _ in chunks:
        pass
    assert info.extra["index_jumps"] == 0
    # The xlsx default sheet is the first EMG sheet; another on request
    assert read_recording(shared_data / "elderly_emg_dynamometry/ID 1.xlsx", fs=2000).info.extra["sheet"] == "EMG_VL"
    assert read_recording(shared_data / "elderly_emg_dynamometry/ID 1.xlsx", fs=2000,
                          sheet="EMG_TA").info.extra["sheet"] == "EMG_TA"


# ---------------------------------------------------------------------------
# helpers to build files
# ---------------------------------------------------------------------------
def wav_bytes(samples: np.ndarray, fs=1000, claim_extra=0) -> bytes:
    data = samples.astype("<i2").tobytes()
    n_ch = 1 if samples.ndim == 1 else samples.shape[1]
    fmt = struct.pack("<HHIIHH", 1, n_ch, fs, fs * 2 * n_ch, 2 * n_ch, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data) + claim_extra) + data
    return b"RIFF" + struct.pack("<I", len(body) + claim_extra) + body


def write_edf(path, data, fs=100.0, unit="uV", bdf=False):
    import edfio

    cls = edfio.BdfSignal if bdf else edfio.EdfSignal
    signals = [cls(row, fs, label=f"EMG{i + 1}", physical_dimension=unit) for i, row in enumerate(data)]
    (edfio.Bdf if bdf else edfio.Edf)(signals).write(path)


def signal(n=3000, n_ch=2, seed=0):
    return np.random.default_rng(seed).normal(0, 100, size=(n_ch, n))


# ---------------------------------------------------------------------------
# format detection by content
# ---------------------------------------------------------------------------
def test_content_wins_over_the_name(tmp_path):
    x = signal(1000, 1)
    p = tmp_path / "looks_like.csv"
    p.write_bytes(wav_bytes(x[0]))
    assert detect_format(p) == "wav"
    rec = read_recording(p)
    np.testing.assert_array_equal(rec.data[0], x[0].astype("<i2"))
    e = tmp_path / "renamed.dat"
    write_edf(e, signal(500, 1), fs=100)
    assert detect_format(e) == "edf"
    assert ".hea" in RECORDING_SUFFIXES and ".edf" in RECORDING_SUFFIXES


# ---------------------------------------------------------------------------
# CSV variants and broken CSV
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"\x00\x01\x02\x03binary\x00\xff" * 20, "binary"),
    (b"time,ch1,ch2\n", "no data rows"),
    (b"# fs: 100\n1,2;3\n4;5,6\n7,8;9\n", "expected"),
    (b"\xef\xbb\xbf# comment only\n", "no data rows"),
])
def test_broken_csv_is_a_clear_error(tmp_path, content, expected):
    p = tmp_path / "broken.csv"
    p.write_bytes(content)
    with pytest.raises(BiofeedbackError, match=f"(?i){expected}") as info:
        read_recording(p, fs=100)
    assert str(p) in str(info.value)


def test_csv_variants_read_alike(tmp_path):
    x = np.round(signal(400, 2), 3)
    rows = [f"{a:.3f}{{d}}{b:.3f}" for a, b in x.T]
    for delim, name in ((",", "a.csv"), ("\t", "b.tsv"), (";", "c.txt"), (" ", "d.txt")):
        (tmp_path / name).write_text("# Sampling Rate (Hz):= 500\n" + "\r\n".join(r.format(d=delim) for r in rows))
        rec = read_recording(tmp_path / name)
        assert rec.info.fs == 500 and rec.info.extra["format"] == "csv"
        np.testing.assert_allclose(rec.data, x)


def test_simple_text_format_is_counts_named_after_labels(tmp_path):
    p = tmp_path / "bitalino.txt"
    p.write_text("# Simple Text Format\n# Sampling Rate (Hz):= 1000.00\n# Resolution:= 12\n# Labels:= EMG\n"
                 + "\n".join(str(v) for v in range(2000, 2100)) + "\n")
    rec = read_recording(p)
    assert rec.info.ch_names == ("EMG",) and rec.info.units == "counts" and rec.info.fs == 1000
    assert rec.info.extra["resolution_bits"] == "12"


def test_irregular_time_is_resampled_by_holding(tmp_path):
    t = np.array([0, 1, 2, 5, 6, 10, 11, 12])  # ms, gaps of 3 and 4 ms
    v = np.arange(len(t)) * 10.0
    p = tmp_path / "uci.txt"
    p.write_text("time\tch1\tclass\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in zip(t, v, "00111222")))
    with pytest.raises(InputFileError, match="irregular"):
        read_recording(p)
    rec = read_recording(p, resample=1000, cue_column="class")
    assert rec.info.fs == 1000 and rec.n_samples == 13
    np.testing.assert_array_equal(rec.data[0], [0, 10, 20, 20, 20, 30, 40, 40, 40, 40, 50, 60, 70])
    assert list(rec.cues) == list("0011111111222")
    # the same in tiny chunks
    info, chunks = iter_recording(p, 3, resample=1000)
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks], axis=1), rec.data)


# ---------------------------------------------------------------------------
# OpenBCI
# ---------------------------------------------------------------------------
def test_openbci_old_format_counts_lost_packets_not_wraps(tmp_path):
    idx = [253, 254, 255, 0, 1, 2, 5, 6]  # a wrap, then 3 and 4 lost
    lines = ["%OpenBCI Raw EEG Data", "%Number of channels = 2", "%Sample Rate = 250.0 Hz",
             "%First Column = SampleIndex"]
    lines += [f"{i}, {k * 1.5:.2f}, {-k:.2f}, 0.0, 0.0, 0.0, 12:00:00.{k:03d}" for k, i in enumerate(idx)]
    p = tmp_path / "OpenBCI-RAW-old.txt"
    p.write_text("\n".join(lines) + "\n")
    info, chunks = iter_recording(p)
    data = np.concatenate([c.data for c in chunks], axis=1)
    assert info.fs == 250 and info.ch_names == ("EXG Channel 0", "EXG Channel 1") and info.units == "uV"
    np.testing.assert_allclose(data[0], np.arange(8) * 1.5)
    assert info.extra["index_jumps"] == 1


def test_openbci_current_format_and_header_only(tmp_path):
    head = ("%OpenBCI Raw EXG Data\n%Number of channels = 2\n%Sample Rate = 250 Hz\n%Board = X\n"
            "Sample Index, EXG Channel 0, EXG Channel 1, Accel Channel 0, Timestamp, Timestamp (Formatted)\n")
    p = tmp_path / "v6.txt"
    rows = "".join(f"{k % 256}, {k}.5, -{k}.25, 0.1, 155793605{k:04d}, 12:00:00.000\n" for k in range(300))
    p.write_text(head + rows)
    rec = read_recording(p, channels="EXG Channel 1")
    assert rec.info.ch_names == ("EXG Channel 1",) and rec.n_samples == 300
    np.testing.assert_allclose(rec.data[0], -np.arange(300) - 0.25)
    empty = tmp_path / "empty.txt"
    empty.write_text(head)
    with pytest.raises(InputFileError, match="no data rows"):
        read_recording(empty)


# ---------------------------------------------------------------------------
# OpenSignals text and HDF5
# ---------------------------------------------------------------------------
def opensignals_text(devices, rows) -> str:
    header = {}
    for k, (mac, fs, labels, sensors) in enumerate(devices):
        header[mac] = {"sensor": sensors, "column": ["nSeq", "DI"] + labels, "label": labels, "position": k,
                       "sampling rate": fs, "resolution": [16] * len(labels), "device": "biosignalsplux",
                       "convertedValues": 0}
    return ("# OpenSignals Text File Format. Version 1\n# " + json.dumps(header) + "\n# EndOfHeader\n"
            + "".join("\t".join(r) + "\t\n" for r in rows))


def test_opensignals_two_devices_side_by_side(tmp_path):
    rows = []
    for k in range(200):  # the 10 Hz device has a sample on every 10th row, NaN between
        slow = [str(k), "0", str(32768 + k)] if k % 10 == 3 else ["NaN", "NaN", "NaN"]
        rows.append(slow + [str(k), "0", str(32768 + k), "40000"])
    p = tmp_path / "two.txt"
    p.write_text(opensignals_text([("AA", 10, ["A1"], ["EMG"]), ("BB", 1000, ["B1", "B2"], ["EMG", "XYZ"])], rows))
    rec = read_recording(p)  # fastest device, EMG channels only, in µV
    assert rec.info.fs == 1000 and rec.info.ch_names == ("B1",) and rec.info.units == "uV"
    np.testing.assert_allclose(rec.data[0], (np.arange(200) / 65536) * 3.0 / 1000 * 1e6)
    assert read_recording(p, channels="B1,B2").info.units == "counts"  # mixed sensors: raw codes
    slow = read_recording(p, device="AA")
    assert slow.info.fs == 10 and slow.n_samples == 20
    np.testing.assert_allclose(slow.data[0], (np.arange(3, 200, 10) / 65536) * 3.0 / 1000 * 1e6)
    with pytest.raises(ParameterError, match="device"):
        read_recording(p, device="CC")


def test_opensignals_broken_json(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("# OpenSignals Text File Format\n# {\"AA\": {\"sampling rate\": 1000,\n# EndOfHeader\n1\t0\t5\n")
    with pytest.raises(InputFileError, match="JSON header"):
        read_recording(p)


def test_opensignals_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    p = tmp_path / "rec.h5"
    codes = (32768 + np.arange(500) % 7).astype(np.uint16)
    with h5py.File(p, "w") as f:
        g = f.create_group("00:07:80:3B:46:61")
        g.attrs["sampling rate"] = 1000
        g.attrs["resolution"] = np.array([16])
        g.attrs["channels"] = np.array([3])
        g.create_dataset("raw/channel_3", data=codes.reshape(-1, 1))
        g.create_dataset("raw/nSeq", data=np.arange(500, dtype=np.uint16).reshape(-1, 1))
    rec = read_recording(p)
    assert rec.info.ch_names == ("CH3",) and rec.info.units == "counts" and rec.n_samples == 500
    np.testing.assert_array_equal(rec.data[0], codes)
    with h5py.File(p, "a") as f:
        f["00:07:80:3B:46:61"].attrs["sensor"] = np.array([b"EMG"])
    assert read_recording(p).info.units == "uV"
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(10))
    with pytest.raises(InputFileError, match="not an OpenSignals"):
        read_recording(other)


# ---------------------------------------------------------------------------
# WAV
# ---------------------------------------------------------------------------
def test_wav_truncated_data_chunk_is_read_and_noted(tmp_path):
    x = signal(1000, 2).T
    p = tmp_path / "short.wav"
    p.write_bytes(wav_bytes(x, fs=2000, claim_extra=4))  # as Backyard Brains files do
    rec = read_recording(p)
    assert rec.info.fs == 2000 and rec.info.n_channels == 2 and rec.n_samples == 1000
    assert rec.info.extra["truncated_bytes"] == 4
    np.testing.assert_array_equal(rec.data, x.T.astype("<i2"))


@pytest.mark.parametrize("cut, expected", [(30, "no 'fmt '|too short"), (40, "no 'data'"), (45, "no complete")])
def test_wav_cut_short_is_an_error(tmp_path, cut, expected):
    p = tmp_path / "cut.wav"
    p.write_bytes(wav_bytes(np.arange(100), fs=1000)[:cut])
    with pytest.raises(InputFileError, match=expected):
        read_recording(p)


# ---------------------------------------------------------------------------
# EDF / BDF
# ---------------------------------------------------------------------------
def test_edf_roundtrip_and_chunking(tmp_path):
    pytest.importorskip("edfio")
    x = signal(2000, 3)
    p = tmp_path / "rec.edf"
    write_edf(p, x, fs=200, unit="uV")
    rec = read_recording(p)
    assert rec.info.fs == 200 and rec.info.ch_names == ("EMG1", "EMG2", "EMG3") and rec.info.units == "uV"
    np.testing.assert_allclose(rec.data, x, atol=(x.max() - x.min()) / 65535 * 1.01)
    info, chunks = iter_recording(p, 37)
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks], axis=1), rec.data)


def test_bdf_24_bit(tmp_path):
    pytest.importorskip("edfio")
    x = signal(1000, 1)
    p = tmp_path / "rec.bdf"
    write_edf(p, x, fs=500, unit="mV", bdf=True)
    rec = read_recording(p)
    assert detect_format(p) == "bdf" and rec.info.units == "mV" and rec.n_samples == 1000
    np.testing.assert_allclose(rec.data, x, atol=(x.max() - x.min()) / 2 ** 24 * 1.01)


def test_edf_whose_header_lies_about_its_length(tmp_path):
    pytest.importorskip("edfio")
    p = tmp_path / "lying.edf"
    write_edf(p, signal(1000, 1), fs=100)
    raw = bytearray(p.read_bytes())
    n_records = int(raw[236:244])
    raw[236:244] = f"{n_records + 5:<8d}".encode()
    p.write_bytes(bytes(raw))
    with pytest.raises(InputFileError, match=f"header says {n_records + 5} data records"):
        read_recording(p)
    q = tmp_path / "truncated.edf"
    write_edf(q, signal(1000, 1), fs=100)
    q.write_bytes(q.read_bytes()[:-50])
    with pytest.raises(InputFileError, match="truncated or its header"):
        read_recording(q)


def test_edf_with_a_wrong_header(tmp_path):
    p = tmp_path / "garbage.edf"
    p.write_bytes(b"0       " + b"x" * 300)
    with pytest.raises(InputFileError, match="not a valid EDF"):
        read_recording(p)
    q = tmp_path / "short.edf"
    q.write_bytes(b"0       " + b" " * 100)
    with pytest.raises(InputFileError, match="not a valid EDF"):
        read_recording(q)


# ---------------------------------------------------------------------------
# WFDB
# ---------------------------------------------------------------------------
def test_wfdb_units_and_missing_or_short_data(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    x = signal(4000, 2) / 1000.0
    wfdb.wrsamp("rec", fs=4000, units=["mv", "uV"], sig_name=["A", "B"], p_signal=x.T * [1, 1000],
                fmt=["16", "16"], write_dir=str(tmp_path))
    rec = read_recording(tmp_path / "rec.hea")
    assert rec.info.fs == 4000 and rec.info.units == "uV" and rec.n_samples == 4000  # mV and µV -> µV
    np.testing.assert_allclose(rec.data[0], x[0] * 1000, atol=0.2)
    assert detect_format(tmp_path / "rec.dat") == "wfdb"
    data = (tmp_path / "rec.dat").read_bytes()
    (tmp_path / "rec.dat").write_bytes(data[:1000])
    with pytest.raises(InputFileError, match="truncated"):
        read_recording(tmp_path / "rec.hea")
    (tmp_path / "rec.dat").unlink()
    with pytest.raises(InputFileError, match="rec.dat.*missing"):
        read_recording(tmp_path / "rec.hea")


def test_wfdb_header_that_cannot_be_parsed(tmp_path):
    pytest.importorskip("wfdb")
    p = tmp_path / "bad.hea"
    p.write_text("bad x y z\n")
    with pytest.raises(InputFileError, match="WFDB header"):
        read_recording(p)


# ---------------------------------------------------------------------------
# MATLAB
# ---------------------------------------------------------------------------
def test_mat_struct_layouts_and_variable_option(tmp_path):
    from scipy.io import savemat

    x = signal(3000, 3)
    p = tmp_path / "emg.mat"
    savemat(p, {"EMG": {"channelData": x.T, "fs": 2048.0}, "other": np.arange(10.0)})
    rec = read_recording(p)
    assert rec.info.fs == 2048 and rec.info.n_channels == 3 and rec.info.extra["variable"] == "EMG.channelData"
    np.testing.assert_allclose(rec.data, x)
    q = tmp_path / "flat.mat"
    savemat(q, {"data": x, "force": np.zeros((3000, 1)), "srate": 1000, "labels": np.array(["a", "b", "c"])})
    rec = read_recording(q)
    assert rec.info.fs == 1000 and rec.info.ch_names == ("a", "b", "c")
    assert read_recording(q, variable="force").info.n_channels == 1
    with pytest.raises(ParameterError, match="MATLAB variable"):
        read_recording(q, variable="nothing")
    r = tmp_path / "nofs.mat"
    savemat(r, {"sig": x})
    with pytest.raises(InputFileError, match="--fs"):
        read_recording(r)
    assert read_recording(r, fs=500).info.fs == 500
    broken = tmp_path / "broken.mat"
    broken.write_bytes(p.read_bytes()[:200])
    with pytest.raises(InputFileError, match="MATLAB file cannot be read"):
        read_recording(broken)


# ---------------------------------------------------------------------------
# Excel
# ---------------------------------------------------------------------------
def test_xlsx_sheets_header_and_empty_cell(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "force"
    ws.append([1.0, 2.0])
    emg = wb.create_sheet("EMG_1")
    emg.append(["time (s)", "biceps (uV)", "note"])
    for k in range(100):
        emg.append([k / 500, float(k), "x"])
    emg.append([None, None, None])
    bad = wb.create_sheet("holes")
    bad.append([1.0, 2.0])
    bad.append([None, 3.0])
    bad.append([4.0, 5.0])
    p = tmp_path / "book.xlsx"
    wb.save(p)
    rec = read_recording(p)
    assert rec.info.extra["sheet"] == "EMG_1" and rec.info.ch_names == ("biceps",) and rec.info.units == "uV"
    assert rec.info.fs == 500 and rec.n_samples == 100
    with pytest.raises(InputFileError, match="cell A2"):
        read_recording(p, sheet="holes", fs=100)
    with pytest.raises(ParameterError, match="sheet"):
        read_recording(p, sheet="nope")
    with pytest.raises(InputFileError, match="rate is missing"):
        read_recording(p, sheet=0)
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(p.read_bytes()[:300])
    with pytest.raises(InputFileError, match="(?i)zip|workbook"):
        read_recording(damaged)


def test_unknown_option_and_missing_file(tmp_path):
    with pytest.raises(ParameterError, match="reader option"):
        read_recording(tmp_path / "x.csv", colour="red")
    with pytest.raises(InputFileError, match="file not found"):
        read_recording(tmp_path / "x.csv")


# ---------------------------------------------------------------------------
# any format cut short: a Recording or a clear error, never a crash
# ---------------------------------------------------------------------------
def _valid_files(folder):
    from scipy.io import savemat

    x = signal(2000, 2)
    files = {}
    p = folder / "a.csv"
    p.write_text("time_s,a,b\n" + "".join(f"{k / 1000:.3f},{u:.3f},{v:.3f}\n" for k, (u, v) in enumerate(x.T)))
    files["csv"] = p
    p = folder / "a.wav"
    p.write_bytes(wav_bytes(x.T, fs=1000))
    files["wav"] = p
    p = folder / "a.mat"
    savemat(p, {"EMG": {"data": x, "fs": 1000.0}})
    files["mat"] = p
    p = folder / "os.txt"
    p.write_text(opensignals_text([("AA", 1000, ["A1"], ["EMG"])], [[str(k), "0", str(30000 + k)] for k in range(500)]))
    files["opensignals"] = p
    p = folder / "bci.txt"
    p.write_text("%OpenBCI Raw EEG Data\n%Sample Rate = 200.0 Hz\n"
                 + "".join(f"{k % 200}, {k}.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10:00:00.000\n" for k in range(600)))
    files["openbci"] = p
    if importlib.util.find_spec("edfio"):
        write_edf(folder / "a.edf", x, fs=100)
        files["edf"] = folder / "a.edf"
        write_edf(folder / "a.bdf", x, fs=100, bdf=True)
        files["bdf"] = folder / "a.bdf"
    try:
        import h5py

        with h5py.File(folder / "a.h5", "w") as f:
            g = f.create_group("AA")
            g.attrs["sampling rate"] = 1000
            g.create_dataset("raw/channel_1", data=np.arange(2000, dtype=np.uint16).reshape(-1, 1))
        files["hdf5"] = folder / "a.h5"
    except ImportError:
        pass
    try:
        import openpyxl

        wb = openpyxl.Workbook()
        for row in x.T[:300]:
            wb.active.append([float(v) for v in row])
        wb.save(folder / "a.xlsx")
        files["xlsx"] = folder / "a.xlsx"
    except ImportError:
        pass
    try:
        import wfdb

        wfdb.wrsamp("rec", fs=1000, units=["mV", "mV"], sig_name=["A", "B"], p_signal=x.T / 100, fmt=["16", "16"],
                    write_dir=str(folder))
        files["wfdb"] = folder / "rec.hea"
    except ImportError:
        pass
    return files


def test_every_format_cut_short_reads_or_fails_clearly(tmp_path):
    files = _valid_files(tmp_path)
    assert len(files) >= 5
    for fmt, path in files.items():
        opts = {"fs": 100} if fmt == "xlsx" else {}
        full = read_recording(path, **opts)
        target = path if fmt != "wfdb" else path.with_suffix(".dat")
        raw = target.read_bytes()
        for frac in (0.02, 0.3, 0.7, 0.97):
            cut = tmp_path / "cut" / fmt
            cut.mkdir(parents=True, exist_ok=True)
            dest = cut / target.name
            dest.write_bytes(raw[:max(1, int(len(raw) * frac))])
            if fmt == "wfdb":
                (cut / path.name).write_bytes(path.read_bytes())
                dest = cut / path.name
            try:
                rec = read_recording(dest, **opts)
            except BiofeedbackError as exc:
                assert str(cut) in str(exc), (fmt, frac, str(exc))  # names the file (or its data file)
                continue
            # formats that tolerate a cut (text, WAV) give a shorter recording of the same layout
            assert fmt in ("csv", "wav", "openbci", "opensignals"), (fmt, frac)
            assert rec.info.n_channels == full.info.n_channels and rec.n_samples < full.n_samples
