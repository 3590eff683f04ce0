"""Session metrics against the simulator's truth, and the report's figures and HTML checked for content.

The session here is built directly (a Glazer-like sequence of phases and a
simulator scenario whose contractions sit on the contract cues and whose
spasms sit in the rests), so these tests do not depend on the protocol
runner; ``test_session_report_cli.py`` runs the real protocol end to end.
"""

from __future__ import annotations

import base64
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import signal

from biofeedback.core.types import Recording, StreamInfo
from biofeedback.dsp.filters import BandPass, FilterCascade, MainsNotch
from biofeedback.dsp.settings import PipelineSettings
from biofeedback.session import metrics as M
from biofeedback.session.phases import Phase
from biofeedback.sources.simulator import Scenario, ScriptedEvent, contraction_cycles, emg_shaping_sos, simulate

pytest.importorskip("matplotlib")

from biofeedback.session import report as R  # noqa: E402

FS = 1000.0
REST, NOISE = 3.0, 1.0
FLICK_AMPS = (60.0, 70.0, 80.0, 65.0, 75.0)
TONIC_AMPS = (50.0, 45.0, 55.0, 40.0, 50.0)
ENDURANCE_AMP = 35.0
#: (rest phase, seconds into it, duration) of each injected spasm.
SPASMS = (("rest 2", 4.0, 0.5), ("rest 4", 3.0, 1.2), ("rest 6", 5.0, 0.8), ("rest 8", 2.5, 1.5),
          ("rest 10", 4.0, 0.4), ("post-baseline", 15.0, 0.6), ("post-baseline", 35.0, 1.0))


def glazer_session(snr_db: float = 10.0):
    """Phases of a Glazer assessment and a scenario that follows them (spasms at ``snr_db``)."""
    phases = []
    t = 0.0

    def add(name, role, cue, d):
        nonlocal t
        phases.append(Phase(len(phases), name, role, cue, t, t + d, extra={"repetition": 1}))
        t += d

    add("pre-baseline", "baseline", "relax", 60)
    for k in range(5):
        add(f"flick {k + 1}/5", "flick", "contract", 2)
        add(f"rest {k + 1}", "rest", "relax", 10)
    for k in range(5):
        add(f"tonic {k + 1}/5", "tonic", "contract", 10)
        add(f"rest {k + 6}", "rest", "relax", 10)
    add("endurance", "endurance", "contract", 60)
    add("post-baseline", "baseline", "relax", 60)
    spasm_amp = math.hypot(REST, NOISE) * 10 ** (snr_db / 20)
    events = []
    flicks = iter(FLICK_AMPS)
    tonics = iter(TONIC_AMPS)
    by_name = {p.name: p for p in phases}
    for p in phases:
        if p.role == "flick":
            events.append(ScriptedEvent("contraction", p.start_s, 1.5, amplitude=next(flicks), ramp_s=0.15, cued=True))
        elif p.role == "tonic":
            events.append(ScriptedEvent("contraction", p.start_s, p.duration_s, amplitude=next(tonics), cued=True))
        elif p.role == "endurance":
            events.append(ScriptedEvent("contraction", p.start_s, p.duration_s, amplitude=ENDURANCE_AMP, cued=True))
    for name, offset, d in SPASMS:
        events.append(ScriptedEvent("spasm", by_name[name].start_s + offset, d, amplitude=spasm_amp))
    events.sort(key=lambda e: e.onset_s)
    return phases, Scenario(duration_s=t, events=tuple(events), rest_rms_uv=REST, noise_rms_uv=NOISE)


def band_truth(settings: PipelineSettings, fs: float, mains_hz, burst_uv: float = 0.0) -> float:
    """RMS the simulator's signal has inside the processing band (truth for the envelope's level).

    The simulator scripts the RMS of the whole signal; the band-pass (and
    notch) remove part of it by design, so the expected envelope level is the
    scripted power weighted by the filters' power response.
    """
    low, high, order = settings.band()
    filters = [BandPass(low, high, order)]
    if mains_hz:
        filters.append(MainsNotch(mains_hz, settings.notch_quality))
    _, h = signal.sosfreqz(FilterCascade(filters).design(fs), worN=1 << 15, fs=fs)
    _, he = signal.sosfreqz(emg_shaping_sos(fs), worN=1 << 15, fs=fs)
    g_emg = np.mean(np.abs(he * h) ** 2) / np.mean(np.abs(he) ** 2)
    g_white = np.mean(np.abs(h) ** 2)
    return math.sqrt((REST ** 2 + burst_uv ** 2) * g_emg + NOISE ** 2 * g_white)


