"""Surface-EMG biofeedback toolkit.

One set of causal, stateful processing stages serves live feedback, replay
and batch analysis, so the numbers a user sees live are the numbers the batch
report shows later, whatever the chunk size.
"""

__version__ = "0.1.0"

from biofeedback.core.types import Chunk, Event, StreamInfo  # noqa: E402
from biofeedback.errors import BiofeedbackError  # noqa: E402

__all__ = ["Chunk", "Event", "StreamInfo", "BiofeedbackError", "__version__"]
