"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""


class FtlabError(Exception):
    """A user-facing error: bad config value, missing file, unusable model.

    The message must name the offending config key or file and say what would be right,
    because the CLI prints it alone, without a traceback.
    """
