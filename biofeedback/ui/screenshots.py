"""Render the documentation screenshots of the live window, off-screen.

``python -m biofeedback.ui.screenshots docs/screenshots`` replays a
scripted simulator session as fast as possible, pauses it at chosen times
and saves the window: relaxed, contracting, a spasm, and an electrode that
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
)


def capture(folder, shots=SHOTS, size=(1280, 800), fs: float = 1000.0) -> list[Path]:
    """Save one PNG per ``(name, time)`` in ``folder``; returns the paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6 import QtWidgets

    from biofeedback.live.replay import ReplaySource
    from biofeedback.live.worker import LiveWorker
    from biofeedback.sources.simulator import default_session, simulate
    from biofeedback.ui.window import LiveWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    recording = simulate(default_session(60.0, 2, electrode_off=((55.0, 58.0),)), fs, seed=0)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, pause_s in shots:
        source = ReplaySource(recording, speed=0, chunk_s=0.02, pause_at_s=pause_s, name="simulator")
        worker = LiveWorker(source, calibration_s=8.0, block_when_full=True, queue_size=4, source_name="simulator")
        window = LiveWindow(worker, feedback_channels=["all"], start=False, title="biofeedback live")
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
