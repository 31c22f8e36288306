"""The whole local system as one object: anvil with saved state, the contracts, the migrated
database, demo data, the indexer, the keeper (which sends the contract's due timeouts), the
notifier (notifications and their e-mails, ``python -m webapp.notify``) and the production web
server.

``make run`` (scripts/run_stack.py), the browser tests and the web benchmarks all start it
the same way, so what is tested is what users run.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from eth_account import Account
from eth_account.signers.local import LocalAccount

from escrow.anvil import DEV_MNEMONIC, AnvilNode, ends_with_parent, free_port, rpc_ready
from escrow.chain import Chain, connect
from escrow.db.engine import make_engine, session_scope, upgrade
from escrow.deploy import Deployment, ensure_deployment
from escrow.errors import ChainUnavailable

BIN = Path(sys.executable).parent
#: The web instances' gunicorn settings, shared with the scaled shape (scripts/run_scaled.py).
GUNICORN_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Files the stack and its processes create are the owner's only (0600 files, 0700 folders).
PRIVATE_UMASK = 0o077
#: What the stack keeps in its data folder: made owner-only on start, also from older runs.
DATA_ENTRIES = ("chain", "deployments", "uploads", "evidence", "secret_key")
LOCAL_HOSTS = "127.0.0.1,localhost"
#: The keeper's account on the local chain: key 10 of the dev mnemonic, the first one anvil does
#: not unlock. Of the ten it unlocks, 0 is the owner and fee recipient, 1-7 are the demo's
#: sellers and buyers (``webapp.seed``), 8-9 its arbitrators: none of them may pay the keeper's
#: gas or share its nonces.
KEEPER_KEY_INDEX = 10
#: ETH the keeper's account gets on the local chain when it has less than half of it.
KEEPER_FUNDS = 10 * 10**18


def keeper_account() -> LocalAccount:
    """The local keeper's account (a public test key, never for real money)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{KEEPER_KEY_INDEX}"
    )
    return account


@contextmanager
def private_umask() -> Iterator[None]:
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def make_private(data_dir: Path, *, created: bool = False) -> None:
    """Owner-only access to the stack's own files in ``data_dir`` (database, chain state,
    deployments, uploads, evidence, secret key). The folder itself too when the stack created
    it or it is clearly the stack's (never a shared folder such as /tmp)."""
    info = data_dir.stat()
    ours = info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX
    if created or (ours and any((data_dir / name).exists() for name in DATA_ENTRIES)):
        data_dir.chmod(0o700)
    entries = [data_dir / name for name in DATA_ENTRIES]
    entries += list(data_dir.glob("escrow.sqlite3*"))
    for entry in entries:
        if entry.is_symlink() or not entry.exists():
            continue
        paths = [entry, *entry.rglob("*")] if entry.is_dir() else [entry]
        for path in paths:
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else 0o600)


