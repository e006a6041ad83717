"""A run's MLflow calls made by a helper process, so a fresh `ftlab train` never waits for MLflow.

Importing MLflow and opening its store cost a fresh process about 2 s before its run could be
created (measured: import 1.2 s, the SQLite store's schema check 0.9 s), all of it Python that
holds the GIL: a thread cannot overlap it with importing torch (measured: no faster than one
after the other), a second process can, on another core. So `ftlab train` starts this helper
before it imports torch; the helper loads MLflow and opens the store meanwhile, and by the time
the data and the model are built it creates the run at once. It then sends the metric spool,
samples the training process's system metrics and beats the heartbeat, off the training
process's GIL, until the run ends.

Nothing is created before the training process asks (a run that fails its checks or its data
leaves no run), and the helper holds nothing that cannot be lost: metrics are in the spool on
disk, and should the helper die, the training process takes its calls over and sends the spool
itself. It exits when told to, or when its stdin closes (the training process is gone); it
ignores Ctrl-C and SIGTERM, which the training process handles, so a stopped run is still
recorded KILLED through it.

Protocol: one JSON object per line. The first names the store (`{"tracking_uri": ...}`); then
`{"call": NAME, "args": [...]}` names a method of `MlflowCalls` and is answered with
`{"result": ...}` or `{"error": MESSAGE, "user": true|false}`; `{"exit": true}` ends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import IO, Any

from ftlab.errors import FtlabError
from ftlab.redact import redact_text

CALLS = frozenset(
    {
        "create_run", "reopen_run", "set_terminated", "log_params", "set_tags", "log_artifact",
        "log_text", "log_dict", "last_metric_steps", "start_reporting", "send_pending", "drain",
        "stop_reporting",
    }
)  # fmt: skip
_EXIT_WAIT_S = 10.0  # at shutdown after calls: it is idle and exits at once


class HelperGone(RuntimeError):
    """The helper process ended before answering."""


class HelperCalls:
    """`MlflowCalls`' methods, answered by a helper process started here."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ftlab.tracking.helper"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1,
        )  # fmt: skip
        self._asked = False  # no call yet: the helper holds nothing
        # Requests whose reply was not read: a signal (Ctrl-C, SIGTERM) raised in this process
        # while it waited. Their replies come first, and are skipped.
        self._unanswered = 0
        self._fallback: Any = None  # this process's own MlflowCalls, once the helper died
        self._reporting: list[Any] | None = None  # start_reporting's arguments while it reports
        try:
            self._send({"tracking_uri": tracking_uri})
        except HelperGone as gone:
            self._fall_back(gone)

    def __getattr__(self, name: str) -> Any:
        if name not in CALLS:
            raise AttributeError(name)
        return lambda *args: self._call(name, list(args))

    def _call(self, name: str, args: list[Any]) -> Any:
        if self._fallback is None:
            try:
                return self._ask(name, args)
            except HelperGone as gone:
                self._fall_back(gone)
        return getattr(self._fallback, name)(*args)

    def _fall_back(self, gone: HelperGone) -> None:
        """The helper died (killed, out of memory): this process makes the calls from here on,
        and sends the spool itself, so the run still ends with its status and its metrics."""
        from ftlab.tracking.calls import MlflowCalls

        print(f"warning: {gone}; this process takes over its MLflow calls", file=sys.stderr)
        self._fallback = MlflowCalls(self.tracking_uri)
        if self._reporting is not None:
            self._fallback.start_reporting(*self._reporting)

    def _ask(self, name: str, args: list[Any]) -> Any:
        while self._unanswered:
            self._reply()
            self._unanswered -= 1
        self._asked = True
        self._send({"call": name, "args": args})
        self._unanswered += 1
        reply = self._reply()
        self._unanswered -= 1
        if "error" in reply:
            raise (FtlabError if reply.get("user") else RuntimeError)(reply["error"])
        if name in ("start_reporting", "stop_reporting"):  # what a fallback needs to take over
            self._reporting = args if name == "start_reporting" else None
        return reply.get("result")

    def _reply(self) -> dict[str, Any]:
        line = self._process.stdout.readline() if self._process.stdout else ""
        if not line:
            code = self._process.wait()
            raise HelperGone(f"ftlab's tracking helper process ended (exit code {code})")
        return json.loads(line)

    def _send_raw(self, message: dict[str, Any]) -> None:
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._send_raw(message)
        except (BrokenPipeError, OSError, ValueError):
            code = self._process.poll()
            raise HelperGone(f"ftlab's tracking helper process ended (exit code {code})") from None

    def shutdown(self) -> None:
        """Let the helper exit and reap it; done again, nothing happens."""
        if self._process.poll() is None:
            if self._asked:
                # Said, not only closed: a forked data-loader worker may hold the pipe open too.
                with contextlib.suppress(OSError, ValueError):
                    self._send_raw({"exit": True})
            else:
                self._process.kill()  # still warming up, holding nothing (bad input ends here)
            try:
                self._process.wait(_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The helper's side: warm MLflow up, then answer calls until told to exit or stdin closes."""
    from ftlab.tracking.calls import MlflowCalls

    hello = requests.readline()
    if not hello:
        return
    calls = MlflowCalls(json.loads(hello)["tracking_uri"])
    calls.warm_up()
    for line in requests:
        request = json.loads(line)
        if request.get("exit"):
            return
        name = request.get("call")
        try:
            if name not in CALLS:
                raise RuntimeError(f"unknown call {name!r}")
            reply = {"result": getattr(calls, name)(*request.get("args", []))}
        except FtlabError as err:
            reply = {"error": redact_text(str(err)), "user": True}
        except Exception as err:  # noqa: BLE001 - the training process decides what it means
            first = str(err).splitlines()[0] if str(err) else ""
            reply = {"error": redact_text(f"{type(err).__name__}: {first}"[:2000]), "user": False}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> None:
    # The training process handles Ctrl-C and SIGTERM and records the run KILLED through here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    # Whatever a library (or a process it starts) prints goes to stderr, not into the replies.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)
    # Every call was answered once done: nothing is left to finish. A normal interpreter exit
    # would wait seconds for threads MLflow leaves behind and tear down every module.
    replies.close()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
