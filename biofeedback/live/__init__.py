"""Live feedback without Qt: worker thread, feedback states, calibration,
profiles, replay, terminal display and sound.

Everything here runs without a display; :mod:`biofeedback.ui` draws the
window on top of it, and the terminal renderer is the headless twin.
"""
