"""Colours and fonts of the live window.

Colours come from the Okabe–Ito palette, chosen to stay distinct for the
common forms of colour-vision deficiency. No state relies on colour alone:
each has its own word, and RELAXED/SPASM also differ strongly in lightness
from CONTRACTING (dark background with white text vs. light with black).
"""

from biofeedback.live.state import CALIBRATING, CHECK_ELECTRODE, CONTRACTING, RELAXED, SPASM, WAITING

BLUE = "#0072B2"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
REDDISH_PURPLE = "#CC79A7"
GREY = "#999999"
LIGHT_GREY = "#DDDDDD"
BLACK = "#000000"
WHITE = "#FFFFFF"

#: (background, text) of the state word.
STATE_COLOURS = {
    RELAXED: (BLUE, WHITE),
    CONTRACTING: (ORANGE, BLACK),
    SPASM: (VERMILLION, WHITE),
    CHECK_ELECTRODE: (GREY, BLACK),
    CALIBRATING: (SKY_BLUE, BLACK),
    WAITING: (LIGHT_GREY, "#444444"),
}

#: (background, text) of a guided session's cue: the same colours as the
#: states the cue asks for (relax → RELAXED, contract → CONTRACTING).
CUE_COLOURS = {
    "RELAX": (BLUE, WHITE),
    "CONTRACT": (ORANGE, BLACK),
    "DONE": (LIGHT_GREY, "#444444"),
}

#: Colour of event markers on the trace and in the list, by event kind.
EVENT_COLOURS = {
    "contraction": ORANGE,
    "failure_to_relax": REDDISH_PURPLE,
    "spasm": VERMILLION,
    "cramp": VERMILLION,
    "twitch": VERMILLION,
    "elevated_tone": SKY_BLUE,
    "gap": GREY,
    "check electrode": GREY,
    "marker": REDDISH_PURPLE,
}

#: Darker text for labels whose marker colour is too light to read as text.
LABEL_COLOURS = {"contraction": "#8A5A00", "elevated_tone": "#1F6F99", "gap": "#555555",
                 "check electrode": "#555555"}

#: Marker label per event kind (others: the kind, with spaces).
EVENT_LABELS = {"spasm": "SPASM", "cramp": "CRAMP", "twitch": "twitch", "failure_to_relax": "late release",
                "elevated_tone": "raised tone", "check electrode": "electrode"}

#: Trace colours: the filtered signal is a light backdrop, the envelope the
#: line to read.
FILTERED_PEN = "#C4C4C4"
ENVELOPE_PEN = BLACK
REST_BAND = (0, 114, 178, 40)  # BLUE, translucent
TARGET_ZONE = BLUISH_GREEN

#: Point sizes. The state word must be readable across a room.
STATE_PT = 40
CUE_PT = 34
LEVEL_PT = 26
TEXT_PT = 14
SMALL_PT = 12
