"""Guided sessions (a cue provider), event classes as in batch, heartbeat delay, batching and display rate."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest

from live_helpers import drain

from biofeedback.core.types import Event, StreamInfo
from biofeedback.dsp.settings import PipelineSettings
from biofeedback.live.decimate import DisplayDecimator
from biofeedback.live.model import FeedbackModel
from biofeedback.live.state import CONTRACTING, RELAXED, SPASM, StateLogic
from biofeedback.live.terminal import event_line, feedback_line, run_headless
from biofeedback.live.worker import LiveBlock, LiveWorker, PhaseStatus, StreamStarted, Thresholds
from biofeedback.sources.simulator import Scenario, ScriptedEvent, SimulatorSource

FS = 500.0


class FakeProvider:
    """A tiny guided session: phases ``(name, cue, start_s, end_s, target_low, target_high)``."""

    def __init__(self, fs, phases):
        self.fs, self.phases = fs, phases
        self.calls = 0

    def cues_for(self, first_sample, n):
        self.calls += 1
        t = (first_sample + np.arange(n)) / self.fs
        out = np.full(n, "relax", dtype="<U8")
        for _, cue, a, b, _, _ in self.phases:
            out[(t >= a) & (t < b)] = cue
        return out

    def status(self, sample_index):
        t = sample_index / self.fs
        for name, cue, a, b, low, high in self.phases:
            if a <= t < b:
                return SimpleNamespace(name=name, cue=cue, remaining_s=b - t, progress=(t - a) / (b - a),
                                       target_low=low, target_high=high, done=False)
        return SimpleNamespace(name="", cue="relax", remaining_s=0.0, progress=1.0, target_low=None,
                               target_high=None, done=True)


PHASES = [("settle", "relax", 0.0, 5.0, None, None), ("squeeze 1/1", "contract", 5.0, 6.0, 10.0, 30.0),
          ("let go", "relax", 6.0, 13.0, None, None)]


def uncued_session():
    """A 2.5 s burst on both channels at 5 s and a 1 s burst on ch1 at 9 s; the simulator's own cues say rest."""
    events = (ScriptedEvent("contraction", 5.0, 2.5, channels=None, cued=False),
              ScriptedEvent("spasm", 9.0, 1.0, channels=(0,)))
    return Scenario(duration_s=13.0, events=events, n_channels=2)


def test_cue_provider_drives_states_events_and_phase_status():
    provider = FakeProvider(FS, PHASES)
    source = SimulatorSource(uncued_session(), FS, speed=0, chunk_s=0.01)
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True, cue_provider=provider).start()
    messages = drain(worker)
    started = messages[0]
    assert isinstance(started, StreamStarted) and started.guided and started.has_cues
    blocks = [m for m in messages if isinstance(m, LiveBlock)]
    # The provider's cues, not the simulator's: the burst at 5 s was asked for.
    at = {round(b.position_s, 2): b for b in blocks}
    assert at[5.6].states[0] == CONTRACTING and at[9.6].states[0] == SPASM and at[12.0].states[0] == RELAXED
    kinds = sorted((e.channel, e.kind) for b in blocks for e in b.events)
    # The squeeze outlasts its 1 s cue by 1.5 s (> the 1 s grace): failure to relax, as batch says.
    assert kinds == [("ch1", "failure_to_relax"), ("ch1", "spasm"), ("ch2", "failure_to_relax")]
    late = next(e for b in blocks for e in b.events if e.kind == "failure_to_relax")
    assert late.extra["cue"] == "contract" and late.extra["relax_delay_s"] > 1.0
    phase = at[5.6].phase
    assert isinstance(phase, PhaseStatus)
    assert (phase.name, phase.cue, phase.target_low, phase.target_high) == ("squeeze 1/1", "contract", 10.0, 30.0)
    assert phase.remaining_s == pytest.approx(0.4) and phase.progress == pytest.approx(0.6)
    last = [b for b in blocks if b.envelope.shape[1]][-1]
    assert last.position_s == 13.0 and last.phase.done
    assert provider.calls > 0 and not worker.alive


def test_sustained_and_short_uncued_bursts_are_cramp_and_twitch_like_batch():
    events = (ScriptedEvent("cramp", 5.0, 4.0, channels=(0,)), ScriptedEvent("spasm", 10.5, 0.15, channels=(0,),
                                                                            amplitude=6.0))
    source = SimulatorSource(Scenario(duration_s=13.0, events=events, n_channels=1), FS, speed=0, chunk_s=0.02)
    source.has_cues = True  # its cue track is "rest" throughout
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True).start()
    blocks = [m for m in drain(worker) if isinstance(m, LiveBlock)]
    kinds = [e.kind for b in blocks for e in b.events]
    assert kinds == ["cramp", "twitch"]


