"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""


class FtlabError(Exception):
    """A user-facing error: bad config value, missing file, unusable model.

    The message must name the offending config key or file and say what would be right,
    because the CLI prints it alone, without a traceback.
    """


def require(condition: bool, key: str, expected: str, got: object) -> None:
    """Raise FtlabError `"{key} must be {expected} (got {got})"` unless `condition` holds."""
    if not condition:
        raise FtlabError(f"{key} must be {expected} (got {got!r})")
