"""Sub-commands of the ``biofeedback`` command line.

Each module here defines ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed arguments, returning an exit status).
Modules are imported only when listed in :data:`COMMANDS`, and each keeps
heavy imports (Qt, matplotlib, serial) inside its ``func``, so ``--help``
stays fast and works without optional extras.
"""

#: (module name, command) in the order ``--help`` lists them.
COMMANDS = [
    ("simulate", "simulate"),
    ("analyze", "analyze"),
    ("ports", "ports"),
    ("record", "record"),
    ("emulate", "emulate"),
    ("live", "live"),
    ("replay", "replay"),
    ("report", "report"),
    ("history", "history"),
    ("session", "session"),
    ("repair", "repair"),
    ("export", "export"),
]
