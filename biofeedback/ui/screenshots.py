"""Render the documentation screenshots of the live window, off-screen.

``python -m biofeedback.ui.screenshots docs/screenshots`` replays a
scripted simulator session as fast as possible, pauses it at chosen times
and saves the window: relaxed, contracting, a spasm, a guided session's
cue (with a small demonstration cue provider), and an electrode that
came off. It takes seconds, not the minutes of the session.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

#: (file name, pause time in s): the state each picture shows, in the
#: default session (contractions 10-14, 20-23, 29-34 s; spasms at 16.5
#: and 36.5 s on ch1; electrode off from 55 s).
SHOTS = (
    ("relaxed.png", 19.0),
    ("contracting.png", 31.5),
    ("spasm.png", 37.3),
    ("check_electrode.png", 56.5),
    ("guided.png", 31.5),
)

#: Shots taken with the demonstration cue provider.
GUIDED = ("guided.png",)


class DemoSession:
    """A cue provider for the pictures: the simulator's cued contractions as "squeeze" phases.

    Each cued contraction of the scenario becomes a ``contract`` phase with
    a target band (``target_uv``), and the time before it a ``relax`` phase.
    Only for documentation: guided sessions proper come from protocols.
    """

    def __init__(self, scenario, fs: float, target_uv=(25.0, 70.0)):
        self.fs = float(fs)
        windows = sorted((e.onset_s, e.onset_s + e.duration_s) for e in scenario.events if e.cued)
        self.phases = []
        start = 0.0
        for k, (a, b) in enumerate(windows, 1):
            self.phases.append(("rest", "relax", start, a, None, None))
            self.phases.append((f"squeeze {k}/{len(windows)}", "contract", a, b) + tuple(target_uv))
            start = b
        self.phases.append(("rest", "relax", start, scenario.duration_s, None, None))

    def cues_for(self, first_sample: int, n: int):
        import numpy as np

        t = (first_sample + np.arange(n)) / self.fs
        cues = np.full(n, "relax", dtype="<U8")
        for _, cue, a, b, _, _ in self.phases:
            if cue == "contract":
                cues[(t >= a) & (t < b)] = cue
        return cues

    def status(self, sample_index: int):
        from types import SimpleNamespace

        t = sample_index / self.fs
        for name, cue, a, b, low, high in self.phases:
            if a <= t < b:
                return SimpleNamespace(name=name, cue=cue, remaining_s=b - t, progress=(t - a) / (b - a),
                                       target_low=low, target_high=high, done=False)
        return SimpleNamespace(name="", cue="relax", remaining_s=0.0, progress=1.0, target_low=None,
                               target_high=None, done=True)


def capture(folder, shots=SHOTS, size=(1280, 800), fs: float = 1000.0) -> list[Path]:
    """Save one PNG per ``(name, time)`` in ``folder``; returns the paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6 import QtWidgets

    from biofeedback.live.replay import ReplaySource
    from biofeedback.live.worker import LiveWorker
    from biofeedback.sources.simulator import default_session, simulate
    from biofeedback.ui.window import LiveWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    scenario = default_session(60.0, 2, electrode_off=((55.0, 58.0),))
    recording = simulate(scenario, fs, seed=0)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, pause_s in shots:
        source = ReplaySource(recording, speed=0, chunk_s=0.02, pause_at_s=pause_s, name="simulator")
        worker = LiveWorker(source, calibration_s=8.0, block_when_full=True, queue_size=4, source_name="simulator")
        provider = DemoSession(scenario, fs) if name in GUIDED else None
        # A guided session trains one muscle: one feedback panel, under the cue.
        window = LiveWindow(worker, feedback_channels=["1"] if provider else ["all"], start=False,
                            title="biofeedback live", cue_provider=provider)
        window.resize(*size)
        window.show()
        worker.start()
        deadline = time.monotonic() + 60
        while not (source.paused and worker.output.empty()) and time.monotonic() < deadline:
            window.on_frame()
            app.processEvents()
        for _ in range(3):  # let the panels' text refresh catch up with the last block
            time.sleep(window_period(window))
            window.on_frame()
            app.processEvents()
        window._update_status(window.clock())
        app.processEvents()
        path = folder / name
        window.save_screenshot(path).join(30)
        window.close()
        saved.append(path)
    return saved


def window_period(window) -> float:
    from biofeedback.ui.window import TEXT_PERIOD_S

    return TEXT_PERIOD_S + 0.01


if __name__ == "__main__":  # pragma: no cover - documentation helper
    for path in capture(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"):
        print(f"saved {path} ({path.stat().st_size // 1024} KiB)")
