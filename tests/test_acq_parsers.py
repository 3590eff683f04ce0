"""Byte parsers of every protocol: fixed vectors and properties of the stream.

Properties checked for each protocol (hypothesis, modest example counts):

* any split of the byte stream gives the same samples;
* random garbage inserted between frames is skipped, and the parser is back
  in sync within two frames (no sample is invented, none is misplaced);
* dropped frames give exactly the right gaps (counter protocols).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biofeedback.acquisition.crc import CHECK_VALUE, crc16_ccitt, crc16_ccitt_rows
from biofeedback.acquisition.framing import concat_results
from biofeedback.acquisition.protocols import PROTOCOLS, get_protocol, recognise
from biofeedback.acquisition.protocols.ascii_lines import AsciiLineParser
from biofeedback.acquisition.protocols.bridge import BridgeParser, encode_frame
from biofeedback.acquisition.protocols.chords import ChordsParser
from biofeedback.acquisition.protocols.cyton import CytonParser, microvolts_per_count
from biofeedback.acquisition.protocols.p2 import P2Parser
from biofeedback.acquisition.testing import offline_stream
from biofeedback.errors import ParameterError

COUNTER_PROTOCOLS = ["bridge", "chords", "p2", "cyton"]
ALL_PROTOCOLS = COUNTER_PROTOCOLS + ["ascii"]
# derandomize: the same examples on every run, so CI never fails by chance.
FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def parser_for(protocol):
    p = get_protocol(protocol)
    return p.make_parser(p.default_config())


def parse_pieces(parser, pieces):
    return concat_results([parser.feed(piece) for piece in pieces], parser.n_channels)


# -- CRC ---------------------------------------------------------------------------------


def test_crc_check_value_and_rows_agree():
    assert crc16_ccitt(b"123456789") == CHECK_VALUE == 0x29B1
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 256, size=(50, 23), dtype=np.uint8)
    vectorised = crc16_ccitt_rows(rows)
    assert [int(v) for v in vectorised] == [crc16_ccitt(r.tobytes()) for r in rows]


# -- fixed byte-string vectors (written by hand from the protocol documents) ----------------


def test_p2_fixed_vector():
    frame = bytes.fromhex("a55a0207" "0200" "01ff" "0000" "03ff" "0155" "002a" "01")
    parser = P2Parser()
    # Two packets are needed to lock; the second has counter 8.
    second = bytes.fromhex("a55a0208" "0000" "0000" "0000" "0000" "0000" "0000" "01")
    result = parser.feed(frame + second)
    assert result.data[:, 0].tolist() == [512, 511, 0, 1023, 341, 42]
    assert result.index.tolist() == [0, 1]
    assert P2Parser(n_channels=2).feed(frame + second).data.shape == (2, 2)


def test_p2_rejects_values_above_ten_bits():
    bad = bytes.fromhex("a55a0207" "0400" + "0000" * 5 + "01")  # high byte 4: not a 10-bit code
    assert P2Parser().feed(bad * 3).n_samples == 0


def test_cyton_fixed_vector_counts_to_microvolts():
    channels = "000001" "ffffff" "7fffff" "800000" "000100" "ffff00" "123456" "000000"
    frame = bytes.fromhex("a005" + channels + "000000000000" + "c0")
    second = bytes.fromhex("a006" + "00" * 24 + "00" * 6 + "c1")
    parser = CytonParser()
    result = parser.feed(frame + second)
    counts = [1, -1, 8388607, -8388608, 256, -256, 0x123456, 0]
    scale = 4.5 / 24 / (2**23 - 1) * 1e6
    assert scale == pytest.approx(0.02235174, rel=1e-6)
    assert microvolts_per_count(24) == pytest.approx(scale)
    np.testing.assert_allclose(result.data[:, 0], np.array(counts) * scale)
    assert result.index.tolist() == [0, 1]
    assert CytonParser(gain=1).feed(frame + second).data[0, 0] == pytest.approx(4.5 / (2**23 - 1) * 1e6)


def test_chords_fixed_vector_with_known_and_inferred_channels():
    frames = bytes.fromhex("c77c2a" "0200" "03ff" "0010" "01" "c77c2b" "0001" "0002" "0003" "01")
    known = ChordsParser(n_channels=3).feed(frames)
    assert known.data.tolist() == [[512, 1], [1023, 2], [16, 3]]
    inferred = ChordsParser()
    result = inferred.feed(frames + bytes.fromhex("c77c2c" "0000" "0000" "0000" "01"))
    assert inferred.n_channels == 3
    assert result.data[:, 0].tolist() == [512, 1023, 16]


def test_bridge_fixed_vector():
    # version 1, counter 0x0102, 2 channels x 2 samples: (1,2),(3,0x3ff); CRC over bytes 2..14.
    frame = encode_frame(0x0102, [[1, 3], [2, 0x3FF]])
    assert frame[:7].hex() == "eb90010201" "0202"
    assert frame[7:15].hex() == "0100" "0200" "0300" "ff03"
    assert frame[15:] == crc16_ccitt(frame[2:15]).to_bytes(2, "little")
    parser = BridgeParser()
    result = parser.feed(frame + encode_frame(0x0104, [[5, 6], [7, 8]]))
    assert result.data.tolist() == [[1, 3, 5, 6], [2, 0x3FF, 7, 8]]
    assert result.index.tolist() == [0, 1, 2, 3]


def test_bridge_bad_crc_is_a_gap_not_a_sample():
    frames = [encode_frame(2 * k, [[k, k], [k, k]]) for k in range(6)]
    broken = bytearray(frames[3])
    broken[9] ^= 0x40
    frames[3] = bytes(broken)
    result = BridgeParser().feed(b"".join(frames))
    assert result.index.tolist() == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]
    assert [(g.start, g.n_samples) for g in result.gaps] == [(6, 2)]


def test_sync_bytes_inside_payload_do_not_cause_a_false_lock():
    # Chords payload values 0xc77c and 0x0001 look like a sync + end byte.
    frames = [bytes.fromhex("c77c%02x" % k) + bytes.fromhex("c77c0001") + b"\x01" for k in range(5)]
    stream = b"".join(frames)
    for start in range(1, 8):  # join the stream mid-frame
        parser = ChordsParser(n_channels=2)
        result = parser.feed(stream[start:])
        assert result.data.tolist() == [[0xC77C] * 4, [0x0001] * 4]


def test_duplicate_frame_is_dropped_and_counted():
    frames = [bytes.fromhex("a55a02%02x" % k) + b"\x00\x10" * 6 + b"\x01" for k in range(4)]
    stream = frames[0] + frames[1] + frames[1] + frames[2] + frames[3]
    result = P2Parser().feed(stream)
    assert result.index.tolist() == [0, 1, 2, 3]
    assert result.duplicates == 1 and result.gaps == []


def test_counter_wraps_and_long_silence_unwraps_with_the_clock():
    frames, truth, _, _ = offline_stream("p2", 600, seed=3)
    parser = P2Parser()
    parser.fs_hint = 250.0
    first = parser.feed(b"".join(frames[:100]), arrival_time=0.4)
    # 300 packets lost (more than one counter wrap); they arrive 1.6 s later.
    second = parser.feed(b"".join(frames[400:]), arrival_time=0.4 + 300 / 250.0 + 200 / 250)
    assert first.index[-1] == 99
    assert second.index[0] == 400
    assert [(g.start, g.n_samples) for g in second.gaps] == [(100, 300)]
    np.testing.assert_array_equal(second.data, truth[:, 400:])


def test_ascii_lines_banner_labels_and_malformed():
    parser = AsciiLineParser()
    text = (
        b"tail-of-a-line 12\n"  # joined mid-line: dropped
        b"Sensor ready!\r\n"
        b"512,498\r\n"
        b"510 497\n"
        b"A0:509\tA1:496\n"
        b"5#1,4x9\n"  # damaged sample: gap of one
        b"500,490\n"
        b"\n"
        b"calibrating\n"
        b"1e2,-3.5\n"
    )
    result = parser.feed(text)
    assert result.data.tolist() == [[512, 510, 509, 500, 100], [498, 497, 496, 490, -3.5]]
    assert result.index.tolist() == [0, 1, 2, 4, 5]
    assert [(g.start, g.n_samples, g.reason) for g in result.gaps] == [(3, 1, "malformed")]


def test_ascii_expected_channel_count_is_enforced():
    parser = AsciiLineParser(n_channels=2)
    result = parser.feed(b"\n1\n2\n3,4\n5,6\n7\n8,9\n")
    assert result.data.tolist() == [[3, 5, 8], [4, 6, 9]]
    assert [g.start for g in result.gaps] == [2]


def test_unknown_protocol_and_bad_channel_count_are_user_errors():
    with pytest.raises(ParameterError, match="one of bridge"):
        get_protocol("modbus")
    with pytest.raises(ParameterError, match="1 to 6"):
        P2Parser(n_channels=7)


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_recognise_finds_each_protocol(protocol):
    frames, _, _, _ = offline_stream(protocol, 120, seed=2)
    found = recognise(b"".join(frames)[3:])
    assert found and found[0][0] == protocol


# -- properties --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
@FAST
@given(seed=st.integers(0, 3), cuts=st.lists(st.integers(0, 10_000), max_size=25))
def test_any_split_gives_the_same_samples(protocol, seed, cuts):
    frames, truth, _, _ = offline_stream(protocol, 160, seed=seed)
    stream = b"".join(frames)
    whole = parser_for(protocol).feed(stream)
    positions = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0] + positions, positions + [len(stream)])]
    split = parse_pieces(parser_for(protocol), pieces)
    np.testing.assert_array_equal(split.index, whole.index)
    np.testing.assert_array_equal(split.data, whole.data)
    # And the samples are the device's (the ASCII parser drops the first line: it may be partial).
    first = 1 if protocol == "ascii" else 0
    np.testing.assert_allclose(whole.data, truth[:, first:first + whole.n_samples], rtol=1e-12)


garbage_bytes = st.binary(min_size=1, max_size=60)


@pytest.mark.parametrize("protocol", COUNTER_PROTOCOLS)
@FAST
@given(seed=st.integers(0, 3), insertions=st.lists(st.tuples(st.integers(2, 200), garbage_bytes), max_size=4))
def test_garbage_between_frames_is_skipped_and_sync_recovers(protocol, seed, insertions):
    frames, truth, per_frame, _ = offline_stream(protocol, 240, seed=seed)
    frames = list(frames)
    where = {}
    for position, junk in insertions:
        # After the first two frames: before the lock there is no index to keep.
        at = 2 + position % (len(frames) - 2)
        where[at] = where.get(at, b"") + junk
    stream = b"".join(where.get(k, b"") + frame for k, frame in enumerate(frames))
    result = parser_for(protocol).feed(stream)
    # Nothing invented or misplaced: every sample is the device's sample at that index.
    np.testing.assert_allclose(result.data, truth[:, result.index], rtol=1e-12)
    # At most two frames lost per insertion, and each loss is reported.
    lost = truth.shape[1] - result.n_samples
    assert lost <= 2 * per_frame * len(where)
    reported = sum(g.n_samples for g in result.gaps)
    assert reported == int(result.index[-1]) + 1 - result.n_samples


@FAST
@given(seed=st.integers(0, 3),
       insertions=st.lists(st.tuples(st.integers(3, 150), st.binary(min_size=1, max_size=40)), max_size=4))
def test_ascii_garbage_costs_at_most_the_line_it_lands_on(seed, insertions):
    frames, truth, _, _ = offline_stream("ascii", 200, seed=seed)
    lines = list(frames)
    noise = {}
    for position, junk in insertions:
        # Garbage without digits, separators or newlines (a number-like junk
        # string would read as a value: ASCII has no check to catch that).
        cleaned = bytes(b for b in junk if not (48 <= b <= 57 or b in b"\n\r\t ,+-.eE:"))
        at = 3 + position % (len(lines) - 3)
        noise[at] = noise.get(at, b"") + (cleaned or b"?")
    stream = b"".join(noise.get(k, b"") + line for k, line in enumerate(lines))
    result = parser_for("ascii").feed(stream)
    expected = [k for k in range(1, truth.shape[1]) if k not in noise]
    np.testing.assert_array_equal(result.data, truth[:, expected])


@pytest.mark.parametrize("protocol", COUNTER_PROTOCOLS)
@FAST
@given(seed=st.integers(0, 3), drops=st.sets(st.integers(2, 158), max_size=60), tail=st.integers(159, 170))
def test_dropped_frames_give_exactly_the_right_gaps(protocol, seed, drops, tail):
    frames, truth, per_frame, _ = offline_stream(protocol, 160 * 5, seed=seed)
    frames = frames[:160]
    kept = [k for k in range(len(frames)) if k not in drops]
    result = parser_for(protocol).feed(b"".join(frames[k] for k in kept))
    expected_index = np.concatenate([k * per_frame + np.arange(per_frame) for k in kept])
    np.testing.assert_array_equal(result.index, expected_index)
    np.testing.assert_allclose(result.data, truth[:, expected_index], rtol=1e-12)
    expected_gaps = []
    for a, b in zip(kept[:-1], kept[1:]):
        if b - a > 1:
            expected_gaps.append(((a + 1) * per_frame, (b - a - 1) * per_frame))
    assert [(g.start, g.n_samples) for g in result.gaps] == expected_gaps


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_parsers_never_fail_on_random_bytes(protocol):
    rng = np.random.default_rng(5)
    parser = parser_for(protocol)
    for _ in range(20):
        parser.feed(rng.integers(0, 256, size=int(rng.integers(1, 500)), dtype=np.uint8).tobytes())
    assert parser.stats.bytes_in > 0
    assert set(PROTOCOLS) == set(ALL_PROTOCOLS)
