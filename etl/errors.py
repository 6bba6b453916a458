"""The one domain error of actrec. Library code raises it with an actionable message; only the CLI turns it
into an exit code."""


class ActrecError(Exception):
    """Something the user can fix: bad input, a missing file, a store in the wrong state."""

    exit_code = 1


class Interrupted(ActrecError):
    """The user stopped a command (Ctrl-C); the message says what was kept and how to go on."""

    exit_code = 130


class ActrecWarning(UserWarning):
    """Something that works but likely not as meant (a query comparing a text column with a number); the CLI
    prints it as one line on stderr."""
