"""Errors the package raises for bad input: each message is one line that names the file and the fix."""


class YolactError(Exception):
    """Base class: the command-line tool prints these as one line, without a traceback."""


class CheckpointError(YolactError):
    """A checkpoint is missing, unreadable, or does not fit the config."""


class ImageReadError(YolactError):
    """An image is missing or cannot be decoded."""