class LocalStack:
    def __init__(
        self,
        data_dir: Path,
        *,
        chain_port: int | None = None,
        web_port: int | None = None,
        database_url: str | None = None,
        workers: int = 2,
        threads: int = 4,
        seed: bool = True,
        indexer_poll: float = 0.2,
        keeper: bool = True,
        keeper_poll: float = 1.0,
        notifier: bool = True,
        notify_interval: float = 1.0,
        quiet: bool = False,
        dev_wallet: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.chain_port = chain_port or free_port()
        self.web_port = web_port or free_port()
        self.database_url = database_url or f"sqlite:///{data_dir / 'escrow.sqlite3'}"
        self.workers = workers
        self.threads = threads
        self.seed = seed
        self.indexer_poll = indexer_poll
        self.run_keeper = keeper
        self.keeper_poll = keeper_poll
        self.run_notifier = notifier
        self.notify_interval = notify_interval
        self.quiet = quiet
        self.dev_wallet = dev_wallet
        self.extra_env = extra_env or {}
        self.node = AnvilNode(
            port=self.chain_port,
            state_file=data_dir / "chain" / "anvil-state.json",
            log_file=data_dir / "chain" / "anvil.log",
        )
        self.started_chain = False
        self.chain: Chain | None = None
        self.deployment: Deployment | None = None
        self.indexer: subprocess.Popen[bytes] | None = None
        self.keeper: subprocess.Popen[bytes] | None = None
        self.notifier: subprocess.Popen[bytes] | None = None
        self.web: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ESCROW_RPC_URL": self.node.url,
            "ESCROW_DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            # Loopback over plain HTTP: a Secure cookie would never come back.
            "ESCROW_INSECURE_COOKIES": "1",
            # Sign-in messages name this address; only loopback host names are served.
            "ESCROW_SITE_URL": self.url,
            "ESCROW_TRUSTED_HOSTS": LOCAL_HOSTS,
            # The dev wallet is for this local stack only; the app keeps it off otherwise.
            "ESCROW_DEV_WALLET": "1" if self.dev_wallet else "0",
            # The indexer and keeper start through the installed ``escrow`` script: they must
            # import this checkout's code (and know its migrations), whatever copy of the package
            # the environment's install points at.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
            **self.extra_env,
        }

    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def start(self) -> LocalStack:
        # Everything created while starting (database, chain state, deployments) and by the
        # processes started here (uploads, evidence) is readable by the owner only.
        with private_umask():
            try:
                return self._start()
            except BaseException:
                # A start that fails half-way (the web server not answering, a deployment
                # error, Ctrl-C) stops what it had started: no gunicorn, indexer or anvil is
                # left running without an owner.
                self.stop()
                raise

    def _start(self) -> LocalStack:
        created = not self.data_dir.exists()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        make_private(self.data_dir, created=created)
        if rpc_ready(self.node.url):
            self.log(f"using the chain already running at {self.node.url}")
        else:
            self.log(f"starting anvil at {self.node.url} (state in {self.node.state_file})")
            self.node.start()
            self.started_chain = True
        self.chain = connect(self.node.url)
        registry = self.data_dir / "deployments"
        self.deployment, created = ensure_deployment(self.chain, registry_dir=registry)
        action = "deployed" if created else "reusing"
        self.log(f"{action} escrow {self.deployment.escrow.address}")
        for older in self.deployment.previous_escrows:
            self.log(f"following older escrow v{older.version} {older.address} (funding paused)")
        upgrade(self.database_url)
        if self.seed:
            self._seed()
        env = self.env
        out = subprocess.DEVNULL if self.quiet else None
        self.indexer = subprocess.Popen(
            [*ends_with_parent(), str(BIN / "escrow"), "index", "--poll", str(self.indexer_poll)],
            env=env,
            stdout=out,
            stderr=out,
            umask=PRIVATE_UMASK,
        )
        if self.run_keeper:
            self._start_keeper(env, out)
        if self.run_notifier:
            self.notifier = subprocess.Popen(
                [
                    *ends_with_parent(),
                    sys.executable,
                    "-m",
                    "webapp.notify",
                    "--interval",
                    str(self.notify_interval),
                ],
                env=env,
                stdout=out,
                stderr=out,
                umask=PRIVATE_UMASK,
            )
        self.web = subprocess.Popen(
            [
                # Each process of the stack gets SIGTERM if the program that started it dies,
                # even by SIGKILL (escrow.anvil.ends_with_parent).
                *ends_with_parent(),
                str(BIN / "gunicorn"),
                *(["--config", str(GUNICORN_CONFIG)] if GUNICORN_CONFIG.is_file() else []),
                # One thread: gunicorn's sync worker, one connection at a time (the shared
                # settings name the thread worker for every other count).
                *(["--worker-class", "sync"] if self.threads == 1 else []),
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--graceful-timeout",
                "5",
                "--no-control-socket",
                "--access-logfile",
                "-" if not self.quiet else "/dev/null",
                "webapp:create_app()",
            ],
            env=env,
            stdout=out,
            stderr=out,
            umask=PRIVATE_UMASK,
        )
        self._wait_for_web()
        make_private(self.data_dir)
        self.log(f"market at {self.url}")
        return self

    def _start_keeper(self, env: dict[str, str], out: int | None) -> None:
        """``escrow keep`` beside the indexer, from its own funded account."""
        assert self.chain is not None
        account = keeper_account()
        if int(self.chain.w3.eth.get_balance(account.address)) < KEEPER_FUNDS // 2:
            try:
                self.chain.fund_account(account.address, KEEPER_FUNDS)  # anvil_setBalance
            except ChainUnavailable as exc:  # a node other than anvil: the keeper says it is poor
                self.log(f"could not fund the keeper's account {account.address}: {exc}")
        self.log(f"keeper sends due timeouts from {account.address}")
        self.keeper = subprocess.Popen(
            [*ends_with_parent(), str(BIN / "escrow"), "keep", "--poll", str(self.keeper_poll)],
            env={**env, "ESCROW_PRIVATE_KEY": "0x" + bytes(account.key).hex()},
            stdout=out,
            stderr=out,
            umask=PRIVATE_UMASK,
        )

    def _seed(self) -> None:
        try:
            from webapp.seed import seed_demo_data
        except ImportError:
            return
        assert self.chain is not None and self.deployment is not None
        engine = make_engine(self.database_url)
        try:
            with session_scope(engine) as session:
                if seed_demo_data(
                    session, self.deployment, self.chain, upload_dir=self.data_dir / "uploads"
                ):
                    self.log("seeded demo sellers, buyers, arbitrators and listings")
        finally:
            engine.dispose()

    def _wait_for_web(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.web is not None
            if self.web.poll() is not None:
                raise RuntimeError(f"the web server exited with {self.web.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers (503 while the indexer catches up is fine)
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"the web server did not answer at {self.url}")

    def wait_indexed(self, timeout: float = 30.0) -> None:
        """Waits until the indexer has applied every block the chain has now."""
        assert self.chain is not None and self.deployment is not None
        target = int(self.chain.w3.eth.block_number)
        engine = make_engine(self.database_url)
        from escrow.indexer.scanner import indexed_through

        addresses = [r.address.lower() for r in self.deployment.escrows]
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with session_scope(engine) as session:
                    last = indexed_through(session, self.chain.chain_id, addresses)
                if last is not None and last >= target:
                    return
                time.sleep(0.1)
        finally:
            engine.dispose()
        raise TimeoutError(f"the indexer did not reach block {target}")

    def stop(self) -> None:
        processes = (self.web, self.notifier, self.keeper, self.indexer)
        for process in processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in processes:
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.started_chain:
            self.node.stop()  # writes the state file

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