def test_without_cues_relax_mode_names_bursts_by_duration_and_train_mode_keeps_contractions():
    logic = StateLogic(1, FS, mode="relax")
    long_burst = Event("contraction", "ch1", 2.0, 6.0, 10.0, {"cue": "", "shape": "sustained"})
    assert logic.label_event(long_burst, FS).kind == "cramp"
    assert logic.label_event(Event("contraction", "ch1", 2.0, 2.1, 10.0, {"cue": ""}), FS).kind == "twitch"
    judged = Event("contraction", "ch1", 2.0, 3.0, 10.0, {"cue": "contract"})
    assert logic.label_event(judged, FS) is judged  # the classifier saw a cue: it decided
    assert StateLogic(1, FS, mode="train").label_event(long_burst, FS).kind == "contraction"


def test_state_judges_a_burst_at_the_detectors_onset():
    logic = StateLogic(1, 100.0)
    logic.cues.update(np.array(["rest"] * 200 + ["contract"] * 200), 0)
    # Confirmed at 2.1 s, inside the contract cue, but it began at 1.5 s, in rest: a spasm,
    # as the classifier will say (the onset is 0.5 s before the cue, more than its 0.3 s lead).
    assert logic.update([True], 210, onsets=[150]) == [SPASM]
    logic.reset()
    logic.cues.update(np.array(["rest"] * 200 + ["contract"] * 200), 0)
    assert logic.update([True], 210, onsets=[180]) == [CONTRACTING]  # 0.2 s early: anticipated


def test_numeric_cue_labels_read_like_the_classifier():
    logic = StateLogic(1, 100.0)
    logic.cues.update(np.array(["0"] * 100 + ["3"] * 100), 0)  # a dataset's gesture labels
    assert logic.update([True], 150) == [CONTRACTING]


def test_heartbeat_suppression_delay_is_part_of_the_envelope_delay():
    source = SimulatorSource(uncued_session(), FS, speed=0, chunk_s=0.05)
    settings = PipelineSettings(preset="pelvic")
    worker = LiveWorker(source, settings, calibration_s=3.0, block_when_full=True).start()
    messages = drain(worker)
    started = messages[0]
    delay = settings.delay_samples(FS) / FS
    assert delay > 0.1
    assert started.signal_delay_s == pytest.approx(delay)
    assert started.envelope_delay_s == pytest.approx(settings.rms_window_s / 2 + delay)
    plain = LiveWorker(SimulatorSource(uncued_session(), FS, speed=0), calibration_s=3.0, block_when_full=True)
    first = drain(plain.start())[0]
    assert first.signal_delay_s == 0.0 and first.envelope_delay_s == pytest.approx(0.05)
    # Events stay in raw-signal time (the simulator's cues say rest: every burst is a spasm).
    onsets = sorted((e.channel, e.onset_s) for m in messages if isinstance(m, LiveBlock)
                    for e in m.events if e.kind == "spasm")
    assert [ch for ch, _ in onsets] == ["ch1", "ch1", "ch2"]
    assert [t for _, t in onsets] == [pytest.approx(t, abs=0.2) for t in (5.0, 9.0, 5.0)]


