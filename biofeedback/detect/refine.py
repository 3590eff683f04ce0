"""Offline refinement of detected activations (batch analysis only).

The causal detector (:mod:`biofeedback.detect.threshold`) must decide when a
contraction has ended without knowing what comes next: once the envelope
has stayed below the on threshold for the rest it requires (0.5-1 s), the
contraction is over and the event is reported. A held contraction whose
envelope wavers, or a weak electrode over a muscle that only partly joins a
gesture, can dip below the off threshold for longer than that and rise
again: live, that is two events, because feedback cannot wait.

With the whole recording at hand, batch analysis can ask the question that
defines a relaxation: *did the envelope return to the resting band, and
stay there?* :func:`merge_unrelaxed` joins two consecutive activations on
one channel when

* between them, the envelope never stayed inside the resting band
  (``level + k_band * sigma``, the band onsets are back-tracked to) for
  ``min_relax_s`` in a row, and
* another channel of the recording was active throughout the pause: the
  movement went on (``require_support``); or the first activation is a
  burst no longer than a twitch (``lead_max_s``) and the second is
  longer: the muscle left its rest with that burst and did not come back
  before the contraction, so the contraction began there (its onset is
  moved back to it).

A pause with a real relaxation in it keeps the two events apart however
short it is, so a spasm that follows a relaxation stays an event of its
own. The second condition matters because "not back in the resting band"
alone does not tell a wavering hold from separate bursts on a raised
resting tone (a muscle that never relaxes to its baseline between spasms,
reported as ``elevated_tone``): joining those would turn a series of
spasms into one long cramp. When the other electrodes show the gesture
held across the pause, the dip is the weak channel's, not the movement's.
A single-channel recording is therefore never changed by this step.

Why these defaults:

* ``min_relax_s`` = the detector's ``min_rest_s`` (0.5 s): the shortest
  rest that the causal detector already accepts as ending a contraction;
  here it must be spent inside the resting band, not merely below the on
  threshold. On the labelled Myo and UCI recordings (see
  ``benchmarks/bench_detection.py``), the pauses between separate gestures
  hold 0.5-2.9 s of continuous rest on every channel, while the splits of a
  held gesture hold at most 0.4 s.
* ``lead_max_s = 0.25``: the classifier's longest twitch
  (:class:`~biofeedback.detect.classify.ClassifierSettings`).
* ``max_gap_s = 2.0`` (twice the longest rest the causal detector may
  require): a pause longer than that is not the wavering of one hold,
  whatever the envelope does in it; a level that stays raised for that long
  is a tone, reported as ``elevated_tone`` by the classifier.

The merged event keeps the first onset, the last offset and the largest
peak; its kind is decided again from the cue track over its whole span
(a cued contraction that ran on past the relax cue without relaxing is a
failure to relax), or, without a classifier, is the kind of its longest
part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biofeedback.core.types import Event
from biofeedback.errors import ParameterError


@dataclass(frozen=True)
class RefineSettings:
    """Parameters of :func:`merge_unrelaxed`.

    Attributes
    ----------
    min_relax_s : float or None
        Shortest continuous stay inside the resting band that counts as a
        relaxation, in seconds (None: the detector's ``min_rest_s``).
    max_gap_s : float
        Longest pause between two activations that may be merged, in seconds.
    require_support : bool
        Merge only when another channel was active throughout the pause, or
        the first activation is a lead-in burst (see ``lead_max_s``).
    lead_max_s : float
        Longest first activation that is merged, without support, into a
        longer one that follows it unrelaxed, in seconds.
    """

    min_relax_s: float | None = None
    max_gap_s: float = 2.0
    require_support: bool = True
    lead_max_s: float = 0.25

    def __post_init__(self):
        if self.min_relax_s is not None and not self.min_relax_s > 0:
            raise ParameterError("min_relax_s", "None or a duration > 0 s", self.min_relax_s)
        if not self.max_gap_s >= 0:
            raise ParameterError("max_gap_s", "a duration >= 0 s", self.max_gap_s)
        if not self.lead_max_s >= 0:
            raise ParameterError("lead_max_s", "a duration >= 0 s", self.lead_max_s)


def longest_run(mask) -> int:
    """Length of the longest run of True in a boolean vector.

    Parameters
    ----------
    mask : array-like of bool, shape (n,)

    Returns
    -------
    int
        Number of samples of the longest run (0 when none is True).
    """
    mask = np.asarray(mask, dtype=bool).ravel()
    if not mask.any():
        return 0
    # Run boundaries: where the padded mask changes value.
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return int(np.max(edges[1::2] - edges[0::2]))


def merge_unrelaxed(events, envelope_span, band_edge, ch_names, fs: float, *, kinds,
                    min_relax_s: float, max_gap_s: float = 2.0, require_support: bool = True,
                    lead_max_s: float = 0.0, delay_samples: int = 0, relabel=None) -> tuple[list, dict]:
    """Join consecutive activations of one channel that had no relaxation between them.

    Parameters
    ----------
    events : sequence of Event
        Detected events (any kinds, any order); those of ``kinds`` may be
        merged, the others are returned unchanged.
    envelope_span : callable
        ``envelope_span(start, stop)`` returns envelope samples ``start ..
        stop - 1`` of every channel, shape ``(n_channels, stop - start)``
        (e.g. :meth:`~biofeedback.analysis.store.ChunkStore.span`); called
        once per pause that needs checking.
    band_edge : ndarray, shape (n_channels,)
        Upper edge of the resting band per channel, in the envelope's units.
    ch_names : sequence of str
        Channel names, in the envelope's channel order.
    fs : float
        Sampling rate in Hz.
    kinds : collection of str
        Event kinds that may be merged (activations).
    min_relax_s : float
        Shortest continuous stay inside the resting band that separates
        two activations, in seconds.
    max_gap_s : float
        Longest pause that may be merged, in seconds.
    require_support : bool
        Merge only when an activation of another channel spans the whole
        pause, or the first activation lasts at most ``lead_max_s`` and the
        second is longer.
    lead_max_s : float
        See ``require_support``, in seconds.
    delay_samples : int
        Envelope lag behind the event times (event times were dated back by
        this many samples).
    relabel : callable, optional
        ``relabel(onset_s, offset_s) -> (kind, extra)`` gives a merged
        activation its kind (e.g. from the cue track: a cued contraction
        that ran on past the relax cue without relaxing is a failure to
        relax). None: the merged event keeps the kind of the longer part.

    Returns
    -------
    events : list of Event
        The events with merged activations replaced by one event each,
        sorted by onset then channel.
    merged : dict of str to int
        Per channel, how many activations were absorbed into a previous one.
    """
    need = max(1, int(round(min_relax_s * fs)))
    index = {name: i for i, name in enumerate(ch_names)}
    others, by_channel = [], {}
    for e in events:
        if e.kind in kinds and e.channel in index:
            by_channel.setdefault(e.channel, []).append(e)
        else:
            others.append(e)
    spans = {}
    for name, evs in by_channel.items():
        evs.sort(key=lambda e: e.onset_s)
        onsets = np.array([e.onset_s for e in evs])
        # Running maximum of the offsets: whether any activation starting by
        # t is still active at t' is one lookup.
        reach = np.maximum.accumulate(np.array([e.offset_s for e in evs]))
        spans[name] = (onsets, reach)

    def supported(name, t0, t1):
        for other, (onsets, reach) in spans.items():
            if other != name:
                k = np.searchsorted(onsets, t0, side="right") - 1
                if k >= 0 and reach[k] >= t1:
                    return True
        return False

    # The pauses to check: between consecutive activations of a channel, at
    # most max_gap_s long (on one channel, activations do not overlap, so the
    # pause after a merge is the pause after its last part). ``joins`` holds
    # the (channel, onset) of each activation the next one is joined to.
    joins = set()
    for name, evs in by_channel.items():
        ch = index[name]
        for a, b in zip(evs, evs[1:]):
            if b.onset_s - a.offset_s > max_gap_s:
                continue
            lead_in = a.duration_s <= lead_max_s < b.duration_s
            if require_support and not lead_in and not supported(name, a.offset_s, b.onset_s):
                continue
            start = int(round(a.offset_s * fs)) + delay_samples
            stop = int(round(b.onset_s * fs)) + delay_samples
            # A pause shorter than a relaxation cannot hold one.
            if stop - start < need or longest_run(envelope_span(start, stop)[ch] <= band_edge[ch]) < need:
                joins.add((name, a.onset_s))
    out = list(others)
    merged = {name: 0 for name in ch_names}
    for name, evs in by_channel.items():
        group = [evs[0]]
        for prev, nxt in zip(evs, evs[1:]):
            if (name, prev.onset_s) in joins:
                group.append(nxt)
                merged[name] += 1
            else:
                out.append(_join(group, relabel))
                group = [nxt]
        out.append(_join(group, relabel))
    out.sort(key=lambda e: (e.onset_s, index.get(e.channel, -1)))
    return out, merged


def _join(group, relabel) -> Event:
    """One event spanning a group of activations (itself when alone)."""
    if len(group) == 1:
        return group[0]
    first, longest = group[0], max(group, key=lambda e: e.duration_s)
    onset, offset = first.onset_s, max(e.offset_s for e in group)
    peak = float(np.nanmax([e.peak for e in group])) if any(np.isfinite(e.peak) for e in group) else float("nan")
    if relabel is not None:
        kind, extra = relabel(onset, offset)
    else:
        kind, extra = longest.kind, longest.extra
    extra = {**dict(extra), "parts": len(group)}
    return Event(kind, first.channel, onset, offset, peak, extra)
