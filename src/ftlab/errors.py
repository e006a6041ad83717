"""The one exception type that the CLI turns into a one-line message and a non-zero exit, and
how to find the error behind a library's own."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator


class FtlabError(Exception):
    """A user-facing error: bad config value, missing file, unusable model.

    The message must name the offending config key or file and say what would be right,
    because the CLI prints it alone, without a traceback.
    """


def require(condition: bool, key: str, expected: str, got: object) -> None:
    """Raise FtlabError `"{key} must be {expected} (got {got})"` unless `condition` holds."""
    if not condition:
        raise FtlabError(f"{key} must be {expected} (got {got!r})")


def causes(err: BaseException | None) -> Iterator[BaseException]:
    """`err` and the errors behind it (raised from, or while handling)."""
    seen = set()
    while err is not None and id(err) not in seen:
        yield err
        seen.add(id(err))
        err = err.__cause__ or err.__context__


def disk_full(err: BaseException) -> OSError | None:
    """The OSError behind `err` that says a disk (or a quota) is full, if any: torch reports a
    checkpoint that did not fit as a RuntimeError about stream positions, with it behind."""
    return next(
        (
            cause
            for cause in causes(err)
            if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        ),
        None,
    )


def no_room(full: OSError) -> str:
    """What a disk-full error's first words say: a full disk and a used-up quota differ."""
    return "no space left on" if full.errno == errno.ENOSPC else "the quota is used up on"


def raise_if_full(folder: str | os.PathLike[str]) -> None:
    """After a failed download into `folder`: raise the disk-full OSError (naming `folder`) when
    it takes no file at all. MLflow reports such a download as a missing artifact, dropping the
    OSError, and "not found" would send the user looking for the wrong thing."""
    probe = os.path.join(folder, ".ftlab-room")
    try:
        with open(probe, "wb") as file:
            file.write(b"\0" * 4096)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, err.strerror, os.fspath(folder)) from err
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)