@pytest.fixture(scope="module")
def glazer():
    phases, scenario = glazer_session(10.0)
    rec = simulate(scenario, FS, seed=3)
    settings = PipelineSettings(preset="pelvic", mains="off")
    analysis = M.analyze_session(rec, phases, None, settings, mains_hz=None)
    return SimpleNamespace(phases=phases, scenario=scenario, rec=rec, settings=settings, analysis=analysis)


def by_name(analysis, name):
    return next(m for m in analysis.metrics if m.phase.name == name)


# ----------------------------------------------------------------------------
# metrics against the truth


def test_resting_level_within_10_percent_of_truth(glazer):
    truth = band_truth(glazer.settings, FS, None)
    for name in ("pre-baseline", "post-baseline"):
        m = by_name(glazer.analysis, name)
        assert m.values["tone_uv"] == pytest.approx(truth, rel=0.10)
    pre = by_name(glazer.analysis, "pre-baseline").values
    assert pre["rest_mean_uv"] == pytest.approx(truth, rel=0.10)
    assert 3 < pre["rest_cv_pct"] < 30  # a 100 ms moving RMS of noise wanders by 5-25 %
    # The post-baseline holds two spasms: its plain mean is above its tone, its variability much higher.
    post = by_name(glazer.analysis, "post-baseline").values
    assert post["rest_mean_uv"] > post["tone_uv"]
    assert post["rest_cv_pct"] > pre["rest_cv_pct"]


def test_phase_boundaries_are_the_phases(glazer):
    got = [(m.phase.name, m.phase.start_s, m.phase.end_s) for m in glazer.analysis.metrics]
    assert got == [(p.name, p.start_s, p.end_s) for p in glazer.phases]


def test_flick_peaks_and_timing(glazer):
    amps = []
    for k, amp in enumerate(FLICK_AMPS):
        m = by_name(glazer.analysis, f"flick {k + 1}/5")
        truth = band_truth(glazer.settings, FS, None, amp)
        v = m.values
        assert truth * 0.95 < v["peak_uv"] < truth * 1.45  # the peak rides on the envelope's fluctuation
        # The amplitude is the highest 0.25 s average: the plateau's level plus part of its fluctuation.
        assert truth * 0.95 < m.series["amplitude_uv"] < truth * 1.25
        # 0.15 s raised-cosine ramp: 10-90 % takes ~0.6 of it, plus the 100 ms window's smoothing.
        assert 0.05 < v["rise_time_s"] < 0.4
        assert 0.0 <= v["latency_s"] < 0.2
        # Released 0.5 s before the cue ends: back at rest within the ramp, the window and the 0.5 s hold.
        assert 0.05 < v["recovery_time_s"] < 0.8
        amps.append(m.series["amplitude_uv"])
    assert list(np.argsort(amps)) == list(np.argsort(FLICK_AMPS))


def test_tonic_means_and_variability(glazer):
    for k, amp in enumerate(TONIC_AMPS):
        v = by_name(glazer.analysis, f"tonic {k + 1}/5").values
        assert v["mean_uv"] == pytest.approx(band_truth(glazer.settings, FS, None, amp), rel=0.10)
        assert 5 < v["cv_pct"] < 30
        assert v["recovery_time_s"] < 1.0


def test_endurance_without_fatigue_is_flat(glazer):
    v = by_name(glazer.analysis, "endurance").values
    assert v["mean_uv"] == pytest.approx(band_truth(glazer.settings, FS, None, ENDURANCE_AMP), rel=0.10)
    assert abs(v["median_freq_slope_hz_per_s"]) < 0.3
    assert abs(v["amplitude_decline_pct"]) < 6


