"""Optional sound feedback: a tone that follows the envelope, or a chime on a spasm.

Off by default. The audio itself is produced by the optional
``sounddevice`` package (PortAudio) on its own callback thread; when it is
missing or no output device works, :func:`open_sound` says so once and
returns None, and the session goes on in silence. The synthesis below is
plain NumPy, so it is tested without any audio hardware.

Mapping (``tone`` mode): the level as a multiple of the resting level is
mapped on a logarithmic scale to a pitch between ``low_hz`` (at rest) and
``high_hz`` (at the top of the gauge), and to a loudness that is zero
inside the resting band, so a relaxed muscle is silent and a clench is
heard at once. ``chime`` mode stays silent except for a short two-note
chime when a spasm starts.
"""

from __future__ import annotations

import math
import threading
import wave

import numpy as np

from biofeedback.live.state import SPASM

SOUND_MODES = ("off", "tone", "chime")


class ToneSynth:
    """Phase-continuous sine tone whose pitch and loudness glide to targets.

    Parameters
    ----------
    rate : int
        Audio sampling rate in Hz.
    low_hz, high_hz : float
        Pitch range.
    glide_s : float
        Time constant of the pitch and loudness glides (avoids clicks).
    """

    def __init__(self, rate: int = 22050, low_hz: float = 220.0, high_hz: float = 880.0, glide_s: float = 0.03):
        self.rate = int(rate)
        self.low_hz, self.high_hz = float(low_hz), float(high_hz)
        self._alpha = 1.0 - math.exp(-1.0 / (glide_s * self.rate))
        self._phase = 0.0
        self._freq = self.low_hz
        self._amp = 0.0
        self.target_freq = self.low_hz
        self.target_amp = 0.0
        self._chime: np.ndarray | None = None
        self._chime_pos = 0

    def set_level(self, ratio: float, top_ratio: float, rest_ratio: float) -> None:
        """Set the targets from the level as a multiple of the resting level.

        Parameters
        ----------
        ratio : float
            Envelope / resting level.
        top_ratio : float
            Ratio at which the pitch reaches ``high_hz``.
        rest_ratio : float
            Ratio of the relax threshold: silent at or below it.
        """
        if not math.isfinite(ratio) or ratio <= rest_ratio:
            self.target_amp = 0.0
            self.target_freq = self.low_hz
            return
        span = max(1e-9, math.log(top_ratio) - math.log(rest_ratio))
        x = min(1.0, max(0.0, (math.log(ratio) - math.log(rest_ratio)) / span))
        self.target_freq = self.low_hz * (self.high_hz / self.low_hz) ** x
        self.target_amp = 0.1 + 0.3 * x

    def chime(self) -> None:
        """Queue a short two-note chime (a falling fifth, soft attack)."""
        n = int(0.18 * self.rate)
        t = np.arange(n) / self.rate
        shape = np.sin(np.pi * np.minimum(1.0, t / 0.01)) * np.exp(-t / 0.06)
        note = lambda f: 0.35 * shape * np.sin(2 * np.pi * f * t)  # noqa: E731 - local helper
        self._chime = np.concatenate([note(880.0), note(587.3)])
        self._chime_pos = 0

    def render(self, n: int) -> np.ndarray:
        """The next ``n`` audio samples (float32, -1..1)."""
        k = np.arange(1, n + 1)
        decay = (1.0 - self._alpha) ** k
        freq = self.target_freq + (self._freq - self.target_freq) * decay
        amp = self.target_amp + (self._amp - self.target_amp) * decay
        phase = self._phase + 2 * np.pi * np.cumsum(freq) / self.rate
        out = amp * np.sin(phase)
        self._phase = float(phase[-1] % (2 * np.pi)) if n else self._phase
        self._freq, self._amp = float(freq[-1]) if n else self._freq, float(amp[-1]) if n else self._amp
        if self._chime is not None:
            part = self._chime[self._chime_pos:self._chime_pos + n]
            out[:part.size] += part
            self._chime_pos += part.size
            if self._chime_pos >= self._chime.size:
                self._chime = None
        return np.clip(out, -1.0, 1.0).astype(np.float32)


class SoundFeedback:
    """Drives a :class:`ToneSynth` from the worker's levels and states.

    ``update`` is called on the worker thread after each chunk; the audio
    callback thread only calls ``render``. Both touch a few floats under a
    lock.

    Parameters
    ----------
    mode : {"tone", "chime"}
    channel : int
        Channel that drives the tone.
    synth : ToneSynth, optional
    """

    def __init__(self, mode: str = "tone", channel: int = 0, synth: ToneSynth | None = None):
        self.mode = mode
        self.channel = channel
        self.synth = synth or ToneSynth()
        self._lock = threading.Lock()
        self._was_spasm = False
        self.stream = None

    def update(self, levels, thresholds, states) -> None:
        ch = self.channel
        spasm = ch < len(states) and states[ch] == SPASM
        with self._lock:
            if self.mode == "chime":
                if spasm and not self._was_spasm:
                    self.synth.chime()
            elif thresholds is not None and thresholds.level[ch] > 0:
                rest = thresholds.level[ch]
                self.synth.set_level(float(levels[ch]) / rest, 2.5 * thresholds.on[ch] / rest,
                                     thresholds.off[ch] / rest)
            self._was_spasm = spasm

    def render(self, n: int) -> np.ndarray:
        with self._lock:
            return self.synth.render(n)

    def close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - audio teardown must never block quitting
                pass


def write_wav(path, samples, rate: int) -> None:
    """Save samples in -1..1 as a 16-bit mono WAV file (standard library only).

    For listening to the feedback sounds where no audio device is available
    (and for the tests, which check the pitch of what was written).
    """
    pcm = np.round(np.clip(np.asarray(samples, dtype=float), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(rate))
        out.writeframes(pcm.tobytes())


def open_sound(mode: str, channel: int = 0, say=print) -> SoundFeedback | None:
    """Start sound output, or say once why there is none and return None.

    Parameters
    ----------
    mode : {"off", "tone", "chime"}
    channel : int
        Channel index that drives the sound.
    say : callable
        Where the one message goes (default ``print``).
    """
    if mode == "off":
        return None
    feedback = SoundFeedback(mode, channel)
    try:
        import sounddevice  # optional extra: pip install sounddevice
    except (ImportError, OSError) as exc:
        say(f"sound: no audio backend ({exc.__class__.__name__}: install the optional 'sounddevice' package); "
            "continuing without sound")
        return None

    def callback(outdata, frames, _time, _status):
        outdata[:, 0] = feedback.render(frames)

    try:
        stream = sounddevice.OutputStream(samplerate=feedback.synth.rate, channels=1, dtype="float32",
                                          callback=callback, blocksize=256)
        stream.start()
    except Exception as exc:  # noqa: BLE001 - PortAudio raises its own error types
        say(f"sound: no audio output ({exc}); continuing without sound")
        return None
    feedback.stream = stream
    return feedback
