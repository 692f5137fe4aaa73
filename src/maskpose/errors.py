"""Exceptions for bad input. Every module raises these (or ValueError) with a message that names
the file, argument or tensor at fault; the CLI prints the message as one line, without a traceback."""


class MaskposeError(ValueError):
    """Bad input: the message names the problem and where it is."""


class DataError(MaskposeError):
    """A dataset, image, mask, video or annotation file is missing, unreadable or malformed."""


class ConfigError(MaskposeError):
    """A configuration value, checkpoint or loss name does not fit."""


def check_shape(name: str, tensor, expected: tuple) -> None:
    """Raise ``MaskposeError`` unless ``tensor.shape`` matches ``expected``.

    ``expected`` holds ints or ``None`` (any size), e.g. ``(None, 17, 3)``.
    """
    shape = tuple(tensor.shape)
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        pretty = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise MaskposeError(f"{name} must have shape {pretty}, got {shape}")