@pytest.mark.parametrize("snr_db", [6.0, 10.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_spasm_counts_exact(snr_db, seed):
    phases, scenario = glazer_session(snr_db)
    rec = simulate(scenario, FS, seed=seed)
    analysis = M.analyze_session(rec, phases, None, PipelineSettings(mains="off"), mains_hz=None)
    truth = [e for e in scenario.events if e.kind == "spasm"]
    spasms = [e for e in analysis.events if e.kind in M.SPASM_KINDS]
    assert len(spasms) == len(truth)
    for e, t in zip(spasms, truth):
        assert abs(e.onset_s - t.onset_s) < 0.15
    # Per phase: exactly the spasms injected there, none in contraction phases.
    expected = {}
    for name, _, _ in SPASMS:
        expected[name] = expected.get(name, 0) + 1
    for m in analysis.metrics:
        if m.phase.cue == "relax":
            assert m.values["spasm_count"] == expected.get(m.phase.name, 0), m.phase.name
            for item in m.items:
                scripted = next(t for t in truth if abs(t.onset_s - item["onset_s"]) < 0.15)
                assert 0 < item["time_to_relax_s"] < scripted.duration_s + 0.8
    assert analysis.summary["spasm_count"] == len(truth)
    relax_min = sum(p.duration_s for p in phases if p.cue == "relax") / 60
    assert analysis.summary["spasms_per_relax_min"] == pytest.approx(len(truth) / relax_min)


def fatigue_recording(fatigue: bool, seed: int = 4):
    """Rest, a 40 s hold whose spectrum compresses (1.25x -> 0.75x) and amplitude falls 20 %, rest."""
    fs = FS
    phases = [Phase(0, "pre-baseline", "baseline", "relax", 0.0, 15.0),
              Phase(1, "endurance", "endurance", "contract", 15.0, 55.0),
              Phase(2, "post-baseline", "baseline", "relax", 55.0, 65.0)]
    rest = simulate(Scenario(duration_s=65.0, rest_rms_uv=REST, noise_rms_uv=NOISE), fs, seed=seed).data[0]
    hi_fs = 2 * fs
    y = simulate(Scenario(duration_s=60.0, rest_rms_uv=1.0, noise_rms_uv=0.0), hi_fs, seed=seed + 1).data[0]
    t = np.arange(int(40 * fs)) / fs
    if fatigue:
        phi = 1.25 * t - 0.25 * t ** 2 / 40.0  # rate 1.25 -> 0.75: every frequency scales by the rate
        amp = 40.0 * (1.0 - 0.2 * t / 40.0)
    else:
        phi, amp = t.copy(), np.full(t.size, 40.0)
    burst = np.interp(phi, np.arange(y.size) / hi_fs, y) * amp
    ramp = int(0.2 * fs)
    w = np.ones(t.size)
    w[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    w[-ramp:] = w[:ramp][::-1]
    x = rest.copy()
    x[int(15 * fs):int(55 * fs)] += burst * w
    cues = np.where((np.arange(x.size) >= 15 * fs) & (np.arange(x.size) < 55 * fs), "contract", "relax")
    return phases, Recording(x[None, :], StreamInfo.default_names(1, fs), cues)


def test_median_frequency_slope_follows_simulated_fatigue():
    phases, rec = fatigue_recording(True)
    tired = by_name(M.analyze_session(rec, phases, None, PipelineSettings(mains="off"), mains_hz=None), "endurance")
    phases, rec = fatigue_recording(False)
    fresh = by_name(M.analyze_session(rec, phases, None, PipelineSettings(mains="off"), mains_hz=None), "endurance")
    v = tired.values
    # Median frequency ~ MDF0 x rate: from ~1.25 MDF0 to ~0.75 MDF0 over 40 s.
    mdf0 = fresh.values["median_freq_start_hz"]
    expected = -0.5 * mdf0 / 40.0
    assert v["median_freq_slope_hz_per_s"] < 0
    assert v["median_freq_slope_hz_per_s"] == pytest.approx(expected, rel=0.4)
    assert v["median_freq_start_hz"] > v["median_freq_end_hz"] + 10
    assert v["recovery_time_s"] < 1.0  # measured from the faded level, not from the first peak
    assert 8 < v["amplitude_decline_pct"] < 25  # 20 % fall: first vs last 10 s differ by ~15 %
    assert len(tired.series["mdf_hz"]) == 40
    assert abs(fresh.values["median_freq_slope_hz_per_s"]) < 0.3
    assert abs(fresh.values["amplitude_decline_pct"]) < 6


def test_rise_time_grows_with_the_ramp():
    rises = {}
    for ramp in (0.1, 0.6):
        scenario = contraction_cycles(4, on_s=4.0, off_s=6.0, lead_rest_s=20.0, amplitude=50.0, ramp_s=ramp,
                                      rest_rms_uv=REST, noise_rms_uv=NOISE)
        rec = simulate(scenario, FS, seed=7)
        phases = [Phase(0, "rest", "baseline", "relax", 0.0, 20.0)]
        for k, e in enumerate(scenario.events):
            phases.append(Phase(len(phases), f"tonic {k + 1}", "tonic", "contract", e.onset_s, e.offset_s))
            end = scenario.events[k + 1].onset_s if k + 1 < len(scenario.events) else scenario.duration_s
            phases.append(Phase(len(phases), f"rest {k + 1}", "rest", "relax", e.offset_s, end))
        a = M.analyze_session(rec, phases, None, PipelineSettings(mains="off"), mains_hz=None)
        rises[ramp] = np.mean([m.values["rise_time_s"] for m in a.metrics if m.phase.role == "tonic"])
    # 10-90 % of a raised cosine takes 0.59 of the ramp: 0.5 s longer ramp, ~0.3 s longer rise.
    assert 0.2 < rises[0.6] - rises[0.1] < 0.45


def test_back_to_rest_needs_the_hold():
    env = np.array([9, 9, 1, 9, 1, 1, 1, 1, 9, 1, 1], dtype=float)
    assert M.back_to_rest(env, 0, 2.0, env.size, hold=3) == 4
    assert M.back_to_rest(env, 0, 2.0, env.size, hold=5) == 9  # the run reaching the end counts
    assert M.back_to_rest(env, 0, 0.5, env.size, hold=1) is None


def test_median_frequency_of_a_tone_and_of_band_noise():
    t = np.arange(2000) / FS
    assert M.median_frequency(np.sin(2 * np.pi * 80 * t), FS) == pytest.approx(80, abs=3)
    rng = np.random.default_rng(0)
    noise = signal.sosfilt(signal.butter(6, [40, 160], "bandpass", fs=FS, output="sos"), rng.standard_normal(20000))
    assert M.median_frequency(noise, FS) == pytest.approx(100, abs=10)


def test_settings_round_trip_through_json():
    import json

    s = PipelineSettings(preset="pelvic", rms_window_s=0.2).replace(
        detector=PipelineSettings().detector.__class__(k_on=6.0, k_off=3.0))
    back = M.settings_from_dict(json.loads(json.dumps(s.as_dict())))
    assert back == s
    assert M.settings_from_dict({"preset": "hobby", "unknown_key": 1}).preset == "hobby"


def test_envelope_is_aligned_despite_heartbeat_suppression_delay(glazer):
    # pelvic preset: ECG suppression on, the pipeline lags 0.15 s; the metrics see aligned signals.
    assert glazer.analysis.signals.delay_samples == glazer.settings.delay_samples(FS) > 0
    for k in range(5):
        assert by_name(glazer.analysis, f"flick {k + 1}/5").values["latency_s"] < 0.2


# ----------------------------------------------------------------------------
# figures: content, not only existence


def test_session_figure_content(glazer):
    a = glazer.analysis
    fig = R.session_figure(a)
    strip, ax_sig, ax = fig.axes
    assert len([p for p in strip.patches if p.get_gid() == "phase"]) == len(glazer.phases)
    cues = [p for p in ax.patches if p.get_gid() == "cue"]
    contract = [p for p in glazer.phases if p.cue == "contract"]
    assert len(cues) == len(contract) == 11
    for patch, phase in zip(cues, contract):
        xs = patch.get_xy()[:, 0] if hasattr(patch, "get_xy") and np.ndim(patch.get_xy()) == 2 else \
            [patch.get_x(), patch.get_x() + patch.get_width()]
        assert min(xs) == pytest.approx(phase.start_s) and max(xs) == pytest.approx(phase.end_s)
    lines = {line.get_gid(): line for line in ax.lines if not line.get_gid() == "phase-boundary"}
    bounds = [line.get_xdata()[0] for line in ax.lines if line.get_gid() == "phase-boundary"]
    assert bounds == pytest.approx([0.0] + [p.end_s for p in glazer.phases])
    spasms = [e for e in a.events if e.kind == "spasm"]
    assert list(lines["events-spasm"].get_xdata()) == pytest.approx([e.onset_s for e in spasms])
    assert list(lines["events-spasm"].get_ydata()) == pytest.approx([e.peak for e in spasms])
    contractions = [e for e in a.events if e.kind == "contraction"]
    assert len(lines["events-contraction"].get_xdata()) == len(contractions) == 11
    env = a.signals.envelope[0]
    ydata = np.asarray(lines["envelope"].get_ydata())
    assert ydata.max() == pytest.approx(env.max())  # per-bucket maxima keep the highest point
    assert ax.get_ylim()[0] <= env.min() and ax.get_ylim()[1] >= env.max()
    assert ax.get_xlim() == pytest.approx((0.0, glazer.phases[-1].end_s))
    assert lines["rest-band"].get_ydata()[0] == pytest.approx(a.reference.band_edge[0])
    assert ax_sig.collections and ax_sig.get_ylim()[1] > 0


def test_overlay_endurance_and_spasm_figures_content(glazer):
    a = glazer.analysis
    fig = R.overlay_figure(a, "flick")
    (ax,) = fig.axes
    reps = [line for line in ax.lines if (line.get_gid() or "").startswith("rep-")]
    assert len(reps) == 5
    for line, k in zip(reps, range(5)):
        m = by_name(a, f"flick {k + 1}/5")
        assert np.max(line.get_ydata()) == pytest.approx(m.values["peak_uv"], rel=0.05)
        assert line.get_xdata()[0] == pytest.approx(-1.0, abs=0.01)
    assert R.overlay_figure(a, "work") is None

    fig = R.endurance_figure(a)
    ax_env, ax_f = fig.axes
    m = by_name(a, "endurance")
    (points,) = [line for line in ax_f.lines if line.get_gid() == "mdf"]
    (fit,) = [line for line in ax_f.lines if line.get_gid() == "mdf-fit"]
    assert len(points.get_xdata()) == 60
    x, y = fit.get_xdata(), fit.get_ydata()
    assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(m.values["median_freq_slope_hz_per_s"], rel=1e-6)
    assert len([p for p in ax_env.patches if p.get_gid() == "decline-window"]) == 2

    fig = R.spasm_figure(a)
    (ax,) = fig.axes
    assert len([line for line in ax.lines if (line.get_gid() or "").startswith("spasm-")]) == len(SPASMS)


# ----------------------------------------------------------------------------
# HTML and PDF


@pytest.fixture(scope="module")
def rendered(glazer, tmp_path_factory):
    meta = {"format": "biofeedback-session", "user": "anna", "started_at": "2026-11-21T18:00:00+00:00",
            "protocol": {"name": "glazer", "description": "Pelvic-floor assessment"},
            "source": {"kind": "simulator", "description": "Glazer scenario"}, "software": "biofeedback 0.1.0",
            "status": "interrupted", "notes": ["source disconnected at 63.2 s; protocol paused"],
            "settings": glazer.settings.as_dict(), "mains_hz": None}
    session = SimpleNamespace(path=tmp_path_factory.mktemp("session"), meta=meta, recording=glazer.rec,
                              events=None, phases=glazer.phases, warnings=["samples.csv: ignored an incomplete "
                                                                          "last line"])
    out = session.path / "report.html"
    html_path, pdf_path, analysis = R.build_report(session, out, pdf=session.path / "report.pdf", dpi=60)
    return SimpleNamespace(html=html_path.read_text(encoding="utf-8"), pdf=pdf_path, analysis=analysis)


def cell(html, table_role, row_name, metric):
    """Text of the cell of ``metric`` in the row ``row_name`` of a role table."""
    table = re.search(rf'<table class="metrics role-{table_role}">(.*?)</table>', html, re.S).group(1)
    row = re.search(rf"<tr[^>]*><td class=\"name\"[^>]*>{re.escape(row_name)}( \*)?</td>(.*?)</tr>", table, re.S)
    assert row, row_name
    return re.search(rf'data-metric="{metric}">([^<]*)<', row.group(2)).group(1)


def test_html_holds_the_metric_values(rendered):
    html, a = rendered.html, rendered.analysis
    for m in a.metrics:
        same_role = [x for x in a.metrics if x.phase.role == m.phase.role]
        for name, value in m.shown():
            if name == "duration_s" and m.phase.role != "baseline":
                continue  # start and end are shown instead
            if not any(R._finite(x.values.get(name)) for x in same_role):
                assert f'data-metric="{name}"' not in html.split(f"role-{m.phase.role}")[1].split("</table>")[0]
                continue  # nothing measurable in that column: left out
            assert cell(html, m.phase.role, m.phase.name, name) == R._fmt(name, value)
    assert cell(html, "flick", "flick 3/5", "peak_uv") == f"{by_name(a, 'flick 3/5').values['peak_uv']:.1f}"
    assert cell(html, "rest", "rest 4", "spasm_count") == "1"
    for p in a.phases:  # phase boundaries as run
        assert f"<td>{p.start_s:.1f}</td><td>{p.end_s:.1f}</td>" in html
    assert html.count('<table class="spasms">') == 1
    assert len(re.findall(r"<tr><td class=\"name\">[^<]+</td><td>spasm</td>", html)) == len(SPASMS)


def test_html_header_notes_and_self_containment(rendered):
    html = rendered.html
    assert "anna" in html and "2026-11-21 18:00" in html and "glazer" in html
    assert "interrupted" in html and "source disconnected at 63.2 s" in html
    assert "ignored an incomplete last line" in html
    assert "@media print" in html and "@page" in html
    assert not re.search(r'(src|href)="(https?:|file:|//)', html)  # nothing outside the page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 5  # session, flicks, tonics, endurance, spasms
    for data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    for name in ("Rest mean", "Rise (s)", "MDF slope (Hz/s)", "Time to relax"):
        assert name in html
    assert "How the numbers are computed" in html and "10 % to 90 %" in html


def test_pdf_has_a_summary_page_and_the_figures(rendered):
    raw = rendered.pdf.read_bytes()
    assert raw.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", raw)) == 6


def test_missing_matplotlib_is_one_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(R.BiofeedbackError, match=r"pip install 'biofeedback\[report\]'"):
        R.require_matplotlib()


def test_samples_lost_in_a_disconnect_are_left_out(glazer):
    rec = glazer.rec
    data = rec.data.copy()
    a, b = int(30 * FS), int(36 * FS)
    data[:, a:b] = data[:, a - 1:a]  # the store holds the last value over a gap
    present = np.ones(rec.n_samples, dtype=bool)
    present[a:b] = False
    held = Recording(data, rec.info, rec.cues)
    with_gap = M.analyze_session(held, glazer.phases, glazer.analysis.events, glazer.settings, mains_hz=None,
                                 present=present)
    ignored = M.analyze_session(held, glazer.phases, glazer.analysis.events, glazer.settings, mains_hz=None)
    truth = band_truth(glazer.settings, FS, None)
    pre = by_name(with_gap, "pre-baseline")
    assert pre.values["rest_mean_uv"] == pytest.approx(truth, rel=0.10)
    assert by_name(ignored, "pre-baseline").values["rest_mean_uv"] < pre.values["rest_mean_uv"] * 0.95
    assert any("had no samples" in n for n in pre.notes)
    fig = R.session_figure(with_gap)
    (gap,) = [p for p in fig.axes[2].patches if p.get_gid() == "gap"]
    xs = gap.get_xy()[:, 0] if np.ndim(gap.get_xy()) == 2 else [gap.get_x(), gap.get_x() + gap.get_width()]
    assert min(xs) == pytest.approx(30.0) and max(xs) > 36.0  # plus the filters' settling
