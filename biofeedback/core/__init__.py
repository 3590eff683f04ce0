"""Data types shared by every part of the toolkit."""

from biofeedback.core.types import Chunk, Event, Recording, StreamInfo, split_into_chunks

__all__ = ["Chunk", "Event", "Recording", "StreamInfo", "split_into_chunks"]
