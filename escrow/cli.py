"""The ``escrow`` command line: compile, run a local chain, deploy, demo and trade actions."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import is_address, to_checksum_address

from escrow import settings
from escrow.amounts import AmountError, parse_units
from escrow.errors import ContractRevert, EscrowError

EXIT_ERROR = 1
EXIT_USAGE = 2


@contextmanager
def progress(message: str, stream: Any = None) -> Iterator[None]:
    """Shows ``message`` with a running clock on a terminal while something slow runs."""
    stream = stream or sys.stderr
    start = time.monotonic()
    done = threading.Event()
    tty = hasattr(stream, "isatty") and stream.isatty()

    def tick() -> None:
        while not done.wait(0.2):
            stream.write(f"\r{message} … {time.monotonic() - start:4.1f} s")
            stream.flush()

    ticker = threading.Thread(target=tick, daemon=True) if tty else None
    if ticker:
        ticker.start()
    else:
        stream.write(f"{message} …\n")
    try:
        yield
    finally:
        done.set()
        if ticker:
            ticker.join()
        stream.write(f"\r{message}: done in {time.monotonic() - start:.1f} s\n")
        stream.flush()


# ------------------------------------------------------------------ shared helpers


def _connect(args: argparse.Namespace) -> Any:
    from escrow.chain import connect

    return connect(args.rpc_url or None)  # "" too means the embedded chain


def _deployment(args: argparse.Namespace, chain: Any) -> Any:
    from escrow.deploy import deploy, load_deployment

    if chain.is_tester:
        return deploy(chain)  # the embedded chain lives only as long as this command
    deployment = load_deployment(chain)
    if deployment is None:
        raise EscrowError(
            f"no live deployment on chain {chain.chain_id}: run `escrow deploy` first"
        )
    return deployment


def _sender(args: argparse.Namespace, chain: Any) -> Any:
    """``--from`` (an unlocked address or the index of a dev account) or ESCROW_PRIVATE_KEY."""
    key = settings.private_key()
    if getattr(args, "sender", None) is None:
        if key:
            return Account.from_key(key)
        raise EscrowError("say who sends: --from ADDRESS|INDEX, or set ESCROW_PRIVATE_KEY")
    value = str(args.sender)
    if value.isdigit():
        accounts = chain.accounts
        if int(value) >= len(accounts):
            raise EscrowError(f"the node has {len(accounts)} unlocked accounts, not {value}")
        return accounts[int(value)]
    if not is_address(value):
        raise EscrowError(f"--from {value!r} is neither an address nor an account index")
    return to_checksum_address(value)


def _token(value: str, deployment: Any) -> tuple[str, int]:
    """(address, decimals) for 'eth', 'usd' (the test stablecoin) or a token address."""
    from escrow.client import ETH

    lowered = value.lower()
    if lowered == "eth":
        return ETH, 18
    if lowered in ("usd", "tusd"):
        if deployment.stablecoin is None:
            raise EscrowError("this deployment has no test stablecoin")
        return deployment.stablecoin.address, 6
    if is_address(value):
        return to_checksum_address(value), 18
    raise EscrowError(f"unknown token {value!r}: use eth, usd or an address")


def _units(amount: str, decimals: int) -> int:
    try:
        return parse_units(amount, decimals)
    except AmountError as exc:
        raise EscrowError(f"amount {amount!r}: {exc}") from None


def _print_tx(result: Any, label: str) -> None:
    events = ", ".join(e.name for e in result.events) or "no events"
    print(
        f"{label}: tx {result.tx_hash} block {result.block_number} gas {result.gas_used:,} "
        f"({events})"
    )


# ------------------------------------------------------------------ commands


def cmd_compile(args: argparse.Namespace) -> int:
    from escrow.compiler import compile_contracts

    with progress("compiling contracts"):
        result = compile_contracts(force=args.force)
    state = "up to date (cached)" if result.cached else "compiled"
    for name, artifact in sorted(result.artifacts.items()):
        size = (len(artifact.deployed_bytecode) - 2) // 2
        print(f"{name:24} {size:6,} bytes  {state}")
    return 0


def cmd_chain(args: argparse.Namespace) -> int:
    from escrow.anvil import AnvilNode

    state_file = (
        Path(args.state_file)
        if args.state_file
        else (settings.data_dir() / "chain" / "anvil-state.json")
    )
    if args.fresh and state_file.exists():
        state_file.unlink()
    node = AnvilNode(
        port=args.port, host=args.host, state_file=state_file, block_time=args.block_time
    )
    with progress(f"starting anvil on {node.url} (state in {state_file})"):
        node.start()
    print(
        f"chain running at {node.url}, chain id {node.chain_id}; Ctrl-C stops it and "
        "saves its state"
    )
    try:
        assert node.process is not None
        node.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from escrow.deploy import deploy, ensure_deployment

    chain = _connect(args)
    deployer = _sender(args, chain) if (args.sender or settings.private_key()) else None
    with progress(f"deploying to chain {chain.chain_id}"):
        if args.force:
            deployment, created = (
                deploy(chain, deployer=deployer, force=True, ruling_period=args.ruling_period),
                True,
            )
        else:
            deployment, created = ensure_deployment(
                chain, deployer=deployer, ruling_period=args.ruling_period
            )
    print(
        ("deployed" if created else "already deployed (reused)") + f" on chain "
        f"{deployment.chain_id}"
    )
    print(json.dumps(deployment.to_json(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from escrow.demo import Scenarios, dev_cast

    chain = _connect(args)
    with progress("deploying" if chain.is_tester else "loading the deployment"):
        deployment = _deployment(args, chain)
    where = "embedded chain" if chain.is_tester else f"chain {chain.chain_id} at {args.rpc_url}"
    print(f"escrow {deployment.escrow.address} on the {where}\n")

    current = {"name": ""}

    def show(scenario: str, step: Any) -> None:
        if scenario != current["name"]:
            current["name"] = scenario
            print(scenario)
        print(f"    {step.actor:10} {step.action:30} gas {step.gas_used:>9,}")

    scenarios = Scenarios(deployment.client(chain), dev_cast(chain, deployment), on_step=show)
    symbols = (
        ("ETH", "tUSD")
        if args.token == "both"
        else (("ETH",) if args.token == "eth" else ("tUSD",))
    )
    runners: list[Callable[[str], Any]] = [
        scenarios.confirm,
        scenarios.ship_and_confirm,
        scenarios.release_after_inspection,
        scenarios.refund_after_deadline,
        scenarios.refund_by_seller,
        scenarios.settle,
        scenarios.dispute,
        scenarios.ruling_timeout,
    ]
    count = 0
    for symbol in symbols:
        batch = list(runners)
        if symbol != "ETH":
            batch.append(lambda s: scenarios.confirm(s, permit=True))
        for run in batch:
            result = run(symbol)
            print(
                f"    -> [{symbol}] {result.final_status.name.lower()}, total gas "
                f"{result.total_gas:,}\n"
            )
            count += 1
    print(f"{count} trade paths completed")
    return 0


def _trade_context(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    chain = _connect(args)
    deployment = _deployment(args, chain)
    return chain, deployment, deployment.client(chain)


def cmd_fund(args: argparse.Namespace) -> int:
    chain, deployment, client = _trade_context(args)
    sender = _sender(args, chain)
    token, decimals = _token(args.token, deployment)
    amount = _units(args.amount, decimals)
    if int(token, 16) != 0 and not args.no_approve:
        _print_tx(client.approve(token, amount, sender=sender), "approve")
    funded = client.fund(
        seller=args.seller,
        arbitrator=args.arbitrator,
        token=token,
        amount=amount,
        ship_by=chain.latest_timestamp() + int(args.ship_within_hours * 3600),
        inspection_period=int(args.inspection_hours * 3600),
        arbitrator_fee_bps=args.arbitrator_fee_bps,
        listing_ref=args.listing_ref.encode()[:32],
        sender=sender,
    )
    _print_tx(funded, "fund")
    print(f"trade id {funded.trade_id:#x}  (buyer, lane and funding block; decimal also works)")
    return 0


def _simple_action(method: str, label: str, *extra: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        chain, _, client = _trade_context(args)
        terms, _ = client.terms_of(args.trade_id)
        values = [getattr(args, name) for name in extra]
        result = getattr(client, method)(args.trade_id, terms, *values, sender=_sender(args, chain))
        _print_tx(result, label)
        return 0

    return run


def cmd_ship(args: argparse.Namespace) -> int:
    chain, _, client = _trade_context(args)
    terms, _ = client.terms_of(args.trade_id)
    result = client.mark_shipped(
        args.trade_id, terms, sender=_sender(args, chain), shipment_ref=args.reference.encode()[:32]
    )
    _print_tx(result, "mark shipped")
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    import hashlib

    chain, _, client = _trade_context(args)
    terms, _ = client.terms_of(args.trade_id)
    digest = (
        hashlib.sha256(Path(args.file).read_bytes()).digest()
        if args.file
        else bytes.fromhex(args.content_hash.removeprefix("0x"))
    )
    result = client.submit_evidence(
        args.trade_id, terms, args.uri, digest, sender=_sender(args, chain)
    )
    _print_tx(result, "submit evidence")
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    chain, deployment, client = _trade_context(args)
    token, _ = _token(args.token, deployment)
    _print_tx(client.withdraw(token=token, sender=_sender(args, chain)), "withdraw")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _, _, client = _trade_context(args)
    trade = client.trade(args.trade_id)
    state, terms = trade.state, trade.terms
    print(
        json.dumps(
            {
                "trade_id": f"{trade.trade_id:#x}",
                "status": state.status.name.lower(),
                "deadline": state.deadline,
                "split_proposal": (
                    {"by": state.split_proposer.name.lower(), "buyer_bps": state.proposed_buyer_bps}
                    if state.split_proposer
                    else None
                ),
                "terms": {
                    k: (str(v) if isinstance(v, int) and v > 2**53 else v)
                    for k, v in terms.__dict__.items()
                },
                "listing_ref": "0x" + trade.listing_ref.hex(),
            },
            indent=2,
        )
    )
    return 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escrow", description="Escrow for person-to-person trades on an EVM chain."
    )
    parser.add_argument(
        "--rpc-url",
        default=settings.rpc_url(),
        help="JSON-RPC URL of the chain (env ESCROW_RPC_URL); without it, "
        "an embedded chain that lives for one command",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="compile the contracts (cached by source hash)")
    p.add_argument("--force", action="store_true", help="recompile even if nothing changed")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("chain", help="run a local anvil chain whose state survives restarts")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8545)
    p.add_argument("--state-file", help="default: <data dir>/chain/anvil-state.json")
    p.add_argument(
        "--block-time", type=float, help="seconds per block (default: a block per transaction)"
    )
    p.add_argument("--fresh", action="store_true", help="forget the saved state first")
    p.set_defaults(func=cmd_chain)

    p = sub.add_parser("deploy", help="deploy the escrow (reuses a live deployment)")
    p.add_argument("--force", action="store_true", help="deploy anew over a live deployment")
    p.add_argument(
        "--ruling-period",
        type=int,
        default=7 * 24 * 3600,
        help="seconds an arbitrator has to rule (default 7 days)",
    )
    p.add_argument("--from", dest="sender", help="deployer: unlocked address or account index")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("demo", help="run every trade path and print each step's gas")
    p.add_argument("--token", choices=("eth", "usd", "both"), default="both")
    p.set_defaults(func=cmd_demo)

    def trade_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        tp = sub.add_parser(name, help=help_text)
        tp.add_argument("trade_id", type=lambda v: int(v, 0), help="trade id")
        tp.add_argument(
            "--from",
            dest="sender",
            help="sender: unlocked address or dev account index (default: ESCROW_PRIVATE_KEY)",
        )
        return tp

    p = sub.add_parser("fund", help="open and fund a trade as the buyer")
    p.add_argument("--seller", required=True)
    p.add_argument("--arbitrator", required=True)
    p.add_argument("--amount", required=True, help="in whole units, e.g. 0.25 (ETH) or 120 (USD)")
    p.add_argument("--token", default="eth", help="eth, usd or a token address")
    p.add_argument("--ship-within-hours", type=float, default=72)
    p.add_argument("--inspection-hours", type=float, default=48)
    p.add_argument("--arbitrator-fee-bps", type=int, default=0)
    p.add_argument("--listing-ref", default="")
    p.add_argument("--no-approve", action="store_true", help="the allowance is already set")
    p.add_argument("--from", dest="sender")
    p.set_defaults(func=cmd_fund)

    p = trade_parser("ship", "seller marks the trade shipped")
    p.add_argument("--reference", default="", help="tracking reference (hashed on chain)")
    p.set_defaults(func=cmd_ship)
    trade_parser("confirm", "buyer confirms receipt; seller is paid").set_defaults(
        func=_simple_action("confirm_receipt", "confirm receipt")
    )
    trade_parser("release", "release to the seller after the inspection period").set_defaults(
        func=_simple_action("release_after_inspection", "release")
    )
    trade_parser("refund", "refund the buyer after the ship-by deadline").set_defaults(
        func=_simple_action("refund_after_deadline", "refund")
    )
    trade_parser("seller-refund", "seller refunds the buyer").set_defaults(
        func=_simple_action("refund_by_seller", "seller refund")
    )
    for name, method in (
        ("propose-split", "propose_split"),
        ("accept-split", "accept_split"),
        ("rule", "rule"),
    ):
        p = trade_parser(name, f"{name.replace('-', ' ')} (buyer's share in basis points)")
        p.add_argument("buyer_bps", type=int)
        p.set_defaults(func=_simple_action(method, name, "buyer_bps"))
    trade_parser("dispute", "open a dispute").set_defaults(
        func=_simple_action("open_dispute", "open dispute")
    )
    trade_parser("resolve-timeout", "resolve a dispute nobody ruled on in time").set_defaults(
        func=_simple_action("resolve_after_ruling_timeout", "resolve after timeout")
    )
    p = trade_parser("evidence", "submit evidence (URI and the sha256 of its content)")
    p.add_argument("uri")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--file", help="hash this file's content")
    group.add_argument("--content-hash", help="0x-prefixed 32-byte hash")
    p.set_defaults(func=cmd_evidence)
    trade_parser("show", "show a trade's terms and state").set_defaults(func=cmd_show)

    p = sub.add_parser("withdraw", help="take payments credited after a failed payout")
    p.add_argument("--token", default="eth")
    p.add_argument("--from", dest="sender")
    p.set_defaults(func=cmd_withdraw)

    try:
        from escrow.indexer import commands as indexer_commands
    except ImportError:  # the indexer package is optional for the contract tools
        indexer_commands = None  # type: ignore[assignment]
    if indexer_commands is not None and hasattr(indexer_commands, "register"):
        indexer_commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "func", None) or args.handler
    try:
        return int(handler(args) or 0)
    except ContractRevert as exc:
        print(f"error: the contract refused: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except EscrowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
