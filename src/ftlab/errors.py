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


def no_room(full: OSError, where: object) -> str:
    """The line a disk-full error gets, naming the folder `where` (a full disk and a used-up
    quota differ); callers add what else would help."""
    what = "no space left on" if full.errno == errno.ENOSPC else "the quota is used up on"
    return f"{what} the disk of {where}: free some space there"


def raise_if_full(err: BaseException, folder: str | os.PathLike[str]) -> None:
    """After a download into `folder` failed with `err`: raise a disk-full OSError naming
    `folder` when one is behind `err`, or when `folder` takes no file at all. MLflow reports a
    download into a full disk as a missing artifact, dropping the OSError, and "not found" would
    send the user looking for the wrong thing."""
    full = disk_full(err) or _refused_file(folder)
    if full is not None:
        raise OSError(full.errno, full.strerror, os.fspath(folder)) from err


def _refused_file(folder: str | os.PathLike[str]) -> OSError | None:
    """The disk-full error writing a small file into `folder` gives, if any."""
    probe = os.path.join(folder, ".ftlab-room")
    try:
        with open(probe, "wb") as file:
            file.write(b"\0" * 4096)
    except OSError as err:
        return disk_full(err)
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)
    return None
