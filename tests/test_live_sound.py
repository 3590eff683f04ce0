"""Sound feedback rendered to arrays and WAV files: pitch, loudness and chime, no audio device."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from biofeedback.live.sound import SoundFeedback, ToneSynth, write_wav
from biofeedback.live.worker import Thresholds

RATE = 8000


def peak_hz(samples, rate=RATE) -> float:
    """Frequency of the strongest FFT bin (Hann window), refined by parabolic interpolation."""
    x = np.asarray(samples, dtype=float) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(x))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + shift) * rate / len(samples)


def read_wav(path):
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth()) == (1, 2)
        rate = f.getframerate()
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(float) / 32767
    return data, rate


def settled_tone(ratio, top=20.0, rest=1.5, seconds=1.0):
    synth = ToneSynth(rate=RATE, low_hz=220.0, high_hz=880.0, glide_s=0.01)
    synth.set_level(ratio, top, rest)
    synth.render(RATE // 4)  # let the glide settle
    return synth, synth.render(int(seconds * RATE))


@pytest.mark.parametrize("ratio, expected", [(20.0, 880.0), (np.sqrt(1.5 * 20.0), 440.0)])
def test_pitch_follows_the_level_on_a_log_scale(ratio, expected):
    # Top of the scale → high_hz; half-way in log terms → the geometric middle (one octave up).
    synth, tone = settled_tone(ratio)
    assert synth.target_freq == pytest.approx(expected)
    assert peak_hz(tone) == pytest.approx(expected, abs=1.0)


def test_tone_written_to_wav_keeps_its_pitch_and_rest_is_silent(tmp_path):
    _, tone = settled_tone(8.0)
    path = tmp_path / "tone.wav"
    write_wav(path, tone, RATE)
    back, rate = read_wav(path)
    assert rate == RATE and back.size == tone.size
    expected = 220.0 * 4.0 ** (np.log(8.0 / 1.5) / np.log(20.0 / 1.5))
    assert peak_hz(back, rate) == pytest.approx(expected, abs=1.0)
    assert np.abs(back - tone).max() < 1e-4  # 16-bit quantisation only
    _, rest = settled_tone(1.2)  # below the relax threshold
    write_wav(tmp_path / "rest.wav", rest, RATE)
    assert np.abs(read_wav(tmp_path / "rest.wav")[0]).max() == 0.0


def test_loudness_grows_with_the_level_and_stays_in_range():
    quiet = np.sqrt(np.mean(settled_tone(2.0)[1] ** 2))
    loud = np.sqrt(np.mean(settled_tone(15.0)[1] ** 2))
    assert 0 < quiet < loud
    assert np.abs(settled_tone(1e6)[1]).max() <= 1.0


def test_chime_is_a_falling_fifth_at_880_then_587_hz():
    synth = ToneSynth(rate=RATE)
    synth.chime()
    sound = synth.render(int(0.36 * RATE))
    half = sound.size // 2
    assert peak_hz(sound[:half]) == pytest.approx(880.0, abs=6.0)
    assert peak_hz(sound[half:]) == pytest.approx(587.3, abs=6.0)
    assert np.abs(synth.render(RATE // 10)).max() == 0.0  # played once, then silence


def test_chime_spans_render_calls_like_one_long_call():
    one = ToneSynth(rate=RATE)
    one.chime()
    whole = one.render(3000)
    parts = ToneSynth(rate=RATE)
    parts.chime()
    pieces = np.concatenate([parts.render(n) for n in (1, 255, 744, 2000)])
    np.testing.assert_allclose(pieces, whole, atol=1e-7)


def test_feedback_from_thresholds_maps_rest_to_silence_and_contract_to_pitch(tmp_path):
    th = Thresholds(np.array([2.0]), np.array([0.3]), np.array([6.0]), np.array([4.0]))
    feedback = SoundFeedback("tone", synth=ToneSynth(rate=RATE, glide_s=0.01))
    feedback.update(np.array([3.0]), th, ["RELAXED"])  # below the relax threshold (4.0)
    assert np.abs(feedback.render(RATE // 2)).max() < 1e-3
    feedback.update(np.array([15.0]), th, ["CONTRACTING"])  # the gauge's top is 2.5 x 6 = 15
    feedback.render(RATE // 4)
    tone = feedback.render(RATE)
    write_wav(tmp_path / "contract.wav", tone, RATE)
    back, rate = read_wav(tmp_path / "contract.wav")
    assert peak_hz(back, rate) == pytest.approx(feedback.synth.high_hz, abs=1.0)
