"""`make run`: a local chain with persistent state, the contracts, the database, the indexer
and the web server, started together and stopped together (Ctrl-C).

Environment: ESCROW_DATA_DIR (default ./data), ESCROW_CHAIN_PORT (8545), ESCROW_WEB_PORT (5000),
DATABASE_URL (default: SQLite in the data folder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from escrow import settings
from escrow.anvil import AnvilNode, rpc_ready
from escrow.chain import connect
from escrow.db.engine import database_url, upgrade
from escrow.deploy import ensure_deployment

BIN = Path(sys.executable).parent


def main() -> int:
    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    chain_port = int(os.environ.get("ESCROW_CHAIN_PORT", "8545"))
    web_port = int(os.environ.get("ESCROW_WEB_PORT", "5000"))
    node = AnvilNode(port=chain_port, state_file=data / "chain" / "anvil-state.json",
                     log_file=data / "chain" / "anvil.log")
    started_chain = False
    if rpc_ready(node.url):
        print(f"using the chain already running at {node.url}")
    else:
        print(f"starting anvil at {node.url} (state in {node.state_file})")
        node.start()
        started_chain = True
    children: list[subprocess.Popen[bytes]] = []
    try:
        chain = connect(node.url)
        deployment, created = ensure_deployment(chain)
        print(("deployed" if created else "reusing") + f" escrow {deployment.escrow.address}")
        upgrade(database_url())
        print(f"database ready: {database_url()}")
        env = {**os.environ, "ESCROW_RPC_URL": node.url}
        children.append(subprocess.Popen(
            [str(BIN / "escrow"), "index", "--poll", "0.5"], env=env))
        children.append(subprocess.Popen(
            [str(BIN / "gunicorn"), "--workers", "2", "--threads", "4",
             "--bind", f"127.0.0.1:{web_port}", "--access-logfile", "-",
             "webapp:create_app()"], env=env))
        print(f"market at http://127.0.0.1:{web_port} — Ctrl-C stops everything")
        stop = {"now": False}

        def request_stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        while not stop["now"]:
            for child in children:
                if child.poll() is not None:
                    print(f"{child.args[0]} exited with {child.returncode}; stopping",
                          file=sys.stderr)
                    stop["now"] = True
            time.sleep(0.5)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if started_chain:
            node.stop()  # writes the state file


if __name__ == "__main__":
    sys.exit(main())