def test_small_chunks_are_processed_in_groups_without_losing_samples_or_cues():
    provider = FakeProvider(FS, PHASES)
    source = SimulatorSource(uncued_session(), FS, speed=0, chunk_s=0.004)  # 2 samples a chunk
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True, min_block_s=0.02,
                        cue_provider=provider, queue_size=100000).start()
    blocks = [m for m in drain(worker) if isinstance(m, LiveBlock) and m.envelope.shape[1]]
    sizes = [b.envelope.shape[1] for b in blocks]
    assert sum(sizes) == int(13 * FS)
    assert all(b.first_sample + n == nxt.first_sample for b, n, nxt in zip(blocks, sizes, blocks[1:]))
    assert min(sizes[len(sizes) // 2:-1]) >= 10  # 20 ms at 500 Hz, after the mains probe
    kinds = sorted(e.kind for b in blocks for e in b.events)
    assert kinds == ["failure_to_relax", "failure_to_relax", "spasm"]


def test_display_rate_changes_from_the_next_bin_and_the_bins_stay_contiguous():
    dec = DisplayDecimator(1, 10)
    first = dec.process(0, np.arange(25.0)[None], np.ones((1, 25)))
    assert first.start.tolist() == [0, 10, 20] and first.partial
    dec.set_factor(4)
    second = dec.process(25, np.arange(25.0, 41.0)[None], np.ones((1, 16)))
    # The partial bin (from 20) comes again, shortened to the new grid (24), then bins of 4.
    assert second.start.tolist() == [20, 24, 28, 32, 36, 40]
    assert second.fmax[0].tolist() == [23.0, 27.0, 31.0, 35.0, 39.0, 40.0]


def test_worker_follows_the_display_rate_it_is_asked_for():
    source = SimulatorSource(uncued_session(), FS, speed=0, chunk_s=0.05)
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True)
    worker.set_display_rate(25.0)  # 20 samples a bin at 500 Hz
    blocks = [m for m in drain(worker.start()) if isinstance(m, LiveBlock) and m.traces is not None]
    starts = np.concatenate([b.traces.start[:-1] if b.traces.partial else b.traces.start for b in blocks[5:]])
    assert set(np.diff(starts).tolist()) <= {0, 20}


# -- the model and the terminal ------------------------------------------------------
def _block(phase, level=12.0):
    th = Thresholds(np.array([3.0]), np.array([0.5]), np.array([8.0]), np.array([5.0]))
    return LiveBlock(first_sample=0, t_source=0.0, filtered=np.zeros((1, 5)), envelope=np.full((1, 5), level),
                     states=(CONTRACTING,), levels=np.array([level]), quality=("ok",), thresholds=th,
                     position_s=5.6, phase=phase)


def test_model_shows_the_cue_countdown_and_the_target_band_on_the_gauge():
    model = FeedbackModel()
    model.apply(StreamStarted(StreamInfo.default_names(1, FS), "sim", True, "relax", False, 13.0, 0.05,
                              guided=True))
    assert model.cue_word() == "" and model.countdown_text() == ""
    model.apply(_block(PhaseStatus("squeeze 1/1", "contract", 2.2, 0.45, 10.0, 30.0)))
    assert (model.cue_word(), model.countdown_text(), model.phase_text()) == ("CONTRACT", "3 s", "squeeze 1/1")
    fraction, low, high, marks = model.gauge(0)
    top = 1.25 * 30.0  # the target's top fits on the gauge
    assert (low, high) == (pytest.approx(10.0 / top), pytest.approx(30.0 / top))
    assert fraction == pytest.approx(12.0 / top) and marks == (pytest.approx(5.0 / top), pytest.approx(8.0 / top))
    model.apply(_block(PhaseStatus("let go", "relax", 6.0, 0.1)))
    assert model.gauge(0)[1:3] == (0.0, pytest.approx(5.0 / 20.0))  # no target: the resting zone
    model.apply(_block(PhaseStatus(done=True)))
    assert (model.cue_word(), model.phase_text(), model.countdown_text()) == ("DONE", "session complete", "")


def test_phase_status_copies_any_duck_typed_object_safely():
    status = PhaseStatus.of(SimpleNamespace(name="hold", cue="contract", remaining_s=float("nan"), progress=1.7,
                                            target_low=None, target_high="x", done=0))
    assert status == PhaseStatus("hold", "contract", 0.0, 1.0, None, None, False)
    assert PhaseStatus.of(None) is None


def test_terminal_line_leads_with_the_cue_and_the_countdown():
    model = FeedbackModel()
    model.apply(StreamStarted(StreamInfo.default_names(1, FS), "sim", True, "relax", False, 13.0, 0.05,
                              guided=True))
    model.apply(_block(PhaseStatus("squeeze 1/1", "contract", 0.4, 0.6, 10.0, 30.0)))
    line = feedback_line(model)
    assert line.startswith("CONTRACT") and "1 s" in line and "squeeze 1/1 [======....]" in line
    assert "\x1b[" in feedback_line(model, colour=True)
    late = Event("failure_to_relax", "ch1", 5.0, 7.5, 9.0)
    assert event_line(late) == "00:05.0  ch1  failure to relax  2.5 s"


def test_headless_session_shows_the_guided_cue():
    provider = FakeProvider(FS, PHASES)
    source = SimulatorSource(uncued_session(), FS, speed=0, chunk_s=0.05)
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True, cue_provider=provider)
    out = io.StringIO()
    assert run_headless(worker, stream=out, tty=False, duration_s=None) == 0
    text = out.getvalue()
    assert "failure to relax" in text and ("RELAX" in text or "CONTRACT" in text or "DONE" in text)
