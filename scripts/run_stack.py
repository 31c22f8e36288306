"""`make run`: a local chain with saved state, the contracts, the database, demo data, the
indexer, the keeper (sends the contract's due timeouts) and the web server, started together and
stopped together (Ctrl-C).

Environment: ESCROW_DATA_DIR (default ./data), ESCROW_CHAIN_PORT (8545), ESCROW_WEB_PORT (5000),
DATABASE_URL (default: SQLite in the data folder), ESCROW_SECRET_KEY (default: random per run),
ESCROW_SITE_URL (the address sign-in messages name; default http://127.0.0.1:<web port>) and
ESCROW_TRUSTED_HOSTS (host names served; default 127.0.0.1 and localhost). The dev wallet is on
(for loopback clients only); the data folder is readable by its owner only.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from escrow import settings
from escrow.db.engine import database_url
from webapp.stack import LocalStack


def main() -> int:
    stack = LocalStack(
        settings.data_dir(),
        chain_port=int(os.environ.get("ESCROW_CHAIN_PORT", "8545")),
        web_port=int(os.environ.get("ESCROW_WEB_PORT", "5000")),
        database_url=database_url(),
        indexer_poll=0.5,
        dev_wallet=True,
        extra_env={
            name: os.environ[name]
            for name in ("ESCROW_SITE_URL", "ESCROW_TRUSTED_HOSTS")
            if os.environ.get(name)
        },
    )
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
        print(f"open {stack.url} — Ctrl-C stops everything (the chain keeps its state)")
        while not stop["now"]:
            for name, process in (
                ("web server", stack.web),
                ("indexer", stack.indexer),
                ("keeper", stack.keeper),
            ):
                if process is not None and process.poll() is not None:
                    print(f"the {name} exited with {process.returncode}; stopping", file=sys.stderr)
                    stop["now"] = True
            time.sleep(0.5)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
