"""The per-file plot of report.html: events drawn as one collection per channel and kind."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from biofeedback.analysis.batch_report import FLAG_COLOUR, KIND_COLOURS, _draw_figure, plot_file  # noqa: E402
from biofeedback.core.types import Event, StreamInfo  # noqa: E402


def _events():
    nan = float("nan")
    ev = [
        Event("contraction", "ch1", 1.0, 2.5, 3.0, {}),
        Event("contraction", "ch1", 4.0, 4.01, 3.0, {}),  # shorter than the 20 ms minimum width
        Event("motion", "ch1", 3.0, 3.5, nan, {"quality": "motion"}),
        Event("mains", "ch1", 6.0, 6.0, nan, {"quality": "mains"}),  # zero length: drawn 50 ms wide
        Event("spasm", "ch2", 2.0, 2.4, 5.0, {}),
        Event("contraction", "ch2", 7.0, 9.0, 2.0, {}),
        Event("contraction", "ch2", 10.0, 11.0, 2.0, {}),
        Event("ecg", "ch3", 0.0, 12.0, nan, {"quality": "ecg"}),
    ]
    return sorted(ev, key=lambda e: (e.onset_s, e.channel))


def _figure():
    info = StreamInfo.default_names(3, 1000.0, units="uV")
    t = np.linspace(0, 12, 200)
    env = np.abs(np.sin(t))[None, :] * np.array([[1.0], [2.0], [3.0]])
    thresholds = (np.array([0.5, 1.0, np.nan]), np.array([0.3, 0.6, np.nan]))
    return _draw_figure(t, env, info, _events(), thresholds, {}, duration=12.0)


def _rects(coll):
    """(x0, x1, y0, y1) of each rectangle of a collection."""
    out = []
    for path in coll.get_paths():
        v = path.vertices[:4]
        out.append((v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max()))
    return sorted(out)


def test_one_collection_per_channel_and_kind_with_every_span():
    fig = _figure()
    axes = fig.axes
    expected = {}
    for e in _events():
        kind = "quality flag" if e.kind in ("motion", "mains", "ecg") else e.kind
        expected.setdefault((e.channel, kind), []).append(e)
    for ch, ax in enumerate(axes):
        name = f"ch{ch + 1}"
        colls = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert not ax.patches  # no per-event axvspan any more
        mine = {k: v for k, v in expected.items() if k[0] == name}
        assert len(colls) == len(mine)
        for coll in colls:
            face = tuple(coll.get_facecolor()[0][:3])
            kind = next(k for (c, k) in mine if np.allclose(face, to_rgb(KIND_COLOURS.get(k, FLAG_COLOUR))))
            evs = mine[(name, kind)]
            flag = kind == "quality flag"
            width = 0.05 if flag else 0.02
            want = sorted((e.onset_s, max(e.offset_s, e.onset_s + width), 0.9 if flag else 0.0, 1.0) for e in evs)
            assert np.allclose(_rects(coll), want)
            # x in data, y in axes coordinates (as axvspan): the bands fill the height.
            assert coll.get_transform() == ax.get_xaxis_transform()
            assert coll.get_alpha() == (None if flag else 0.35)
        # The flag bar is drawn after (over) the shaded activations.
        flags = [i for i, c in enumerate(colls) if np.allclose(c.get_facecolor()[0][:3], to_rgb(FLAG_COLOUR))]
        assert all(i == len(colls) - 1 for i in flags)
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["contraction", "quality flag", "spasm"]  # first appearance, channel by channel
    assert axes[-1].get_xlim() == (0.0, 12.0)


def test_plot_file_png():
    info = StreamInfo.default_names(2, 500.0)
    t = np.linspace(0, 5, 50)
    env = np.ones((2, 50))
    png = plot_file("f", t, env, info, [Event("contraction", "ch2", 1.0, 2.0, 1.0, {})],
                    (np.ones(2), np.ones(2) * 0.5), {"ch1": "flat"}, duration=5.0)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # No events at all: no collections, still an image.
    assert plot_file("f", t, env, info, [], (np.ones(2), np.ones(2)), {})[:4] == b"\x89PNG"
