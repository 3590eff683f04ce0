"""firmware_bridge/bf_frame.h against the Python side, byte for byte.

The C header the sketch uses is compiled with the host C compiler into
``firmware_bridge/test_vectors.c``; the shared vectors in
``firmware_bridge/test_vectors.json`` must come out identical from C and from
the Python encoder, and the Python parser must read the C frames back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from biofeedback.acquisition.crc import crc16_ccitt
from biofeedback.acquisition.protocols.bridge import BridgeDevice, BridgeParser, encode_frame

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_bridge"
VECTORS = json.loads((FIRMWARE / "test_vectors.json").read_text())


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH: the C side of the vectors is not checked")
    exe = tmp_path_factory.mktemp("firmware") / "test_vectors"
    build = subprocess.run(
        [compiler, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-o", str(exe),
         str(FIRMWARE / "test_vectors.c")],
        capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr

    def run(lines):
        out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    return run


def frame_request(vector):
    samples = np.asarray(vector["samples"])  # (channels, samples_per_frame)
    values = " ".join(str(v) for v in samples.T.ravel())  # sample-major, as bf_encode_frame takes them
    return f"frame {vector['counter']} {vector['channels']} {vector['samples_per_frame']} {values}"


def test_python_encoder_matches_the_shared_vectors():
    for vector in VECTORS["frames"]:
        assert encode_frame(vector["counter"], vector["samples"]).hex() == vector["hex"], vector["note"]
    for vector in VECTORS["crc"]:
        assert f"{crc16_ccitt(bytes.fromhex(vector['hex'])):04x}" == vector["crc"]


def test_c_header_matches_the_shared_vectors(harness):
    frames = harness([frame_request(v) for v in VECTORS["frames"]])
    assert frames == [v["hex"] for v in VECTORS["frames"]]
    crcs = harness([f"crc {v['hex']}" for v in VECTORS["crc"]])
    assert crcs == [v["crc"] for v in VECTORS["crc"]]


def test_python_parser_reads_the_c_frames(harness):
    frames = harness([frame_request(v) for v in VECTORS["frames"]])
    for vector, frame_hex in zip(VECTORS["frames"], frames):
        frame = bytes.fromhex(frame_hex)
        follow = encode_frame(vector["counter"] + vector["samples_per_frame"], vector["samples"])
        parser = BridgeParser()
        result = parser.feed(frame + follow)
        per_frame = vector["samples_per_frame"]
        assert result.index.tolist() == list(range(2 * per_frame)), vector["note"]
        np.testing.assert_array_equal(result.data[:, :per_frame], np.asarray(vector["samples"]))


def test_c_geometry_limits_and_random_frames_agree(harness):
    rng = np.random.default_rng(11)
    requests, expected = [], []
    for _ in range(40):
        channels, per_frame = int(rng.integers(1, 9)), int(rng.integers(1, 17))
        samples = rng.integers(0, 65536, size=(channels, per_frame))
        counter = int(rng.integers(0, 65536))
        vector = {"counter": counter, "channels": channels, "samples_per_frame": per_frame, "samples": samples}
        requests.append(frame_request(vector))
        expected.append(encode_frame(counter, samples).hex())
    requests += ["frame 0 9 1 " + " ".join(["0"] * 9), "frame 0 1 17 " + " ".join(["0"] * 17)]
    expected += ["error: geometry out of range"] * 2
    assert harness(requests) == expected


def test_c_command_parser_and_frame_sizes_match_the_emulated_device(harness):
    lines = harness([f"cmd {v['line']}" for v in VECTORS["commands"]])
    assert lines == [f"{v['command']} {v['argument']}" for v in VECTORS["commands"]]
    rates = harness([f"spf {v['rate_hz']}" for v in VECTORS["samples_per_frame"]])
    assert rates == [str(v["samples_per_frame"]) for v in VECTORS["samples_per_frame"]]
    for v in VECTORS["samples_per_frame"]:
        assert BridgeDevice(fs=v["rate_hz"]).samples_per_frame == v["samples_per_frame"]


def test_emulated_bridge_device_answers_like_the_sketch():
    device = BridgeDevice(fs=500, n_channels=2)
    assert device.handle_input(b"ID\n").startswith(b"BFB 1 ")
    assert device.handle_input(b"INFO\n") == b"INFO fs=500 ch=2 bits=10 spf=5 vref_mv=5000\n"
    assert device.handle_input(b"RATE 1000\n") == b"OK RATE 1000\n"
    assert device.handle_input(b"START\n") == b"OK START\n" and device.streaming
    assert device.handle_input(b"CH 3\n").startswith(b"ERR")
    assert device.handle_input(b"STOP\n") == b"OK STOP\n" and not device.streaming
