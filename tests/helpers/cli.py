"""Running the `cloudchain` command line in the test's own process, its output captured.

In a worker thread, so that the nodes on the test's event loop keep running meanwhile;
the CLI's own tests and the blob verbs' tests use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io

from cloudchain.cli.main import main


def run_main(*args: str) -> tuple[int, str, str]:
    """`cloudchain ARGS` by its main function: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


async def verbs(url: str, *commands: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Each command run by `cloudchain.cli.main.main` in a worker thread, one at a time
    (faster than a process each; this thread's loop runs the nodes meanwhile)."""
    return [await asyncio.to_thread(run_main, *c, "--node", url) for c in commands]
