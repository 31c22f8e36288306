"""Start and stop a local anvil node, optionally with state that survives restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from escrow import settings
from escrow.errors import ChainUnavailable

#: The mnemonic anvil uses by default; its accounts are public test accounts, never for real money.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc_ready(url: str, timeout: float = 1.0) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return "result" in json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ends_with_parent() -> list[str]:
    """A prefix that makes the node get SIGTERM when the process that started it dies, even
    by SIGKILL (Linux's parent-death signal, set by util-linux's ``setpriv``, which then runs
    anvil in its place): a killed test run, benchmark or ``make run`` leaves no node mining on.
    The signal follows the starting *thread*, so start nodes from a thread that lives as long
    as the node should. Empty where ``setpriv`` is missing (the node then outlives a killed
    parent, as before)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return []
    return [setpriv, "--pdeathsig", "TERM", "--"]


class AnvilNode:
    """An anvil process on loopback.

    With ``state_file`` the chain is loaded from that file on start and written back every
    ``state_interval`` seconds and on a clean stop, so it survives restarts and crashes.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        state_file: Path | None = None,
        state_interval: int = 5,
        chain_id: int = 31337,
        block_time: float | None = None,
        binary: Path | None = None,
        log_file: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.state_file = state_file
        self.state_interval = state_interval
        self.chain_id = chain_id
        self.block_time = block_time
        self.binary = binary or settings.anvil_binary()
        self.log_file = log_file
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--mnemonic",
            DEV_MNEMONIC,
            # Keep the states of the last blocks: without a number anvil keeps none, and a gas
            # estimate that races a new block fails with "block out of range".
            "--prune-history",
            "64",
            # No CORS headers: a web page the developer visits cannot read from or send to the
            # node's unlocked accounts through the browser (the market talks to it server-side).
            "--no-cors",
        ]
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(self.state_file), "--state-interval", str(self.state_interval)]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.log_file is None:
            cmd.append("--silent")
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> AnvilNode:
        if not self.binary.is_file():
            raise ChainUnavailable(
                f"anvil not found at {self.binary}: run `npm ci` in {settings.PROJECT_ROOT}"
            )
        if rpc_ready(self.url, timeout=0.2):
            raise ChainUnavailable(f"something already answers at {self.url}")
        if self.log_file:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                ends_with_parent() + self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # The saved chain state and the log are the owner's only.
                umask=0o077 if self.state_file is not None else -1,
            )
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while not rpc_ready(self.url, timeout=0.5):
            if self.process.poll() is not None:
                raise ChainUnavailable(
                    f"anvil exited with code {self.process.returncode}; command: "
                    + " ".join(self.command())
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ChainUnavailable(f"anvil did not answer at {self.url} within {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stops anvil cleanly (SIGTERM), so that it writes its state file."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """Stops anvil abruptly, as a crash would (no final state dump)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
