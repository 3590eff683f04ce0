"""The per-file plot of report.html: an SVG with one shaded path per channel and kind."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from biofeedback.analysis import batch_report
from biofeedback.analysis.batch_report import (FLAG_BAR, FLAG_COLOUR, KIND_COLOURS, MAX_PLOT_CHANNELS, MIN_FLAG_S,
                                               MIN_SPAN_S, SPAN_OPACITY, plot_file)
from biofeedback.core.types import Event, StreamInfo

SVG = "{http://www.w3.org/2000/svg}"
FLAG_KINDS = ("motion", "mains", "ecg")


def _events():
    nan = float("nan")
    ev = [
        Event("contraction", "ch1", 1.0, 2.5, 3.0, {}),
        Event("contraction", "ch1", 4.0, 4.01, 3.0, {}),  # shorter than the minimum width
        Event("motion", "ch1", 3.0, 3.5, nan, {"quality": "motion"}),
        Event("mains", "ch1", 6.0, 6.0, nan, {"quality": "mains"}),  # zero length: drawn MIN_FLAG_S wide
        Event("spasm", "ch2", 2.0, 2.4, 5.0, {}),
        Event("contraction", "ch2", 7.0, 9.0, 2.0, {}),
        Event("contraction", "ch2", 10.0, 11.0, 2.0, {}),
        Event("ecg", "ch3", 0.0, 12.0, nan, {"quality": "ecg"}),
    ]
    return sorted(ev, key=lambda e: (e.onset_s, e.channel))


def _plot(events=None, thresholds=None, messages=None, n_ch=3, t=None, env=None, duration=12.0, names=None):
    info = StreamInfo(1000.0, tuple(names), "uV") if names else StreamInfo.default_names(n_ch, 1000.0, units="uV")
    if t is None:
        t = np.linspace(0, 12, 200)
        env = np.abs(np.sin(t))[None, :] * np.arange(1.0, n_ch + 1)[:, None]
    if thresholds is None:
        thresholds = (np.array([0.5, 1.0, np.nan] + [1.0] * (n_ch - 3))[:n_ch],
                      np.array([0.3, 0.6, np.nan] + [0.5] * (n_ch - 3))[:n_ch])
    text = plot_file("rec.csv", t, env, info, _events() if events is None else events, thresholds,
                     messages or {}, duration=duration)
    return text, ET.fromstring(text)


def _rects(d):
    """(x, y, w, h) of each ``M x y h w v h h -w z`` rectangle of a span path."""
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    assert len(nums) % 5 == 0 and d.count("M") == len(nums) // 5
    return [(nums[i], nums[i + 1], nums[i + 2], nums[i + 3]) for i in range(0, len(nums), 5)]


def _x(seconds, duration=12.0):
    plot_w = batch_report._WIDTH - batch_report._LEFT - batch_report._RIGHT
    return batch_report._LEFT + np.clip(seconds / duration, 0, 1) * plot_w


def test_one_path_per_channel_and_kind_with_every_span():
    _, root = _plot()
    groups = root.findall(f"{SVG}g[@class='channel']")
    assert [g.get("data-channel") for g in groups] == ["ch1", "ch2", "ch3"]
    expected = {}
    for e in _events():
        kind = "quality flag" if e.kind in FLAG_KINDS else e.kind
        expected.setdefault((e.channel, kind), []).append(e)
    for ch, g in enumerate(groups):
        name = f"ch{ch + 1}"
        y0 = batch_report._HEAD + ch * (batch_report._ROW + batch_report._GAP)
        paths = g.findall(f"{SVG}path[@class='span']")
        mine = {k: v for k, v in expected.items() if k[0] == name}
        assert sorted(p.get("data-kind") for p in paths) == sorted(k for _, k in mine)
        for path in paths:
            kind = path.get("data-kind")
            flag = kind == "quality flag"
            assert path.get("fill") == (FLAG_COLOUR if flag else KIND_COLOURS[kind])
            assert path.get("fill-opacity") == (None if flag else str(SPAN_OPACITY))
            width = MIN_FLAG_S if flag else MIN_SPAN_S
            evs = mine[(name, kind)]
            want = [(_x(e.onset_s), y0, _x(max(e.offset_s, e.onset_s + width)) - _x(e.onset_s),
                     batch_report._ROW * (FLAG_BAR if flag else 1.0)) for e in evs]
            assert np.allclose(_rects(path.get("d")), want, atol=0.01)
        # The flag bar comes after (is drawn over) the shaded activations.
        kinds = [p.get("data-kind") for p in paths]
        assert "quality flag" not in kinds[:-1]
    legend = [el.find(f"{SVG}text").text for el in root.findall(f"{SVG}g[@class='legend']")]
    assert legend[::-1] == ["contraction", "quality flag", "spasm"]  # first appearance, channel by channel


def test_thresholds_envelope_and_time_axis():
    _, root = _plot()
    groups = root.findall(f"{SVG}g[@class='channel']")
    # ch3's thresholds are NaN: no lines drawn for it.
    assert [len(g.findall(f"{SVG}line")) for g in groups] == [2, 2, 0]
    for g in groups:
        points = np.array([p.split(",") for p in g.find(f"{SVG}polyline").get("points").split()], dtype=float)
        assert points.shape == (200, 2)
        assert np.all(np.diff(points[:, 0]) >= 0)
        assert points[0, 0] == pytest.approx(_x(0.0)) and points[-1, 0] == pytest.approx(_x(12.0))
    ticks = [el.text for el in root.findall(f"{SVG}text") if el.get("text-anchor") == "middle"]
    assert ticks[0] == "0" and ticks[-2] == "12" and ticks[-1] == "time (s)"


def test_names_are_escaped_and_unanalysed_channels_labelled():
    names = ["a<b&\"c'", "ch2", "a very long electrode name"]
    text, root = _plot(events=[Event("spasm", names[0], 1.0, 2.0, 1.0, {})], names=names,
                       messages={"ch2": "flat line"})
    assert root.get("aria-label") == "envelope, thresholds and events of rec.csv"
    assert root.find(f"{SVG}g[@class='channel']").get("data-channel") == names[0]
    labels = [el.text for el in root.iter(f"{SVG}text")]
    assert "not analysed" in labels and "a very long e…" in labels


def test_no_events_no_envelope_and_many_channels():
    text, root = _plot(events=[], t=np.zeros(0), env=np.zeros((3, 0)), duration=None)
    assert not root.findall(f".//{SVG}path[@class='span']") and not root.findall(f".//{SVG}polyline")
    text, root = _plot(events=[], n_ch=MAX_PLOT_CHANNELS + 4)
    assert len(root.findall(f"{SVG}g[@class='channel']")) == MAX_PLOT_CHANNELS
    assert f"first {MAX_PLOT_CHANNELS} of {MAX_PLOT_CHANNELS + 4} channels" in text
    # A non-finite envelope value is drawn at zero rather than breaking the line.
    env = np.ones((3, 200))
    env[1, 5] = np.nan
    _, root = _plot(events=[], t=np.linspace(0, 12, 200), env=env)
    points = root.findall(f"{SVG}g")[1].find(f"{SVG}polyline").get("points")
    assert "nan" not in points


@pytest.mark.parametrize("span, step", [(0.8, 0.1), (12.0, 2.0), (60.0, 10.0), (3600.0, 500.0)])
def test_nice_time_steps(span, step):
    assert batch_report._nice_step(span, 8) == pytest.approx(step)
