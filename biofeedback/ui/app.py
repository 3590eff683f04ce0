"""Run the live window: application setup, scripted duration and screenshot."""

from __future__ import annotations

import os
import sys

#: Text said when there is no display and the terminal is used instead.
NO_DISPLAY_MESSAGE = ("no display found (DISPLAY and WAYLAND_DISPLAY are not set): "
                      "showing the feedback in the terminal; use --screenshot to render the window off-screen")


def display_available() -> bool:
    """True when a window can be shown (or Qt was told to render off-screen)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True  # Windows and macOS always have their native platform


def qt_available() -> str:
    """"" when PyQt6 and pyqtgraph import, else why not."""
    try:
        import pyqtgraph  # noqa: F401
        from PyQt6 import QtWidgets  # noqa: F401
    except ImportError as exc:
        return f"the window needs the optional GUI packages ({exc}); install them with: pip install 'biofeedback[gui]'"
    return ""


def _quiet_offscreen_warning(kind, _context, message):
    # The off-screen platform warns on every window resize that it cannot
    # pass size hints; that says nothing to a user saving a screenshot.
    if "propagateSizeHints" in message:
        return
    print(message, file=sys.stderr)


def run_window(worker, *, duration_s=None, screenshot=None, size=(1280, 800), **window_options) -> int:
    """Show the window until it is closed (or ``duration_s`` passed).

    Parameters
    ----------
    worker : LiveWorker
    duration_s : float, optional
        Close by itself after this many seconds.
    screenshot : str or Path, optional
        Save the window as PNG just before closing (with ``duration_s``).
    size : (int, int)
        Initial window size in pixels.
    **window_options
        Passed to :class:`~biofeedback.ui.window.LiveWindow`.

    Returns
    -------
    int
        Exit status: 0, or 1 when the source failed.
    """
    from PyQt6 import QtCore, QtWidgets

    from biofeedback.ui.window import LiveWindow

    app = QtWidgets.QApplication.instance()
    if app is None:
        QtCore.qInstallMessageHandler(_quiet_offscreen_warning)
        app = QtWidgets.QApplication(sys.argv[:1])
    window = LiveWindow(worker, **window_options)
    window.resize(*size)
    window.show()
    saved = []

    def finish():
        if screenshot:
            window.on_frame()  # show what arrived since the last tick
            saved.append(window.save_screenshot(screenshot))
        window.close()

    if duration_s is not None:
        QtCore.QTimer.singleShot(int(float(duration_s) * 1000), finish)
    app.setQuitOnLastWindowClosed(True)
    app.exec()
    for thread in saved:
        thread.join(10.0)
        print(f"saved the window to {screenshot}")
    if window.stopped_cleanly is False:
        print("warning: the acquisition thread did not stop within 5 s", file=sys.stderr)
    return window.exit_status
