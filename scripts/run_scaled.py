"""`make run-scaled`: the market's production shape on one machine (docs/scaling.md).

    PostgreSQL · Redis · anvil · two indexers and two keepers (one of each active, the other
    standing by on a PostgreSQL advisory lock) · N gunicorn instances on their own ports ·
    nginx in front of them

Every web instance is stateless: sessions are signed cookies (one ESCROW_SECRET_KEY for all),
sign-in nonces and everything else live in PostgreSQL, rate-limit counters in Redis, uploaded
photos and evidence in one shared folder (on several machines: a network mount of it).

Environment: ESCROW_SCALED_DIR (default ./data/scaled), ESCROW_WEB_PORT (nginx, default 8080),
ESCROW_CHAIN_PORT (default 8546), ESCROW_WEB_INSTANCES (default 2). Ctrl-C or SIGTERM stops
everything; the chain and the database keep their state in the folder.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages

from escrow.anvil import AnvilNode, ends_with_parent, free_port, rpc_ready
from escrow.chain import Chain, connect
from escrow.db.engine import make_engine, session_scope, upgrade
from escrow.deploy import Deployment, ensure_deployment
from escrow.errors import ChainUnavailable
from escrow.settings import PROJECT_ROOT
from webapp.stack import BIN, KEEPER_FUNDS, PRIVATE_UMASK, keeper_account, private_umask

TEMPLATE = PROJECT_ROOT / "deploy" / "nginx.conf.template"
STATIC = PROJECT_ROOT / "webapp" / "static"
LOCAL_HOSTS = "127.0.0.1,localhost"


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries' folder (Debian's layout first, then PATH)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent.parent.name
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing_binaries() -> list[str]:
    """What the scaled shape needs and this machine lacks (scripts/install_system_deps.sh)."""
    missing = []
    if pg_bin() is None:
        missing.append("postgresql (initdb, postgres)")
    for name in ("nginx", "redis-server"):
        if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists():
            missing.append(name)
    return missing


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (503 while the indexer catches up is fine)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


@dataclass
class Role:
    """One long-running process of the shape, restartable by name."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    #: where the log stood when the process last started
    log_offset: int = 0

    def start(self) -> None:
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [*ends_with_parent(), *self.command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                umask=PRIVATE_UMASK,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing cleaned up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class ScaledStack:
    """PostgreSQL, Redis, anvil, 2 indexers, 2 keepers, ``instances`` gunicorns and nginx."""

    root: Path
    instances: int = 2
    workers: int = 2
    threads: int = 4
    web_port: int = 0
    chain_port: int = 0
    seed: bool = True
    quiet: bool = False
    indexer_poll: float = 0.2
    keeper_poll: float = 1.0
    roles: dict[str, Role] = field(default_factory=dict)
    chain: Chain | None = None
    deployment: Deployment | None = None
    database_url: str = ""
    redis_url: str = ""
    web_ports: list[int] = field(default_factory=list)
    node: AnvilNode | None = None
    started_chain: bool = False

    # ------------------------------------------------------------------ layout

    @property
    def shared(self) -> Path:
        """The data folder every web instance, indexer and keeper shares (ESCROW_DATA_DIR):
        uploads, evidence, the deployment record, the chain's state."""
        return self.root / "shared"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def instance_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.web_ports[index]}"

    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    # ------------------------------------------------------------------ start

    def start(self) -> ScaledStack:
        missing = missing_binaries()
        if missing:
            raise RuntimeError(
                "missing system packages: "
                + ", ".join(missing)
                + " (scripts/install_system_deps.sh)"
            )
        try:
            with private_umask():
                self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # PostgreSQL's own user must reach its folder inside
        self.shared.mkdir(exist_ok=True)
        self.shared.chmod(0o700)
        self.run_dir.mkdir(exist_ok=True)
        self.web_port = self.web_port or free_port()
        self.chain_port = self.chain_port or free_port()
        self._start_postgres()
        self._start_redis()
        self.node = AnvilNode(
            port=self.chain_port,
            state_file=self.shared / "chain" / "anvil-state.json",
            log_file=self.shared / "chain" / "anvil.log",
        )
        if rpc_ready(self.node.url):
            self.log(f"using the chain already running at {self.node.url}")
        else:
            self.node.start()
            self.started_chain = True
        self.chain = connect(self.node.url)
        self.deployment, created = ensure_deployment(
            self.chain, registry_dir=self.shared / "deployments"
        )
        self.log(f"{'deployed' if created else 'reusing'} escrow {self.deployment.escrow.address}")
        upgrade(self.database_url)
        if self.seed:
            self._seed()
        env = self.env()
        for n in (1, 2):
            self._role(
                f"indexer-{n}",
                [str(BIN / "escrow"), "index", "--leader-lock", "--poll", str(self.indexer_poll)],
                env,
            )
        self._fund_keeper()
        keeper_env = {**env, "ESCROW_PRIVATE_KEY": "0x" + bytes(keeper_account().key).hex()}
        for n in (1, 2):
            self._role(
                f"keeper-{n}",
                [str(BIN / "escrow"), "keep", "--leader-lock", "--poll", str(self.keeper_poll)],
                keeper_env,
            )
        self.web_ports = [free_port() for _ in range(self.instances)]
        for index in range(self.instances):
            self._role(f"web-{index + 1}", self.web_command(index), env)
        for index in range(self.instances):
            _wait_http(
                self.instance_url(index) + "/healthz", 60, self.roles[f"web-{index + 1}"].process
            )
        self._start_nginx()
        _wait_http(self.url + "/healthz", 30, self.roles["nginx"].process)
        self.log(
            f"market at {self.url} (nginx -> {self.instances} gunicorn instances on ports "
            f"{', '.join(map(str, self.web_ports))}; PostgreSQL, Redis, chain {self.node.url})"
        )

    def env(self) -> dict[str, str]:
        assert self.node is not None
        secret = self.shared / "secret_key"
        if not secret.exists():
            secret.write_text(secrets.token_hex(32))
        return {
            **os.environ,
            "ESCROW_RPC_URL": self.node.url,
            "ESCROW_DATA_DIR": str(self.shared),
            "DATABASE_URL": self.database_url,
            # One key for every instance: a session cookie signed by one is valid on the others.
            "ESCROW_SECRET_KEY": secret.read_text().strip(),
            "ESCROW_RATELIMIT_STORAGE": self.redis_url,
            # nginx is the one proxy in front: the client's address is its X-Forwarded-For.
            "ESCROW_PROXY_COUNT": "1",
            "ESCROW_INSECURE_COOKIES": "1",
            "ESCROW_SITE_URL": os.environ.get("ESCROW_SITE_URL") or self.url,
            "ESCROW_TRUSTED_HOSTS": os.environ.get("ESCROW_TRUSTED_HOSTS") or LOCAL_HOSTS,
            "ESCROW_DEV_WALLET": "1",
            # This checkout's code, whatever else the environment's packages point at.
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }

    def web_command(self, index: int) -> list[str]:
        return [
            str(BIN / "gunicorn"),
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--bind",
            f"127.0.0.1:{self.web_ports[index]}",
            "--config",
            str(PROJECT_ROOT / "deploy" / "gunicorn.conf.py"),
            "--no-control-socket",
            "--access-logfile",
            "/dev/null",
            "webapp:create_app()",
        ]

    def _role(self, name: str, command: list[str], env: dict[str, str]) -> Role:
        role = Role(name, command, env, self.run_dir / f"{name}.log")
        self.roles[name] = role
        role.start()
        return role

    def _start_postgres(self) -> None:
        bin_dir = pg_bin()
        assert bin_dir is not None
        data = self.root / "postgres"
        as_root = os.getuid() == 0
        owner = ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups"]
        prefix = owner if as_root else []
        sock = self.root / "pg-socket"
        sock.mkdir(exist_ok=True)
        if as_root:
            shutil.chown(sock, "postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            data.mkdir(exist_ok=True)
            if as_root:
                shutil.chown(data, "postgres", "postgres")
            self.log(f"creating the PostgreSQL cluster in {data}")
            subprocess.run(
                [
                    *prefix,
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "escrow",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
                cwd="/",
            )
        port = free_port()
        command = [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sock),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
        ]
        log_file = self.run_dir / "postgres.log"
        with open(log_file, "ab") as out:
            # Fast shutdown (SIGINT) when this program dies: rolls back open transactions.
            process = subprocess.Popen(
                ["setpriv", "--pdeathsig", "INT", *prefix[1:], "--", *command]
                if as_root
                else [*ends_with_parent(), *command],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
            )
        self.roles["postgres"] = Role("postgres", command, {}, log_file, process)
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            ).returncode
            != 0
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: see {log_file}")
            time.sleep(0.2)
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "escrow",
                "escrow",
            ],
            capture_output=True,
        )  # already there on a second start
        self.database_url = f"postgresql+psycopg://escrow@127.0.0.1:{port}/escrow"
        self.log(f"PostgreSQL at 127.0.0.1:{port} (data in {data})")

    def _start_redis(self) -> None:
        port = free_port()
        redis_dir = self.root / "redis"
        redis_dir.mkdir(exist_ok=True)
        # Rate-limit counters only: nothing worth saving to disk.
        self._role(
            "redis",
            [
                _which("redis-server"),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_dir),
            ],
            {**os.environ},
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 20
        import redis

        while True:
            try:
                redis.Redis.from_url(self.redis_url, socket_timeout=1).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("Redis did not start") from None
                time.sleep(0.1)
        self.log(f"Redis at 127.0.0.1:{port}")

    def nginx_config(self) -> str:
        user = pwd.getpwuid(os.getuid())
        servers = "\n".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;"
            for port in self.web_ports
        )
        return (
            TEMPLATE.read_text()
            .replace("@@USER@@", f"user {user.pw_name};" if os.getuid() == 0 else "")
            .replace("@@RUN@@", str(self.run_dir))
            .replace("@@SERVERS@@", servers)
            .replace("@@PORT@@", str(self.web_port))
            .replace("@@STATIC@@", str(STATIC))
        )

    def _start_nginx(self) -> None:
        config = self.run_dir / "nginx.conf"
        config.write_text(self.nginx_config())
        nginx = _which("nginx")
        check = subprocess.run(
            [
                nginx,
                "-t",
                "-p",
                str(self.run_dir),
                "-e",
                str(self.run_dir / "nginx-error.log"),
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused its configuration: {check.stderr}")
        self._role(
            "nginx",
            [
                nginx,
                "-p",
                str(self.run_dir),
                "-e",
                str(self.run_dir / "nginx-error.log"),
                "-c",
                str(config),
            ],
            {**os.environ},
        )

    def _fund_keeper(self) -> None:
        assert self.chain is not None
        account = keeper_account()
        if int(self.chain.w3.eth.get_balance(account.address)) < KEEPER_FUNDS // 2:
            try:
                self.chain.fund_account(account.address, KEEPER_FUNDS)
            except ChainUnavailable as exc:
                self.log(f"could not fund the keeper's account {account.address}: {exc}")

    def _seed(self) -> None:
        from webapp.seed import seed_demo_data

        assert self.chain is not None and self.deployment is not None
        engine = make_engine(self.database_url)
        try:
            with session_scope(engine) as session:
                if seed_demo_data(
                    session, self.deployment, self.chain, upload_dir=self.shared / "uploads"
                ):
                    self.log("seeded demo sellers, buyers, arbitrators and listings")
        finally:
            engine.dispose()

    # ------------------------------------------------------------------ faults and checks

    def restart(self, name: str) -> None:
        role = self.roles[name]
        role.stop()
        role.restarts += 1
        role.start()

    def since_start(self, name: str) -> str:
        """What a process logged since it was last started."""
        role = self.roles[name]
        with open(role.log, "rb") as log:
            log.seek(role.log_offset)
            return log.read().decode(errors="replace")

    def active(self, role: str) -> list[str]:
        """Names of the live ``role`` processes ("indexer", "keeper") whose last word since
        their last start is that they became active."""
        found = []
        for name, entry in self.roles.items():
            if name.startswith(role + "-") and entry.alive():
                text = self.since_start(name)
                if text.rfind("became active") > text.rfind("waiting for the lock"):
                    found.append(name)
        return found

    def standing_by(self, role: str) -> list[str]:
        """Names of the live ``role`` processes waiting for the lock."""
        found = []
        for name, entry in self.roles.items():
            if name.startswith(role + "-") and entry.alive():
                text = self.since_start(name)
                if text.rfind("waiting for the lock") > text.rfind("became active"):
                    found.append(name)
        return found

    def dead(self) -> list[str]:
        return [name for name, role in self.roles.items() if not role.alive()]

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        order = [
            "nginx",
            *[n for n in self.roles if n.startswith("web-")],
            *[n for n in self.roles if n.startswith(("keeper-", "indexer-"))],
        ]
        order = [name for name in order if name in self.roles]
        for name in order:
            role = self.roles[name]
            if role.alive():
                assert role.process is not None
                role.process.terminate()
        for name in order:
            self.roles[name].stop()
        if self.node is not None and self.started_chain:
            self.node.stop()
        if "redis" in self.roles:
            self.roles["redis"].stop()
        if "postgres" in self.roles:
            self.roles["postgres"].stop(signal.SIGINT, timeout=30)

    def __enter__(self) -> ScaledStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    stack = ScaledStack(
        Path(os.environ.get("ESCROW_SCALED_DIR") or PROJECT_ROOT / "data" / "scaled"),
        instances=int(os.environ.get("ESCROW_WEB_INSTANCES", "2")),
        web_port=int(os.environ.get("ESCROW_WEB_PORT", "8080")),
        chain_port=int(os.environ.get("ESCROW_CHAIN_PORT", "8546")),
    )
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
        print(f"open {stack.url} — Ctrl-C stops everything (chain and database keep their state)")
        print(f"logs in {stack.run_dir}")
        while not stop["now"]:
            for name in stack.dead():
                if name in ("postgres", "redis", "nginx"):
                    print(f"{name} exited; stopping", file=sys.stderr)
                    return 1
                print(f"{name} exited; restarting it", file=sys.stderr)
                stack.restart(name)
            time.sleep(1.0)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
