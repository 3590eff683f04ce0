"""``biofeedback replay``: the live window over a recording, with pause and seek."""

from __future__ import annotations

from biofeedback.commands._common import add_pipeline_arguments
from biofeedback.commands.live import add_feedback_arguments, check_display_arguments, run_session
from biofeedback.errors import ParameterError

DESCRIPTION = """\
Replay a recording in the live window, paced in real time (or --speed times
faster), with the same processing, states and events as live feedback.
Space pauses, ←/→ seek 5 s, Home returns to the start; the slider under
the traces seeks too. Gaps in a recording made by `biofeedback record` or
`live --record` (listed in FILE.events.csv) are shown where they were.

examples:
  biofeedback replay session.csv
  biofeedback replay session.csv --speed 4 --feedback all
  biofeedback replay myo.txt --fs 200 --channels 0-3
  biofeedback replay session.csv --speed 0 --pause-at 17 --duration 5 --screenshot spasm.png
"""


def register(sub, formatter_class):
    p = sub.add_parser("replay", help="the live window over a recording (pause, seek, speed)",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("file", metavar="FILE", help="recording (CSV/TXT)")
    g = p.add_argument_group("replay")
    g.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="1 real time, 4 four times faster, 0 as fast as possible")
    g.add_argument("--start", type=float, default=0.0, metavar="S", help="start at S seconds")
    g.add_argument("--pause-at", type=float, default=None, metavar="S", help="pause by itself at S seconds")
    g.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate when the file has no time column or rate comment")
    g.add_argument("--channels", default=None, metavar="SPEC",
                   help="channels: names or 0-based columns, ranges 0-7, exclusions !8")
    g.add_argument("--cue-column", default=None, metavar="NAME",
                   help="column of rest/contract cues (a last 'cue' column is found by itself)")
    add_feedback_arguments(p)
    add_pipeline_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from biofeedback.live.sources import replay_source

    check_display_arguments(args)
    if args.start < 0:
        raise ParameterError("--start", "a time >= 0 in seconds", args.start)
    opened = replay_source(args.file, speed=args.speed, fs=args.fs, channels=args.channels,
                           cue_column=args.cue_column, start_s=args.start, pause_at_s=args.pause_at)
    args.record = None
    return run_session(args, opened, title="biofeedback replay")
