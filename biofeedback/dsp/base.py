"""The stage interface and the :class:`Pipeline` that chains stages.

A stage is causal and stateful: ``process(chunk)`` returns the output for
exactly the samples of ``chunk`` and keeps whatever it needs (filter state,
the tail of a moving window) for the next call. Feeding a signal in one
piece or in any chunking gives the same output, to floating-point
tolerance. ``reset()`` forgets the state, as at the start of a new stream.

Stages design themselves (filter coefficients, window lengths in samples)
from the sampling rate of the first chunk they see, so parameters are given
in physical units (Hz, seconds) and no stage assumes a rate.
"""

from __future__ import annotations

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.errors import ParameterError


class Stage:
    """Base class of a causal, stateful processing stage.

    Subclasses implement :meth:`_configure` (called with the stream's
    metadata before the first chunk, and again after :meth:`reset`) and
    :meth:`_process` (called with each chunk). The base class checks that
    the chunks are consecutive and of one stream.
    """

    #: Name used for the output when a pipeline keeps it as a layer.
    name = "stage"

    def __init__(self):
        self._info: StreamInfo | None = None
        self._next_sample: int | None = None

    # -- public interface -------------------------------------------------
    def process(self, chunk: Chunk) -> Chunk:
        """Process one chunk and return the output chunk (same length).

        Parameters
        ----------
        chunk : Chunk
            Samples ``(n_channels, n_samples)`` following the previous chunk.

        Returns
        -------
        Chunk
            Output for the same samples.
        """
        if self._info is None:
            self._info = chunk.info
            self._configure(chunk.info)
        elif chunk.info.fs != self._info.fs or chunk.info.n_channels != self._info.n_channels:
            raise ParameterError(
                f"{type(self).__name__} input",
                f"{self._info.n_channels} channels at {self._info.fs:g} Hz as before "
                "(call reset() for a new stream)",
                f"{chunk.info.n_channels} channels at {chunk.info.fs:g} Hz",
            )
        out = self._process(chunk)
        self._next_sample = chunk.stop
        return out

    def reset(self) -> None:
        """Forget all state, as at the start of a new stream."""
        self._info = None
        self._next_sample = None

    @property
    def info(self) -> StreamInfo | None:
        """Metadata of the stream being processed (None before the first chunk)."""
        return self._info

    # -- to implement -----------------------------------------------------
    def _configure(self, info: StreamInfo) -> None:  # pragma: no cover - trivial
        """Design coefficients for ``info.fs`` and allocate state."""

    def _process(self, chunk: Chunk) -> Chunk:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Pipeline(Stage):
    """A stage made of stages, applied in order.

    Parameters
    ----------
    stages : sequence of Stage
        Applied in order; the output of one is the input of the next.
    keep : sequence of str
        Names of stages whose outputs are kept in the final chunk's
        ``layers`` mapping (e.g. ``("filtered",)`` to keep the band-passed
        signal beside the envelope).

    Notes
    -----
    Events produced by any stage are gathered into the final chunk's
    ``events``.
    """

    name = "pipeline"

    def __init__(self, stages, keep=()):
        super().__init__()
        self.stages = list(stages)
        names = [s.name for s in self.stages]
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise ParameterError("keep", f"names of stages in {names}", unknown)
        self.keep = tuple(keep)

    def _process(self, chunk: Chunk) -> Chunk:
        layers = dict(chunk.layers)
        events = list(chunk.events)
        for stage in self.stages:
            chunk = stage.process(chunk)
            if stage.name in self.keep:
                layers[stage.name] = chunk.data
            if chunk.events:
                events.extend(chunk.events)
                chunk = chunk.replace(events=())
        return chunk.replace(layers=layers, events=tuple(events))

    def reset(self) -> None:
        super().reset()
        for stage in self.stages:
            stage.reset()

    def find(self, stage_type):
        """Return the first stage of the given type, or None.

        Filters merged into a :class:`~biofeedback.dsp.filters.FilterCascade`
        are found too.
        """
        for stage in self.stages:
            if isinstance(stage, stage_type):
                return stage
            for inner in getattr(stage, "filters", ()):
                if isinstance(inner, stage_type):
                    return inner
        return None

    def __repr__(self):
        inner = ", ".join(repr(s) for s in self.stages)
        return f"Pipeline([{inner}])"
