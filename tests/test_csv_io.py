"""Tests of biofeedback.io.csv_io: reading the CSV/TXT files people have, writing them back."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofeedback.core.types import Event, Recording, StreamInfo
from biofeedback.errors import InputFileError, ParameterError
from biofeedback.io import csv_io
from biofeedback.io.csv_io import (
    iter_csv,
    parse_channel_spec,
    read_csv,
    read_events,
    write_events,
    write_recording,
)

DATA = np.array([[1.5, -2.0, 3.25], [4.0, 5.5, -6.0], [7.0, 8.0, 9.5], [-10.0, 11.0, 12.0]])


def write(tmp_path, text, name="rec.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def rows(data, sep=",", fmt="{:g}"):
    return "".join(sep.join(fmt.format(v) for v in r) + "\n" for r in data)


def one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------
# layouts
# ---------------------------------------------------------------------------
def test_header_row_names_channels(tmp_path):
    path = write(tmp_path, "a,b,c\n" + rows(DATA))
    rec = read_csv(path, fs=100)
    assert rec.info.ch_names == ("a", "b", "c")
    np.testing.assert_array_equal(rec.data, DATA.T)
    assert rec.info.fs == 100
    assert rec.info.extra["header"] is True


def test_no_header_names_by_position(tmp_path):
    path = write(tmp_path, rows(DATA))
    rec = read_csv(path, fs=100)
    assert rec.info.ch_names == ("ch1", "ch2", "ch3")
    np.testing.assert_array_equal(rec.data, DATA.T)
    assert rec.info.extra["header"] is False
    assert rec.info.units == "a.u."


@pytest.mark.parametrize("sep", [",", ";", "\t", " ", "   ", ", ", " ; ", "\t "])
def test_delimiters_are_sniffed(tmp_path, sep):
    path = write(tmp_path, rows(DATA, sep))
    rec = read_csv(path, fs=50)
    np.testing.assert_array_equal(rec.data, DATA.T)


@pytest.mark.parametrize("sep,arg", [(",", ","), (";", ";"), ("\t", "\\t"), ("\t", "tab"), ("  ", "whitespace")])
def test_explicit_delimiter(tmp_path, sep, arg):
    path = write(tmp_path, sep.join(["p", "q", "r"]) + "\n" + rows(DATA, sep))
    rec = read_csv(path, fs=50, delimiter=arg)
    assert rec.info.ch_names == ("p", "q", "r")
    np.testing.assert_array_equal(rec.data, DATA.T)


def test_bad_delimiter_argument(tmp_path):
    path = write(tmp_path, rows(DATA))
    with pytest.raises(ParameterError):
        read_csv(path, fs=50, delimiter="ab")


def test_whitespace_with_leading_blanks(tmp_path):
    text = "".join("   " + "  ".join(f"{v:g}" for v in r) + "  \n" for r in DATA)
    rec = read_csv(write(tmp_path, text), fs=10)
    np.testing.assert_array_equal(rec.data, DATA.T)


def test_comment_lines_anywhere(tmp_path):
    text = ("# first comment\n% matlab style\n\na,b,c\n" + rows(DATA[:2]) + "# in the middle\n\n"
            + rows(DATA[2:]) + "% end\n")
    rec = read_csv(write(tmp_path, text), fs=10)
    np.testing.assert_array_equal(rec.data, DATA.T)


def test_inline_comment(tmp_path):
    text = "1,2\n3,4  # note\n5,6\n"
    rec = read_csv(write(tmp_path, text), fs=10)
    np.testing.assert_array_equal(rec.data, [[1, 3, 5], [2, 4, 6]])


def test_crlf_and_cr_only(tmp_path):
    body = "a,b,c\n" + rows(DATA)
    for name, text in (("crlf.csv", body.replace("\n", "\r\n")), ("cr.csv", body.replace("\n", "\r"))):
        rec = read_csv(write(tmp_path, text, name), fs=10)
        assert rec.info.ch_names == ("a", "b", "c")
        np.testing.assert_array_equal(rec.data, DATA.T)


def test_crlf_with_error_counts_physical_lines(tmp_path):
    text = "# c\r\n1,2\r\n3,x\r\n".encode()
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text), fs=10)
    assert exc.value.line == 3


@pytest.mark.parametrize("header", ["a,b,c\n", "a,b,c,\n", ""])
def test_trailing_delimiter(tmp_path, header):
    text = header + "".join(",".join(f"{v:g}" for v in r) + ",\n" for r in DATA)
    rec = read_csv(write(tmp_path, text), fs=10)
    assert rec.info.n_channels == 3
    np.testing.assert_array_equal(rec.data, DATA.T)


def test_missing_final_newline_and_bom(tmp_path):
    text = b"\xef\xbb\xbfa,b\n1,2\n3,4"
    rec = read_csv(write(tmp_path, text), fs=10)
    assert rec.info.ch_names == ("a", "b")
    np.testing.assert_array_equal(rec.data, [[1, 3], [2, 4]])


def test_quoted_header_and_values(tmp_path):
    text = '"a","b"\n"1","2"\n"3","4"\n'
    rec = read_csv(write(tmp_path, text), fs=10)
    assert rec.info.ch_names == ("a", "b")
    np.testing.assert_array_equal(rec.data, [[1, 3], [2, 4]])


def test_duplicate_and_empty_header_names(tmp_path):
    rec = read_csv(write(tmp_path, "emg,emg,\n1,2,3\n"), fs=10)
    assert rec.info.ch_names == ("emg", "emg_2", "ch3")


def test_units_from_header_and_comment(tmp_path):
    rec = read_csv(write(tmp_path, "ch1 (uV),ch2 [uV]\n1,2\n", "a.csv"), fs=10)
    assert rec.info.ch_names == ("ch1", "ch2") and rec.info.units == "uV"
    rec = read_csv(write(tmp_path, "# units: mV\n1,2\n", "b.csv"), fs=10)
    assert rec.info.units == "mV"
    rec = read_csv(write(tmp_path, "x (uV),y (mV)\n1,2\n", "c.csv"), fs=10)
    assert rec.info.units == "a.u." and rec.info.extra["channel_units"] == ("uV", "mV")


# ---------------------------------------------------------------------------
# sampling rate and time column
# ---------------------------------------------------------------------------
def timed(fs, n=200, scale=1.0, name="time", t0=0.0, fmt="{:.9g}"):
    t = (t0 + np.arange(n) / fs) / scale
    x = np.arange(n) % 7 - 3.0
    lines = [f"{name},emg"] + [f"{fmt.format(a)},{b:g}" for a, b in zip(t, x)]
    return "\n".join(lines) + "\n", x


@pytest.mark.parametrize("name,scale", [("time", 1.0), ("t", 1.0), ("time_s", 1.0), ("time (s)", 1.0),
                                        ("seconds", 1.0), ("time_ms", 1e-3), ("ms", 1e-3), ("millis", 1e-3),
                                        ("timestamp_ms", 1e-3), ("time (ms)", 1e-3), ("time_us", 1e-6)])
def test_fs_from_time_column(tmp_path, name, scale):
    text, x = timed(500.0, scale=scale, name=name, t0=2.0)
    rec = read_csv(write(tmp_path, text), time_column="auto")
    assert rec.info.fs == 500.0
    assert rec.info.ch_names == ("emg",)
    np.testing.assert_array_equal(rec.data[0], x)
    assert rec.info.extra["fs_source"] == "time column"
    assert rec.info.extra["t0_s"] == pytest.approx(2.0)


def test_fs_from_rounded_millisecond_stamps(tmp_path):
    # 300 Hz stamped in whole milliseconds: steps of 3 and 4 ms.
    text, _ = timed(300.0, n=900, scale=1e-3, name="time_ms", fmt="{:.0f}")
    assert read_csv(write(tmp_path, text)).info.fs == 300.0


def test_unitless_time_in_milliseconds_is_inferred(tmp_path):
    text, _ = timed(1000.0, scale=1e-3, name="time", fmt="{:.0f}")
    rec = read_csv(write(tmp_path, text))
    assert rec.info.fs == 1000.0
    assert rec.info.extra["time_unit"] == "ms" and rec.info.extra["time_unit_inferred"]


def test_irregular_time_column_is_explained(tmp_path):
    t = np.arange(300) / 1000.0
    t[150:] += 0.010  # a 10 ms jump
    text = "time,emg\n" + "".join(f"{a:.6f},1\n" for a in t)
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as exc:
        read_csv(path)
    assert "irregular" in one_line(exc) and "--fs" in str(exc.value)
    rec = read_csv(path, fs=1000)  # given fs: rows read as equally spaced
    assert rec.n_samples == 300 and rec.info.extra["time_irregular_steps"] == 1


def test_gap_after_estimation_rows_names_line(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_io, "_FS_ESTIMATE_ROWS", 100)
    t = np.arange(400) / 250.0
    t[300:] += 1 / 250.0  # one missing sample after the rows used for fs
    text = "time_s,emg\n" + "".join(f"{a:.6f},1\n" for a in t)
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text))
    assert exc.value.line == 302 and exc.value.column == "time_s"


def test_time_not_increasing(tmp_path):
    text = "time_s,emg\n0,1\n0.001,1\n0.001,1\n0.003,1\n"
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text))
    assert "does not increase" in one_line(exc) and exc.value.line == 4


def test_given_fs_checked_against_time_column(tmp_path):
    text, _ = timed(1000.0)
    path = write(tmp_path, text)
    assert read_csv(path, fs=1005).info.fs == 1005  # within 1 %: the argument wins
    with pytest.raises(InputFileError) as exc:
        read_csv(path, fs=200)
    msg = one_line(exc)
    assert "200 Hz" in msg and "1000 Hz" in msg


@pytest.mark.parametrize("comment,fs", [("# Sampling Rate (Hz):= 1000.00", 1000.0), ("%Sample Rate = 200.0 Hz", 200.0),
                                        ("# sampling_rate_hz: 500", 500.0), ("# fs = 250", 250.0),
                                        ("# SAMPLING RATE: 2 kHz", 2000.0), ("% samplerate 128", 128.0),
                                        ("# Sampling frequency (kHz): 2.5", 2500.0)])
def test_fs_from_comment_line(tmp_path, comment, fs):
    rec = read_csv(write(tmp_path, comment + "\n# other: 3\n" + rows(DATA)))
    assert rec.info.fs == fs and rec.info.extra["fs_source"] == "header comment"


def test_comment_without_a_rate_value_is_not_a_rate(tmp_path):
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, "# sampling rate unknown, gain 1000\n" + rows(DATA)))
    assert "sampling rate is missing" in one_line(exc)


def test_comment_fs_disagreeing_with_time_column(tmp_path):
    text, _ = timed(1000.0)
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, "# sampling_rate_hz: 500\n" + text))
    assert "500 Hz" in one_line(exc) and "1000 Hz" in str(exc.value)


def test_missing_fs(tmp_path):
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, rows(DATA)))
    assert one_line(exc).endswith("sampling rate is missing: pass --fs HZ or add a time column")


def test_bad_fs_argument(tmp_path):
    with pytest.raises(ParameterError):
        read_csv(write(tmp_path, rows(DATA)), fs=-1)


def test_time_column_none_and_explicit(tmp_path):
    text, x = timed(100.0)
    path = write(tmp_path, text)
    rec = read_csv(path, fs=100, time_column=None)
    assert rec.info.ch_names == ("time", "emg")
    rec = read_csv(path, time_column=0)
    assert rec.info.ch_names == ("emg",) and rec.info.fs == 100


def test_recorder_style_file_with_sample_index(tmp_path):
    text = ("# biofeedback recording\n# sampling_rate_hz: 250\n# units: counts\n# source: port\n"
            "sample,ch1,ch2\n0,512,498\n1,515,501\n4,509,497\n")
    rec = read_csv(write(tmp_path, text))
    assert rec.info.ch_names == ("ch1", "ch2") and rec.info.units == "counts" and rec.info.fs == 250
    np.testing.assert_array_equal(rec.data, [[512, 515, 509], [498, 501, 497]])
    assert rec.info.extra["index_jumps"] == 1


def test_index_column_dropped_and_jumps_counted(tmp_path):
    idx = [0, 1, 2, 4, 5, 0, 1]  # one jump (2 -> 4); 5 -> 0 is a counter wrap
    text = "sample_index,emg\n" + "".join(f"{i},{i * 2}\n" for i in idx)
    rec = read_csv(write(tmp_path, text), fs=10)
    assert rec.info.ch_names == ("emg",)
    assert rec.info.extra["index_jumps"] == 1


# ---------------------------------------------------------------------------
# channel selection and cues
# ---------------------------------------------------------------------------
NAMES = ["ch1", "ch2", "ch3", "ch4", "ch5", "ch6", "ch7", "ch8", "label"]


@pytest.mark.parametrize("spec,expected", [
    (None, list(range(9))), ("0-7", list(range(8))), ("!8", list(range(8))), ("ch1,ch3", [0, 2]),
    ("CH2", [1]), (["ch3", 0, "5-6"], [2, 0, 5, 6]), (3, [3]), ("0,3,4", [0, 3, 4]), ("!0,!label", list(range(1, 8))),
    ("0-3,!1", [0, 2, 3]), ("label", [8]), ("2,2,1", [2, 1]),
])
def test_parse_channel_spec(spec, expected):
    assert parse_channel_spec(spec, NAMES) == expected


@pytest.mark.parametrize("spec", ["ch9", "9", "0-9", "7-3", "!ch10", "", [], "!0-8", [1.5]])
def test_parse_channel_spec_errors_list_names(spec):
    with pytest.raises(ParameterError) as exc:
        parse_channel_spec(spec, NAMES)
    msg = one_line(exc)
    if spec not in ("", []) and spec != [1.5]:
        assert "ch1" in msg and "label" in msg


def test_channel_selection_in_read(tmp_path):
    path = write(tmp_path, "time_ms,a,b,c\n" + "".join(f"{i},{i},{10 * i},{100 * i}\n" for i in range(5)))
    rec = read_csv(path, channels="0,2")
    assert rec.info.ch_names == ("a", "c")
    np.testing.assert_array_equal(rec.data, [np.arange(5), 100 * np.arange(5)])
    assert read_csv(path, channels=["c", 0]).info.ch_names == ("c", "a")
    assert read_csv(path, channels="!1").info.ch_names == ("a", "c")
    with pytest.raises(ParameterError) as exc:
        read_csv(path, channels="d")
    assert "a" in one_line(exc) and "c" in str(exc.value)


def test_cue_column_by_name_and_index(tmp_path):
    text = "a,b,state\n1,2,rest\n3,4,rest\n5,6,contract\n"
    path = write(tmp_path, text)
    rec = read_csv(path, fs=10, cue_column="state")
    assert rec.info.ch_names == ("a", "b")
    assert rec.cues.tolist() == ["rest", "rest", "contract"]
    assert read_csv(path, fs=10, cue_column=2).cues.tolist() == ["rest", "rest", "contract"]
    # Without cue_column the text column is simply not a default channel.
    rec = read_csv(path, fs=10)
    assert rec.cues is None and rec.info.ch_names == ("a", "b") and rec.info.extra["unused_columns"] == ("state",)
    with pytest.raises(ParameterError):
        read_csv(path, fs=10, cue_column="nope")


def test_numeric_cue_kept_as_text_and_label_names_not_default_channels(tmp_path):
    path = write(tmp_path, "x,y,class\n1,2,0\n3,4,07\n")
    rec = read_csv(path, fs=10)
    assert rec.info.ch_names == ("x", "y")
    rec = read_csv(path, fs=10, cue_column="class")
    assert rec.cues.tolist() == ["0", "07"]
    assert read_csv(path, fs=10, channels="0-2").info.ch_names == ("x", "y", "class")


def test_iter_csv_cues_layer(tmp_path):
    text = "a,cue\n" + "".join(f"{i},{'on' if i % 3 else 'off'}\n" for i in range(10))
    info, chunks = iter_csv(write(tmp_path, text), chunk_samples=4, fs=10, cue_column="cue")
    chunks = list(chunks)
    assert [c.layers["cues"].shape for c in chunks] == [(1, 4), (1, 4), (1, 2)]
    assert chunks[0].layers["cues"].dtype == object
    cues = np.concatenate([c.layers["cues"][0] for c in chunks]).tolist()
    assert cues == ["off" if i % 3 == 0 else "on" for i in range(10)]


# ---------------------------------------------------------------------------
# bad values and bad files
# ---------------------------------------------------------------------------
def test_empty_field_in_unselected_column_is_fine(tmp_path):
    text = "1\t5\t31\n2\t\t31\n3\t\t\n"
    rec = read_csv(write(tmp_path, text), fs=10, channels=[0])
    np.testing.assert_array_equal(rec.data, [[1, 2, 3]])


def test_empty_field_in_selected_column(tmp_path):
    text = "# header comment\n1\t5\n2\t\n3\t7\n"
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text), fs=10)
    msg = one_line(exc)
    assert exc.value.line == 3 and exc.value.column == "ch2"
    assert "expected a number" in msg and "empty field" in msg and "rec.csv" in msg


def test_non_numeric_value_names_line_column_and_text(tmp_path):
    text = "a,b\n1,2\n3,4\n5,oops\n"
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text), fs=10)
    msg = one_line(exc)
    assert exc.value.line == 4 and exc.value.column == "b"
    assert "expected a number" in msg and "'oops'" in msg


def test_decimal_comma_hint(tmp_path):
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, "a;b\n1,5;2,5\n3,0;4,0\n"), fs=10)
    assert "decimal comma" in one_line(exc)


def test_short_row(tmp_path):
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, "1,2,3\n4,5\n"), fs=10)
    assert exc.value.line == 2 and "fields" in one_line(exc)


@pytest.mark.parametrize("bad,word", [("nan", "NaN"), ("NaN", "NaN"), ("inf", "infinite"), ("-Inf", "infinite")])
def test_nan_and_inf_rejected(tmp_path, bad, word):
    text = f"a,b\n1,2\n3,{bad}\n"
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text), fs=10)
    msg = one_line(exc)
    assert exc.value.line == 3 and exc.value.column == "b" and word in msg and "not a valid sample" in msg
    assert "np.float64" not in msg


def test_all_empty_row_inside_is_error_but_trailing_is_dropped(tmp_path):
    text = "1\t2\n3\t4\n\t\n\t\n"
    rec = read_csv(write(tmp_path, text, "tail.csv"), fs=10)
    assert rec.n_samples == 2 and rec.info.extra["trailing_empty_rows"] == 2
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, "1\t2\n\t\n3\t4\n", "mid.csv"), fs=10)
    assert exc.value.line == 2


def test_blank_lines_inside_are_skipped(tmp_path):
    rec = read_csv(write(tmp_path, "1,2\n\n   \n3,4\n\n"), fs=10)
    np.testing.assert_array_equal(rec.data, [[1, 3], [2, 4]])


@pytest.mark.parametrize("content,words", [
    (None, "not found"), ("", "empty"), ("a,b,c\n", "header row but no data"), ("# only\n% comments\n", "no data rows"),
    ("\n\n  \n", "no data rows"), ("a,b\n# c\n\n", "no data rows"), (b"\x00\x01binary", "binary"),
])
def test_unreadable_files(tmp_path, content, words):
    path = tmp_path / "f.csv"
    if content is not None:
        write(tmp_path, content, "f.csv")
    with pytest.raises(InputFileError) as exc:
        read_csv(path, fs=10)
    assert words in one_line(exc)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(InputFileError) as exc:
        read_csv(tmp_path, fs=10)
    assert "directory" in one_line(exc)


def test_no_numeric_columns(tmp_path):
    with pytest.raises(InputFileError):
        read_csv(write(tmp_path, "a,b\nx,y\nz,w\n"), fs=10)


# ---------------------------------------------------------------------------
# chunks, blocks and the vectorised parser
# ---------------------------------------------------------------------------
def make_file(tmp_path, n=3000, name="big.csv", crlf=False):
    rng = np.random.default_rng(1)
    data = np.round(rng.normal(0, 100, size=(n, 4)), 3)
    data[::7, 1] = np.round(rng.normal(0, 1e-5, size=len(data[::7, 1])), 9)
    t = np.arange(n) / 2000
    nl = "\r\n" if crlf else "\n"
    lines = ["# sampling rate: 2000", "time_s,a,b,c,d"] + [
        f"{a:.6f},{b:.6g},{c:.4e},{d:g},{e:.10g}" for a, (b, c, d, e) in zip(t, data)
    ]
    path = write(tmp_path, nl.join(lines) + nl, name)
    expected = np.array([[float(f"{v:.6g}") for v in data[:, 0]], [float(f"{v:.4e}") for v in data[:, 1]],
                         [float(f"{v:g}") for v in data[:, 2]], [float(f"{v:.10g}") for v in data[:, 3]]])
    return path, expected


@pytest.mark.parametrize("block", [17, 64, 1000, 4099, 1 << 20])
@pytest.mark.parametrize("crlf", [False, True])
def test_blocks_split_mid_line_give_same_data(tmp_path, monkeypatch, block, crlf):
    path, expected = make_file(tmp_path, crlf=crlf)
    monkeypatch.setattr(csv_io, "BLOCK_BYTES", block)
    rec = read_csv(path)
    np.testing.assert_array_equal(rec.data, expected)
    assert rec.info.fs == 2000


@pytest.mark.parametrize("chunk", [1, 7, 100, 1024, 2999, 3000, 65536])
def test_iter_csv_equals_read_csv(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(csv_io, "BLOCK_BYTES", 5000)
    path, _ = make_file(tmp_path)
    rec = read_csv(path)
    info, chunks = iter_csv(path, chunk_samples=chunk)
    chunks = list(chunks)
    assert info == rec.info
    assert all(c.n_samples == chunk for c in chunks[:-1]) and 0 < chunks[-1].n_samples <= chunk
    assert [c.first_sample for c in chunks] == list(range(0, rec.n_samples, chunk))
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks], axis=1), rec.data)


@pytest.mark.parametrize("chunk", [1, 7, 999, 1000, 1001, 2500, 4096])
def test_multichannel_chunks_with_cues_equal_the_whole_read(tmp_path, monkeypatch, chunk):
    # Blocks of ~20 rows, so chunks are cut from many blocks, inside blocks and at their edges.
    monkeypatch.setattr(csv_io, "BLOCK_BYTES", 700)
    path = tmp_path / "rec.csv"
    write_recording(path, recording(n=3000), float_format="%.17g")
    whole = read_csv(path)
    info, chunks = iter_csv(path, chunk_samples=chunk)
    chunks = list(chunks)
    assert [c.first_sample for c in chunks] == list(range(0, 3000, chunk))
    assert all(c.n_samples == chunk for c in chunks[:-1]) and 0 < chunks[-1].n_samples <= chunk
    assert all(c.data.flags.c_contiguous for c in chunks)
    assert np.array_equal(np.concatenate([c.data for c in chunks], axis=1), whole.data)
    assert np.concatenate([c.layers["cues"][0] for c in chunks]).tolist() == whole.cues.tolist()


def test_take_front_equals_joining_then_slicing():
    rng = np.random.default_rng(5)
    pieces = [rng.normal(size=(3, k)) for k in (4, 1, 6, 3)]
    joined = np.concatenate(pieces, axis=1)
    parts, start = list(pieces), 0
    for n in (2, 2, 5, 1, 4):
        np.testing.assert_array_equal(csv_io._take_front(parts, n), joined[:, start:start + n])
        start += n
    assert parts == [] and start == joined.shape[1]
    cues = [np.array(["a", "b"]), np.array(["c"])]
    assert csv_io._take_front(cues, 3).tolist() == ["a", "b", "c"] and cues == []


def test_streamed_file_larger_than_block(tmp_path, monkeypatch):
    # ~1.2 MB streamed through 4 KiB blocks: hundreds of block boundaries.
    monkeypatch.setattr(csv_io, "BLOCK_BYTES", 4096)
    path, expected = make_file(tmp_path, n=25000)
    info, chunks = iter_csv(path, chunk_samples=4000)
    total, stop = 0, 0
    for c in chunks:
        assert c.first_sample == stop and c.info is info
        np.testing.assert_array_equal(c.data, expected[:, c.first_sample:c.stop])
        stop = c.stop
        total += c.n_samples
    assert total == 25000


def test_error_in_a_later_block_is_raised_while_iterating(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_io, "BLOCK_BYTES", 256)
    text = "".join(f"{i},{i}\n" for i in range(500)).replace("\n400,400\n", "\n400,x\n")
    info, chunks = iter_csv(write(tmp_path, text), chunk_samples=50, fs=10)
    with pytest.raises(InputFileError) as exc:
        for _ in chunks:
            pass
    assert exc.value.line == 401 and exc.value.column == "ch2"


def test_text_column_path_equals_fast_path(tmp_path):
    path, expected = make_file(tmp_path)
    lines = path.read_text().splitlines()
    with_text = lines[:2] + [ln + ",x" for ln in lines[2:]]
    lines[1] += ",note"
    path2 = write(tmp_path, "\n".join([lines[0], lines[1]] + with_text[2:]) + "\n", "text.csv")
    rec = read_csv(path2)
    assert rec.info.extra["unused_columns"] == ("note",)
    np.testing.assert_array_equal(rec.data, expected)


def test_chunk_samples_must_be_positive(tmp_path):
    with pytest.raises(ParameterError):
        iter_csv(write(tmp_path, rows(DATA)), chunk_samples=0, fs=10)


number_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda v: f"{v:.6g}"),
    st.floats(min_value=-1e3, max_value=1e3).map(lambda v: f"{v:.3f}"),
    st.floats(min_value=-1, max_value=1).map(lambda v: f"{v:.5E}"),
    st.integers(min_value=-10 ** 12, max_value=10 ** 12).map(str),
    st.integers(min_value=-10 ** 12, max_value=10 ** 12).map(lambda v: f"+{abs(v)}"),
    st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False).map(str),
    st.sampled_from(["0", "-0", ".5", "5.", "-.25", "1e5", "1E-05", "007", "0.000", "+3.5e+2", "9007199254740993"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(number_text, min_size=3, max_size=3), min_size=1, max_size=40),
       st.sampled_from([",", ";", "\t", " ", ", "]), st.booleans())
def test_parsed_values_equal_python_float(tmp_path_factory, table, sep, crlf):
    nl = "\r\n" if crlf else "\n"
    text = nl.join(sep.join(r) for r in table) + nl
    path = tmp_path_factory.mktemp("h") / "h.csv"
    path.write_bytes(text.encode())
    rec = read_csv(path, fs=100)
    expected = np.array([[float(v) for v in r] for r in table]).T
    assert np.array_equal(rec.data, expected)
    assert np.array_equal(np.signbit(rec.data), np.signbit(expected))


@pytest.mark.parametrize("field", ["1.2.3", "1-2", "--1", "e5", ".", "-", "1e", "1e5e5", "1 2", "+-1", "1e+-5",
                                   "1.5e", ".e5", "1e5.5", "0x10", "1_000", "1,5"])
def test_malformed_numbers_are_errors(tmp_path, field):
    text = f"a;b\n1;2\n3;{field}\n"
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text), fs=10)
    assert exc.value.line == 3 and exc.value.column == "b"
    one_line(exc)


# Numbers whose mantissa (sign and exponent left out, point included) has at
# most 8 bytes: the parser's one-word path (csv_io._short_mantissas).
short_number_text = st.one_of(
    st.integers(min_value=-99_999_999, max_value=99_999_999).map(str),
    st.floats(min_value=-9999, max_value=9999).map(lambda v: f"{v:.2f}"),
    st.floats(min_value=-1, max_value=1).map(lambda v: f"{v:.6f}"),
    st.floats(min_value=-9_999_999, max_value=9_999_999).map(lambda v: f"{v:.0f}."),
    st.floats(min_value=0, max_value=0.9).map(lambda v: f"{v:.7f}"[1:]),
    st.floats(min_value=-1e3, max_value=1e3).map(lambda v: f"{v:.3e}"),
    st.sampled_from(["0", "-0", "+0", "-0.00", ".5", "5.", "+7", "00000000", "99999999", "-9999999.", "1e22",
                     "1e-22", "12345678e-30", "1.5E+3", "-.0"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(short_number_text, min_size=2, max_size=2), min_size=1, max_size=40),
       st.sampled_from([b",", b";", b"\t"]))
def test_one_word_mantissas_equal_python_float(table, sep):
    buf = b"".join(sep.join(v.encode() for v in r) + b"\n" for r in table)
    parsed = csv_io._parse_fast(buf, sep[0], 2)
    expected = np.array([[float(v) for v in r] for r in table])
    assert parsed is not None
    assert np.array_equal(parsed, expected)
    assert np.array_equal(np.signbit(parsed), np.signbit(expected))


@pytest.mark.parametrize("field", ["1.2.3", "..", ".", "-.", "+.", "-", "1.5.", "1e.5", ".e5", "1.2e3.4", "12.3-4",
                                   "1+2", "1.-2", "", "12345678.9.1"])
def test_fast_parser_declines_malformed_fields(field):
    # Declined blocks go to numpy.loadtxt and the error explanation.
    assert csv_io._parse_fast(f"1.5;{field}\n2;3\n".encode(), ord(";"), 2) is None


@pytest.mark.parametrize("where", [0, 70_000, (1 << 20) - 1, 1 << 20, 1_500_000])
@pytest.mark.parametrize("byte", [b"\x00", b"\n", b"\r"])
def test_start_of_file_checked_in_pieces_as_one_mebibyte(tmp_path, where, byte):
    content = bytearray(b"1" * 1_600_000)
    content[where] = byte[0]
    path = write(tmp_path, bytes(content), "f.csv")
    with open(path, "rb") as fh:
        head = fh.read(csv_io._HEAD_PIECE)
        kinds = csv_io._byte_kinds_at_start(fh, head)
        assert fh.tell() == len(head)
    first_mib = bytes(content[:1 << 20])
    assert kinds == (b"\x00" in first_mib, b"\n" in first_mib, b"\r" in first_mib)


def test_nul_byte_after_the_first_read_is_still_binary(tmp_path):
    text = "".join(f"{i},{i}\n" for i in range(20000)).encode()
    with pytest.raises(InputFileError) as exc:
        read_csv(write(tmp_path, text[:150_000] + b"\x00" + text[150_000:]), fs=10)
    assert "binary" in one_line(exc)


# ---------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------
def recording(n=500, cues=True, fs=512.0):
    rng = np.random.default_rng(3)
    data = np.round(rng.normal(0, 200, size=(3, n)), 2)
    data[1] = rng.integers(-2048, 2048, size=n)
    info = StreamInfo(fs=fs, ch_names=("biceps", "triceps (long head)", "ch 3"), units="uV", source="sim")
    cue = np.where(np.arange(n) % 100 < 50, "rest", "contract") if cues else None
    return Recording(data=data, info=info, cues=cue)


@pytest.mark.parametrize("cues", [True, False])
def test_write_recording_round_trip(tmp_path, cues):
    rec = recording(cues=cues)
    path = tmp_path / "out.csv"
    write_recording(path, rec)
    text = path.read_text()
    assert text.startswith("# biofeedback recording\n# sampling_rate_hz: 512.0\n# units: uV\n# source: sim\n")
    assert text.splitlines()[4] == "time_s,biceps,triceps (long head),ch 3" + (",cue" if cues else "")
    back = read_csv(path)
    np.testing.assert_array_equal(back.data, rec.data)
    assert back.info.fs == rec.info.fs and back.info.ch_names == rec.info.ch_names and back.info.units == "uV"
    assert back.info.extra["original_source"] == "sim"
    if cues:
        assert back.cues.tolist() == rec.cues.tolist()
    else:
        assert back.cues is None


def test_write_recording_exact_floats_and_odd_rate(tmp_path):
    rng = np.random.default_rng(4)
    info = StreamInfo(fs=2148.1481, ch_names=("a", "b"), units="V")
    rec = Recording(data=rng.normal(0, 1e-4, size=(2, 3000)), info=info)
    path = tmp_path / "x.csv"
    write_recording(path, rec, float_format="%.17g")
    back = read_csv(path)
    np.testing.assert_array_equal(back.data, rec.data)
    assert back.info.fs == 2148.1481
    back = read_csv(path, fs=2148.1481)
    assert back.info.extra["time_irregular_steps"] == 0


def test_write_recording_errors(tmp_path):
    rec = recording()
    with pytest.raises(ParameterError) as exc:
        write_recording(tmp_path / "missing" / "out.csv", rec)
    assert "missing" in one_line(exc)
    bad = Recording(data=np.array([[1.0, np.nan]]), info=StreamInfo(fs=10, ch_names=("a",)))
    with pytest.raises(ParameterError):
        write_recording(tmp_path / "o.csv", bad)
    for name in ("a,b", "cue", "time_s", " a", 'q"', "sample"):
        r = Recording(data=np.zeros((1, 2)), info=StreamInfo(fs=10, ch_names=(name,)))
        with pytest.raises(ParameterError):
            write_recording(tmp_path / "o.csv", r)
    with pytest.raises(ParameterError):
        write_recording(tmp_path / "o.csv", rec, float_format="%s%s")
    r = Recording(data=np.zeros((1, 2)), info=StreamInfo(fs=10, ch_names=("a",)), cues=np.array(["x,y", "z"]))
    with pytest.raises(ParameterError):
        write_recording(tmp_path / "o.csv", r)


def events():
    return [
        Event("contraction", "biceps", 1.25, 2.5, 312.5, {"n_samples": 640, "cue": "flex", "ok": True}),
        Event("gap", "ch, 2", 0.1 + 0.2, 0.35, math.nan, {"n_samples": 12}),
        Event("spasm", "biceps", 3.0, 3.0000001, 1e-7, {"score": 0.125}),
    ]


def same_events(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.kind, x.channel, x.onset_s, x.offset_s) == (y.kind, y.channel, y.onset_s, y.offset_s)
        assert (math.isnan(x.peak) and math.isnan(y.peak)) or x.peak == y.peak
        assert dict(x.extra) == dict(y.extra)


def test_events_round_trip(tmp_path):
    path = tmp_path / "ev.csv"
    write_events(path, events())
    header = path.read_text().splitlines()[0]
    assert header == "file,channel,kind,onset_s,offset_s,duration_s,peak,cue,n_samples,ok,score"
    same_events(read_events(path), events())


def test_events_file_column(tmp_path):
    path = tmp_path / "ev.csv"
    write_events(path, events(), file="rec1.csv")
    back = read_events(path)
    assert all(ev.extra["file"] == "rec1.csv" for ev in back)
    write_events(tmp_path / "ev2.csv", back)  # file taken from extra
    assert read_events(tmp_path / "ev2.csv")[0].extra["file"] == "rec1.csv"


def test_events_errors(tmp_path):
    with pytest.raises(ParameterError):
        write_events(tmp_path / "nope" / "ev.csv", events())
    with pytest.raises(ParameterError):
        write_events(tmp_path / "ev.csv", ["not an event"])
    with pytest.raises(InputFileError):
        read_events(tmp_path / "absent.csv")
    write(tmp_path, "channel,kind,onset_s,offset_s\na,b,1,x\n", "bad.csv")
    with pytest.raises(InputFileError) as exc:
        read_events(tmp_path / "bad.csv")
    assert exc.value.line == 2 and exc.value.column == "offset_s"
    write(tmp_path, "channel,kind\n", "cols.csv")
    with pytest.raises(InputFileError):
        read_events(tmp_path / "cols.csv")
    write_events(tmp_path / "empty.csv", [])
    assert read_events(tmp_path / "empty.csv") == []


# ---------------------------------------------------------------------------
# real recordings (skipped when ../shared/data/real is absent)
# ---------------------------------------------------------------------------
def test_real_myo_readings(shared_data):
    path = shared_data / "myo_readings" / "12345-1" / "1.txt"
    rec = read_csv(path, fs=200, channels="!8")
    # 11935 line ends, but the last row has no line end: 11936 samples.
    assert rec.data.shape == (8, 11936) and rec.info.fs == 200
    assert rec.data.min() >= -128 and rec.data.max() <= 127
    rec2 = read_csv(path, fs=200, cue_column=8)
    np.testing.assert_array_equal(rec2.data, rec.data)
    assert set(rec2.cues.tolist()) == {"0", "1"} and rec2.cues[0] == "0" and rec2.cues[1000] == "1"


def test_real_biosppy_fs_from_comment(shared_data):
    rec = read_csv(shared_data / "biosppy" / "emg.txt")
    assert rec.info.fs == 1000.0 and rec.data.shape == (1, 100000)
    assert rec.data[0, 0] == 2055.0


def test_real_psyc9080_tab_crlf_empty_fields(shared_data):
    path = shared_data / "psyc9080_biometrics" / "Carl_1.txt"
    with pytest.raises(InputFileError) as exc:  # the goniometer column empties after 1.24 s
        read_csv(path, fs=1000)
    assert exc.value.line == 1242 and exc.value.column == "ch2"
    rec = read_csv(path, fs=1000, channels=[0])
    # The last line is "\t\t": an all-empty final row, dropped (nothing follows it).
    assert rec.data.shape == (1, 24821) and rec.info.extra["trailing_empty_rows"] == 1
    with pytest.raises(InputFileError) as exc:
        read_csv(path)
    assert "sampling rate is missing" in str(exc.value)


def test_real_uci_time_in_ms_irregular(shared_data):
    path = next((shared_data / "uci_emg_gestures" / "01").glob("*.txt"))
    with pytest.raises(InputFileError) as exc:
        read_csv(path)
    assert "irregular" in one_line(exc) and "(ms)" in str(exc.value)
    rec = read_csv(path, fs=1000, cue_column="class")
    assert rec.data.shape == (8, 63196) and rec.info.ch_names[0] == "channel1"
    assert rec.info.extra["time_unit"] == "ms" and rec.info.extra["time_irregular_steps"] > 0
    assert set(rec.cues.tolist()) >= {"0", "1", "2"}
    with pytest.raises(InputFileError):
        read_csv(path, fs=200)  # the time column says 1000 Hz


def test_real_openbci_ganglion(shared_data):
    path = shared_data / "openbci_ganglion_myoware" / "OpenBCI-RAW-S02_S1REST.txt"
    rec = read_csv(path, channels="1,2")
    assert rec.info.fs == 200.0 and rec.data.shape == (2, 6414)
    assert rec.data[0, 0] == -46.5 and rec.data[1, 0] == 77.33


def test_long_trailing_empty_region(tmp_path):
    # More than the tail window (64 KiB) of empty rows and comments after the data.
    text = "1\t2\n3\t4\n" + "\t\n# x\n\n" * 30000 + "\t" * 70000 + "\n"
    rec = read_csv(write(tmp_path, text), fs=10)
    assert rec.n_samples == 2 and rec.info.extra["trailing_empty_rows"] == 30001
