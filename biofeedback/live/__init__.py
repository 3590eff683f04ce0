"""Live feedback without Qt: worker thread, feedback states, calibration,
profiles, replay, terminal display and sound.

Everything here runs without a display; :mod:`biofeedback.ui` draws the
window on top of it, and the terminal renderer is the headless twin.
"""

# biofeedback.detect imports biofeedback.dsp.base and biofeedback.dsp imports
# biofeedback.detect: importing dsp first completes the cycle in the one
# order that works, whichever live module is imported first.
import biofeedback.dsp  # noqa: F401
