"""The one domain error of actrec. Library code raises it with an actionable message; only the CLI turns it
into an exit code."""


class ActrecError(Exception):
    """Something the user can fix: bad input, a missing file, a store in the wrong state."""

    exit_code = 1

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_unwrap_worker_message(args[0]),)
        super().__init__(*args)


def _unwrap_worker_message(message: str) -> str:
    """torch re-raises an error of a DataLoader worker as `SameType("Caught ... in DataLoader worker process N.
    Original Traceback ...")`: keep the worker's own one-line message (the traceback's last line) instead."""
    if not (message.startswith("Caught ") and "\nOriginal Traceback" in message):
        return message
    _type, sep, original = message.rstrip().splitlines()[-1].partition(": ")
    return original if sep else message


class Interrupted(ActrecError):
    """The user stopped a command (Ctrl-C); the message says what was kept and how to go on."""

    exit_code = 130


class ActrecWarning(UserWarning):
    """Something that works but likely not as meant (a query comparing a text column with a number); the CLI
    prints it as one line on stderr."""
