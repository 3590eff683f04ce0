"""Errors that describe a user's mistake in one line.

Every error a user can cause (a bad file, a wrong parameter, a missing
sampling rate) is raised as a :class:`BiofeedbackError`. The command line
prints its message on one line and exits with status 2, without a traceback.
Programming errors keep their ordinary Python exceptions and tracebacks.
"""

from __future__ import annotations


class BiofeedbackError(Exception):
    """A user-facing error: the message names what was expected and what was found."""

    exit_status = 2


class InputFileError(BiofeedbackError):
    """A recording or settings file cannot be read as expected.

    Parameters
    ----------
    path : str
        The file.
    message : str
        What was expected and what was found.
    line : int, optional
        1-based line number in the file, when the problem is on one line.
    column : str or int, optional
        Column name or 1-based column number.
    """

    def __init__(self, path, message, line=None, column=None):
        self.path = str(path)
        self.line = line
        self.column = column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")


class ParameterError(BiofeedbackError, ValueError):
    """A parameter has a value that cannot work (named, with expected and found)."""

    def __init__(self, name, expected, found):
        self.name = name
        super().__init__(f"{name}: expected {expected}, found {found!r}")


def check_sampling_rate(fs, name="fs"):
    """Return ``fs`` as a float, or raise :class:`ParameterError`.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz. Must be finite and > 0.
    name : str
        Name of the parameter for the message.
    """
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise ParameterError(name, "a sampling rate in Hz (a positive number)", fs) from None
    if not (value > 0 and value < float("inf")):
        raise ParameterError(name, "a sampling rate in Hz greater than 0", fs)
    return value
