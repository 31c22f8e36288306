"""The local stack as `make run` starts it (anvil, the indexer, gunicorn), as an attacker on
the same computer or a web page in the developer's browser would see it: the data folder is
the owner's only, anvil answers no cross-site requests, only the site's own host names are
served, sign-in works under both of them, and junk sign-in messages do not stall the server.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from eth_account import Account
from eth_account.messages import encode_defunct

from escrow.anvil import DEV_MNEMONIC, AnvilNode, free_port
from webapp.stack import LocalStack

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def _umask(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^Umask:\s+(\d+)$", status, re.MULTILINE)
    assert found, "no Umask line in /proc/<pid>/status"
    return found.group(1)


def _loose(root: Path) -> list[str]:
    """Everything under ``root`` that anyone but the owner can read, write or enter."""
    paths = [root, *root.rglob("*")]
    return [
        f"{path.relative_to(root.parent)} {stat.filemode(path.stat().st_mode)}"
        for path in paths
        if not path.is_symlink() and path.stat().st_mode & 0o077
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("security") / "data"
    # Left by an older run, created with the usual umask: readable by everyone.
    (data / "uploads").mkdir(parents=True)
    (data / "uploads" / "old.png").write_bytes(b"\x89PNG")
    (data / "secret_key").write_text("0" * 64)
    for path in (data, data / "uploads", data / "uploads" / "old.png", data / "secret_key"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    with LocalStack(data, quiet=True, seed=False) as running:
        yield running


def test_the_data_folder_is_the_owners_only(stack: LocalStack) -> None:
    assert (stack.data_dir / "escrow.sqlite3").is_file()
    assert list((stack.data_dir / "deployments").glob("*.json"))
    assert _loose(stack.data_dir) == []
    # What the processes write later (uploads, evidence, chain state) is private as well.
    assert stack.web is not None and stack.indexer is not None
    assert stack.node.process is not None
    for process in (stack.web, stack.indexer, stack.node.process):
        assert _umask(process.pid) == "0077", process.args


def test_anvil_answers_no_cross_site_requests(tmp_path: Path) -> None:
    node = AnvilNode(port=free_port())
    assert "--no-cors" in node.command()
    with node:
        preflight = requests.options(
            node.url,
            headers={
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            timeout=10,
        )
        assert "access-control-allow-origin" not in {k.lower() for k in preflight.headers}
        reply = requests.post(
            node.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            headers={"Origin": "http://evil.example"},
            timeout=10,
        )
        assert reply.json()["result"]  # the market's own server-side calls still work
        assert "access-control-allow-origin" not in {k.lower() for k in reply.headers}


def test_the_stack_turns_on_what_the_app_keeps_off(stack: LocalStack) -> None:
    env = stack.env
    assert env["ESCROW_DEV_WALLET"] == "1"
    assert env["ESCROW_SITE_URL"] == stack.url
    assert env["ESCROW_TRUSTED_HOSTS"] == "127.0.0.1,localhost"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_signin_works_under_both_loopback_names(stack: LocalStack, host: str) -> None:
    """`make run` is opened as http://127.0.0.1:5000 or http://localhost:5000."""
    named = {"Host": f"{host}:{stack.web_port}"}
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/3")
    with requests.Session() as http:
        page = http.get(stack.url + "/auth/signin", headers=named, timeout=10)
        assert page.status_code == 200 and 'id="dev-account"' in page.text
        token = CSRF_META.search(page.text)
        assert token
        message = http.get(
            stack.url + "/auth/message",
            params={"address": account.address},
            headers=named,
            timeout=10,
        ).json()["message"]
        assert message.startswith(f"127.0.0.1:{stack.web_port} wants you to sign in")
        signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
        reply = http.post(
            stack.url + "/auth/verify",
            json={"message": message, "signature": signature},
            headers={**named, "X-CSRFToken": token.group(1)},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        me = http.get(stack.url + "/me", headers={**named, "Accept": "application/json"})
        assert me.status_code == 200


def test_other_host_names_are_not_served(stack: LocalStack) -> None:
    for path in ("/", "/auth/signin", "/dev-wallet/accounts"):
        reply = requests.get(
            stack.url + path, headers={"Host": f"rebound.example:{stack.web_port}"}, timeout=10
        )
        assert reply.status_code == 400, path
    assert requests.get(stack.url + "/dev-wallet/accounts", timeout=10).status_code == 200


def test_private_umask_is_given_back(tmp_path: Path) -> None:
    """Starting the stack in-process (tests, benchmarks) leaves the caller's umask alone."""
    from webapp.stack import private_umask

    before = os.umask(0o022)
    try:
        with private_umask():
            (tmp_path / "inside").write_text("x")
        (tmp_path / "after").write_text("x")
        assert stat.S_IMODE((tmp_path / "inside").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "after").stat().st_mode) == 0o644
    finally:
        os.umask(before)


def _junk_message() -> str:
    """A message-shaped text of the largest accepted length (1,000 characters)."""
    head = "127.0.0.1 wants you to sign in with your Ethereum account:\n0x" + "Ab" * 20
    return (head + "\n\nSign in: " + "a-b " * 400)[:1000]


def _post_from(source_ip: str, port: int, path: str, body: str, headers: dict[str, str]) -> int:
    """A POST from its own loopback address (so each gets its own rate-limit count)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=120, source_address=(source_ip, 0)
    )
    try:
        connection.request("POST", path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_healthz_stays_fast_while_junk_signins_arrive(stack: LocalStack) -> None:
    """20 junk sign-in messages at once against gunicorn as `make run` starts it: the server
    refuses them unread, so `/healthz` keeps answering quickly."""
    with requests.Session() as browser:
        page = browser.get(stack.url + "/auth/signin", timeout=10).text
        token = CSRF_META.search(page)
        assert token
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.get_dict().items())
        for _ in range(5):
            browser.get(stack.url + "/healthz", timeout=10)  # every worker warmed up
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": token.group(1),
        "Cookie": cookie,
    }
    body = json.dumps({"message": _junk_message(), "signature": "0x00"})
    start = threading.Barrier(21)
    statuses: list[int] = []

    def junk(n: int) -> None:
        start.wait()
        statuses.append(
            _post_from(f"127.0.9.{10 + n}", stack.web_port, "/auth/verify", body, headers)
        )

    threads = [threading.Thread(target=junk, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    latencies = []
    with requests.Session() as monitor:
        start.wait()
        for _ in range(30):
            started = time.perf_counter()
            assert monitor.get(stack.url + "/healthz", timeout=120).status_code in (200, 503)
            latencies.append((time.perf_counter() - started) * 1000)
    for thread in threads:
        thread.join(timeout=120)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"/healthz under 20 junk sign-ins: p95 {p95:.1f} ms, max {max(latencies):.1f} ms")
    assert sorted(statuses) == [400] * 20
    assert p95 < 200, f"/healthz p95 {p95:.0f} ms while junk sign-ins arrived"
