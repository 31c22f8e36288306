"""The ``escrow`` command line: compile, run a local chain, deploy, demo and trade actions.

Every error is one line on stderr (``escrow fund: error: ...``), never a traceback; ``--debug``
(or ``ESCROW_DEBUG=1``) prints the traceback before that line. The exit status says whose move
it is:

* 2, a usage error: what was typed is wrong and the message says what to write instead. A
  malformed address, amount, trade id, share, hash or number; an account index the node does
  not have; no sender (neither ``--from`` nor ``ESCROW_PRIVATE_KEY``) or a key that is not one;
  a file that cannot be read. argparse's own errors have status 2 as well.
* 1, refused or failed: the command was well formed but could not be done. The node is down or
  answered with an error, there is no deployment, no such trade, or the contract reverted (the
  message names its custom error and puts it in words); anything unexpected. ``escrow audit``
  also exits 1 when an escrow's books do not balance (a shortfall or a mismatch).

``escrow audit`` exits 2 as well when the node no longer has the logs it needs (pruned or
missing history): the message names the first block it could not read.

Commands that act on a trade find the escrow contract the trade lives in (its ``TradeFunded``
log) among every escrow of the deployment, so trades of an older contract version stay
finishable after an upgrade; new trades go to the current escrow.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

from eth_account import Account
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from escrow import settings
from escrow.amounts import AmountError, parse_units
from escrow.errors import CompilationFailed, ContractRevert, DeploymentError, EscrowError

EXIT_ERROR = 1  # refused or failed
EXIT_USAGE = 2  # what was typed is wrong (argparse's status too)
EXIT_INTERRUPTED = 130

MAX_BPS = 10_000
MAX_HOURS = 1_000_000  # about 114 years: keeps the seconds inside the contract's integers
MAX_UINT32 = 2**32 - 1
MAX_MESSAGE = 600  # characters of one error line
MIN_INSPECTION_HOURS = 24  # the contract's minimum inspection period (MIN_INSPECTION_PERIOD)
DEFAULT_DELIVERY_DAYS = 10
MAX_DELIVERY_DAYS = 60  # the contract's MAX_DELIVERY_WINDOW
MAX_EXTENSION_DAYS = 7  # the contract's MAX_EXTENSION_DAYS


class UsageError(EscrowError):
    """What was typed is wrong (exit status 2); the message says what to write instead."""


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
    finished = False
    try:
        yield
        finished = True
    finally:
        done.set()
        if ticker:
            ticker.join()
        outcome = "done in" if finished else "failed after"
        stream.write(f"\r{message}: {outcome} {time.monotonic() - start:.1f} s\n")
        stream.flush()


# ------------------------------------------------------------------ argument types
# Each checks the form of one value while the command line is parsed, so a typo is reported
# (status 2) before anything connects to a chain.


def account_arg(text: str) -> str:
    """An address (checksummed) or a dev account index (decimal digits, kept as text).

    An address in mixed case must carry a valid EIP-55 checksum: a typo in it is refused
    rather than sent money to.
    """
    value = text.strip()
    if value.isascii() and value.isdigit() and len(value) < 40:
        return str(int(value))
    if not is_hex_address(value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an address (0x and 40 hex digits) nor a dev account index"
        )
    prefixed = value if value[:2].lower() == "0x" else "0x" + value
    body = prefixed[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(prefixed):
        raise argparse.ArgumentTypeError(
            f"{text!r} is in mixed case but its checksum is wrong: check it for a typo "
            "(or write it all in lower case)"
        )
    return to_checksum_address(prefixed)


def trade_id_arg(text: str) -> int:
    """A trade id in hex as the commands print it (``0x…``) or in decimal."""
    value = text.strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", value):
        trade_id = int(value, 16)
    elif value.isascii() and value.isdigit():
        trade_id = int(value)
    else:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a trade id: write it in hex as `escrow fund` prints it (0x…) "
            "or in decimal"
        )
    if trade_id == 0:
        raise argparse.ArgumentTypeError("0 is not a trade id")
    if trade_id >= 2**256:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than 256 bits: not a trade id")
    return trade_id


_PERCENT = re.compile(r"([0-9]+)(?:[.,]([0-9]+))?\s*%")


def share_arg(text: str) -> int:
    """A share in basis points (0-10000) or as a percentage (``62.5%``); returns basis points."""
    value = text.strip()
    percent = _PERCENT.fullmatch(value)
    if percent:
        bps = Decimal(f"{percent[1]}.{percent[2] or 0}") * 100
        if bps != bps.to_integral_value():
            raise argparse.ArgumentTypeError(
                f"{text!r} is finer than the contract's unit, 0.01 % (one basis point)"
            )
        shown = f"{text!r} ({int(bps)} basis points)"
    elif value.isascii() and value.isdigit():
        bps = Decimal(int(value))
        shown = f"{text!r} basis points"
    else:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a share: give basis points from 0 to 10000 (2500 is 25 %) "
            "or a percentage (25%)"
        )
    if bps > MAX_BPS:
        raise argparse.ArgumentTypeError(f"{shown} is more than 100 % (10000 basis points)")
    return int(bps)


def token_arg(text: str) -> str:
    """``eth``, ``usd``/``kzt`` (the test stablecoins) or a token address."""
    value = text.strip()
    if value.lower() in ("eth", "usd", "tusd", "kzt", "tkzt"):
        return value.lower()
    try:
        address = account_arg(value)
    except argparse.ArgumentTypeError:
        address = ""
    if not address.startswith("0x"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a token: use eth, usd or a token address"
        )
    return address


def hours_arg(*, allow_zero: bool, minimum: float = 0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            hours = float(text)
        except ValueError:
            hours = math.nan
        if not math.isfinite(hours) or hours < 0 or (hours == 0 and not allow_zero):
            floor = "0 or more" if allow_zero else "more than 0"
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours ({floor})")
        if hours < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} hours is less than the contract's minimum of {minimum:g} hours"
            )
        if hours > MAX_HOURS:
            raise argparse.ArgumentTypeError(f"{text!r} hours is more than {MAX_HOURS:,}")
        return hours

    parse.__name__ = "hours"
    return parse


def int_range_arg(low: int, high: int, unit: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = text.strip()
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number of {unit} from {low} to {high:,}"
            )
        return int(value)

    parse.__name__ = unit
    return parse


def positive_seconds_arg(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (more than 0)")
    return seconds


def address_arg(text: str) -> str:
    """An address only (no dev account index): a contract such as an escrow."""
    value = account_arg(text)
    if not value.startswith("0x"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an address (0x and 40 hex digits)")
    return value


def bytes32_text_arg(text: str) -> bytes:
    """Text stored in a bytes32 field of the contract: at most 32 bytes of UTF-8."""
    raw = text.encode()
    if len(raw) > 32:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {len(raw)} bytes in UTF-8; the contract keeps at most 32"
        )
    return raw


def hash_arg(text: str) -> bytes:
    """A 32-byte hash: 64 hex digits, 0x-prefixed or not."""
    value = text.strip()
    value = value[2:] if value[:2].lower() == "0x" else value
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 32-byte hash (0x and 64 hex digits)")
    return bytes.fromhex(value)


# ------------------------------------------------------------------ shared helpers


def _connect(args: argparse.Namespace) -> Any:
    from escrow.chain import connect

    url = args.rpc_url or None  # "" too means the embedded chain
    if url is not None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(
                f"--rpc-url {url!r} (or ESCROW_RPC_URL) is not an http:// or https:// URL"
            )
    return connect(url)


def _load_deployment(chain: Any) -> Any:
    """The recorded live deployment or None; an unreadable record is an error that says so."""
    from escrow.deploy import load_deployment, registry_path

    try:
        return load_deployment(chain)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSONDecodeError too
        raise DeploymentError(
            f"the deployment record {registry_path(chain.chain_id)} cannot be read "
            f"({exc.__class__.__name__}: {exc}); `escrow deploy --force` records a new one"
        ) from exc


def _deployment(args: argparse.Namespace, chain: Any) -> Any:
    from escrow.deploy import deploy

    if chain.is_tester:
        return deploy(chain)  # the embedded chain lives only as long as this command
    deployment = _load_deployment(chain)
    if deployment is None:
        raise DeploymentError(
            f"no live deployment on chain {chain.chain_id}: run `escrow deploy` first"
        )
    return deployment


def _account(value: str, chain: Any, option: str) -> str:
    """An address as given, or the node's unlocked account at an index.

    The indexes are those of ``eth_accounts``: the embedded chain's ten accounts, or the ten
    dev accounts anvil unlocks (``escrow chain``), the same list ``--from`` indexes into.
    """
    if value.startswith("0x"):
        return value
    accounts = chain.accounts
    if not accounts:
        raise UsageError(
            f"{option} {value}: the node has no unlocked accounts, so no index works; "
            "give an address"
        )
    if int(value) >= len(accounts):
        raise UsageError(
            f"{option} {value}: the node has {len(accounts)} unlocked accounts, "
            f"indexes 0 to {len(accounts) - 1}"
        )
    return str(accounts[int(value)])


def _sender(args: argparse.Namespace, chain: Any) -> Any:
    """``--from`` (an unlocked address or the index of a dev account) or ESCROW_PRIVATE_KEY."""
    value = getattr(args, "sender", None)
    if value is None:
        key = settings.private_key()
        if not key:
            raise UsageError("say who sends: --from ADDRESS|INDEX, or set ESCROW_PRIVATE_KEY")
        try:
            return Account.from_key(key)
        except (ValueError, TypeError):  # binascii.Error is a ValueError; never show the key
            raise UsageError(
                "ESCROW_PRIVATE_KEY is not a private key (64 hex digits, 0x-prefixed or not)"
            ) from None
    address = _account(value, chain, "--from")
    if chain.is_tester and address not in chain.accounts:
        raise UsageError(
            f"--from {value}: the embedded chain signs only for its own accounts; "
            f"give an index from 0 to {len(chain.accounts) - 1}"
        )
    return address


def _decimals(token: str) -> int:
    """Decimals of a token as named on the command line (a token address is taken as 18)."""
    return 6 if token in ("usd", "tusd") else 18


def _token(value: str, deployment: Any) -> str:
    """The address of 'eth', 'usd'/'kzt' (the test stablecoins) or a token address."""
    from escrow.client import ETH

    if value == "eth":
        return ETH
    if value in ("usd", "tusd"):
        if deployment.stablecoin is None:
            raise DeploymentError("this deployment has no test stablecoin")
        return str(deployment.stablecoin.address)
    if value in ("kzt", "tkzt"):
        if deployment.tenge is None:
            raise DeploymentError("this deployment has no test tenge token")
        return str(deployment.tenge.address)
    return value


def _units(amount: str, decimals: int) -> int:
    try:
        return parse_units(amount, decimals)
    except AmountError as exc:
        raise UsageError(f"--amount {amount!r}: {exc}") from None


def _print_tx(result: Any, label: str) -> None:
    events = ", ".join(e.name for e in result.events) or "no events"
    print(
        f"{label}: tx {result.tx_hash} block {result.block_number} gas {result.gas_used:,} "
        f"({events})"
    )


# ------------------------------------------------------------------ error messages


def _when(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"timestamp {timestamp}"


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g} hours"


def _pct(bps: int) -> str:
    return f"{bps / 100:g} % ({bps} basis points)"


def _status(value: int) -> str:
    from escrow.client import Status

    try:
        return Status(value).name.lower()
    except ValueError:
        return f"status {value}"


def _asset(token: str) -> str:
    return "ETH" if int(token, 16) == 0 else f"token {token}"


# One sentence per custom error of the contracts (escrow/errors.py), from its arguments.
_REVERT_WORDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "ZeroAmount": lambda a: "the amount (or period) is zero",
    "AmountTooLarge": lambda a: (
        f"the amount {a['amount']:,} is above the maximum of {a['maxAmount']:,} "
        "(in the token's smallest units)"
    ),
    "FundingPaused": lambda a: "the owner has paused new trades",
    "ZeroAddress": lambda a: "an address is the zero address",
    "SellerIsBuyer": lambda a: f"the seller {a['account']} is also the buyer",
    "ArbitratorIsParty": lambda a: f"the arbitrator {a['arbitrator']} is the buyer or the seller",
    "EscrowCannotBeParty": lambda a: "the escrow contract itself cannot take part in a trade",
    "UnknownTrade": lambda a: f"there is no trade {a['tradeId']:#x}",
    "LaneBusy": lambda a: (
        f"lane {a['lane']} of buyer {a['buyer']} holds an open trade or one that ended in "
        "this block; try again"
    ),
    "TermsMismatch": lambda a: (
        f"trade {a['tradeId']:#x} no longer matches its terms: a later trade uses its lane"
    ),
    "InvalidBps": lambda a: f"{a['bps']} basis points is more than 100 %",
    "ArbitratorNotRegistered": lambda a: f"{a['arbitrator']} is not a registered arbitrator",
    "ArbitratorFeeTooHigh": lambda a: (
        f"an arbitrator fee of {_pct(a['feeBps'])} is above the cap of {_pct(a['maxFeeBps'])}"
    ),
    "PlatformFeeTooHigh": lambda a: (
        f"a platform fee of {_pct(a['feeBps'])} is above the cap of {_pct(a['maxFeeBps'])}"
    ),
    "DeadlineInPast": lambda a: (
        f"the ship-by time {_when(a['deadline'])} is not after the chain's time "
        f"{_when(a['nowTime'])}"
    ),
    "DeadlineTooFar": lambda a: (
        f"the ship-by time {_when(a['deadline'])} is after the latest allowed, {_when(a['latest'])}"
    ),
    "InspectionPeriodTooLong": lambda a: (
        f"an inspection period of {_hours(a['period'])} is longer than the maximum of "
        f"{_hours(a['maxPeriod'])}"
    ),
    "InspectionPeriodTooShort": lambda a: (
        f"an inspection period of {_hours(a['period'])} is shorter than the minimum of "
        f"{_hours(a['minPeriod'])}"
    ),
    "DeliveryWindowTooLong": lambda a: (
        f"a delivery window of {_hours(a['window'])} is longer than the maximum of "
        f"{_hours(a['maxWindow'])}"
    ),
    "PlatformFeeAboveLimit": lambda a: (
        f"the platform fee in force, {_pct(a['feeBps'])}, is above the {_pct(a['maxFeeBps'])} "
        "you accepted (--max-fee-bps)"
    ),
    "EvidenceUriTooLong": lambda a: (
        f"the evidence URI is {a['length']:,} bytes; the contract takes at most {a['maxLength']:,}"
    ),
    "InspectionAlreadyStarted": lambda a: (
        f"trade {a['tradeId']:#x}: the inspection has already started (the item was marked "
        "received or the delivery window is over)"
    ),
    "ExtensionAlreadyRequested": lambda a: (
        f"trade {a['tradeId']:#x}: the buyer has already asked for its one extension"
    ),
    "InvalidExtension": lambda a: (
        f"an extension of {a['extraDays']} days is not allowed: 1 to {a['maxDays']} days"
    ),
    "NoExtensionRequested": lambda a: (
        f"trade {a['tradeId']:#x}: no extension request is waiting for the seller"
    ),
    "NoProposalToCancel": lambda a: (
        f"trade {a['tradeId']:#x}: you have no open split proposal to cancel"
    ),
    "InvalidStatus": lambda a: (
        f"trade {a['tradeId']:#x} is {_status(a['status'])}, which does not allow this"
    ),
    "NotBuyer": lambda a: f"only the trade's buyer may do this, and {a['caller']} is not the buyer",
    "NotSeller": lambda a: (
        f"only the trade's seller may do this, and {a['caller']} is not the seller"
    ),
    "NotArbitrator": lambda a: (
        f"only the trade's arbitrator may do this, and {a['caller']} is not its arbitrator"
    ),
    "NotParty": lambda a: f"only the buyer or the seller may do this, and {a['caller']} is neither",
    "NotPartyOrArbitrator": lambda a: (
        f"only the buyer, the seller or the arbitrator may do this, and {a['caller']} is none "
        "of them"
    ),
    "DeadlineNotReached": lambda a: (
        f"trade {a['tradeId']:#x}: this is allowed only after {_when(a['deadline'])}"
    ),
    "DeadlinePassed": lambda a: (
        f"trade {a['tradeId']:#x}: the time for this ended at {_when(a['deadline'])}"
    ),
    "NoMatchingProposal": lambda a: (
        f"trade {a['tradeId']:#x}: the other party has not proposed {_pct(a['buyerBps'])} "
        "for the buyer"
    ),
    "WrongPayment": lambda a: f"{a['sent']:,} wei were sent but the trade needs {a['expected']:,}",
    "TokenNotAllowed": lambda a: f"token {a['token']} is not allowed for trades",
    "FeeOnTransferToken": lambda a: (
        f"token {a['token']} delivered {a['received']:,} of {a['expected']:,} units; "
        "tokens that take a fee on transfer cannot be used"
    ),
    "NothingToWithdraw": lambda a: f"no {_asset(a['token'])} is credited to {a['payee']}",
    "NotFeeRecipient": lambda a: (
        f"only the fee recipient or the owner may do this, and {a['caller']} is neither"
    ),
    "TransferFailed": lambda a: (
        f"a transfer of {a['amount']:,} units of {_asset(a['token'])} to {a['to']} failed"
    ),
    "ReentrancyGuardReentrantCall": lambda a: "a re-entrant call was refused",
    "OwnableUnauthorizedAccount": lambda a: (
        f"only the owner may do this, and {a['account']} is not the owner"
    ),
    "OwnableInvalidOwner": lambda a: f"{a['owner']} cannot be the owner",
    "SafeERC20FailedOperation": lambda a: f"a transfer of token {a['token']} failed",
    "ERC20InsufficientBalance": lambda a: (
        f"{a['sender']} holds {a['balance']:,} of the token's smallest units and "
        f"{a['needed']:,} are needed"
    ),
    "ERC20InsufficientAllowance": lambda a: (
        f"the escrow may take {a['allowance']:,} of the token's smallest units and needs "
        f"{a['needed']:,}: approve it first (without --no-approve)"
    ),
    "ERC2612ExpiredSignature": lambda a: f"the permit expired at {_when(a['deadline'])}",
    "ERC2612InvalidSigner": lambda a: (
        f"the permit was signed by {a['signer']}, not by the owner {a['owner']}"
    ),
}


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def describe_revert(exc: ContractRevert) -> str:
    """``the contract refused (NotBuyer): only the trade's buyer may do this, and 0x… is not``."""
    name = exc.error_name or type(exc).__name__
    words = _REVERT_WORDS.get(name)
    if words is not None:
        try:
            return f"the contract refused ({name}): {words(exc.args_by_name)}"
        except (KeyError, TypeError, ValueError):
            pass  # arguments other than expected: the plain form below
    shown = ", ".join(f"{k}={_shown(v)}" for k, v in exc.args_by_name.items())
    doc = (type(exc).__doc__ or "").strip()
    sentence = f": {doc[0].lower()}{doc[1:].rstrip('.')}" if doc and "\n" not in doc else ""
    return f"the contract refused with {name}({shown}){sentence}"


def _one_line(text: str) -> str:
    """The first line of a message (noting what is left out), at most MAX_MESSAGE long."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    line = " ".join(lines[0].split())
    if len(line) > MAX_MESSAGE:
        line = line[: MAX_MESSAGE - 1] + "…"
    if len(lines) > 1:
        line += f" (and {len(lines) - 1} more lines: --debug shows them)"
    return line


def explain(exc: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) for an exception that ended a command."""
    import requests
    from eth_utils import ValidationError
    from web3.exceptions import Web3Exception, Web3RPCError

    from escrow.audit import HistoryUnavailable

    if isinstance(exc, UsageError | HistoryUnavailable):
        return EXIT_USAGE, _one_line(str(exc))
    if isinstance(exc, ContractRevert):
        return EXIT_ERROR, _one_line(describe_revert(exc))
    if isinstance(exc, CompilationFailed):
        return EXIT_ERROR, "the compiler rejected the sources: " + _one_line(str(exc))
    if isinstance(exc, EscrowError):
        return EXIT_ERROR, _one_line(str(exc))
    if isinstance(exc, requests.RequestException | ConnectionError):
        return EXIT_ERROR, _one_line(
            f"the chain node stopped answering ({exc.__class__.__name__}): {exc}"
        )
    if isinstance(exc, Web3RPCError):
        message = exc.rpc_response.get("error", {}) if exc.rpc_response else {}
        text = message.get("message") if isinstance(message, dict) else None
        return EXIT_ERROR, _one_line(f"the chain node refused: {text or exc}")
    if isinstance(exc, Web3Exception):
        return EXIT_ERROR, _one_line(f"the chain node refused: {exc}")
    if isinstance(exc, ValidationError):  # the embedded chain's refusals (e.g. no funds)
        return EXIT_ERROR, _one_line(f"the embedded chain refused: {exc}")
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return EXIT_ERROR, _one_line(f"{exc.strerror}{where}")
    return EXIT_ERROR, _one_line(
        f"unexpected {exc.__class__.__name__}: {exc} (--debug shows the traceback)"
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
    from escrow.deploy import deploy

    chain = _connect(args)
    deployer = _sender(args, chain) if (args.sender or settings.private_key()) else None
    existing = None if args.force else _load_deployment(chain)
    if existing is not None:
        deployment, created = existing, False
    else:
        with progress(f"deploying to chain {chain.chain_id}"):
            deployment = deploy(
                chain, deployer=deployer, force=True, ruling_period=args.ruling_period
            )
        created = True
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


def _trade_client(chain: Any, deployment: Any, trade_id: int) -> tuple[Any, Any]:
    """(client, terms) of the escrow a trade lives in: the one holding its TradeFunded log.

    A deployment keeps its older escrows (``previous_escrows``) after an upgrade; their
    trades stay finishable through the contract version they were funded in.
    """
    from escrow.client import funding_block
    from escrow.errors import UnknownTrade

    block, head = funding_block(trade_id), int(chain.w3.eth.block_number)
    if block > head:
        raise EscrowError(
            f"there is no trade {trade_id:#x}: its funding block {block:,} is after the "
            f"chain's latest block {head:,}"
        )
    records = list(getattr(deployment, "escrows", None) or [deployment.escrow])
    for record in records:
        if int(getattr(record, "block_number", 0)) > block:
            continue  # deployed after the trade's funding block: it cannot hold it
        client = deployment.client_for(chain, record.address)
        try:
            terms, _ = client.terms_of(trade_id)
        except UnknownTrade:
            continue
        return client, terms
    raise UnknownTrade(tradeId=trade_id)


def _trade_context(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """(chain, client, sender, terms) of a trade action; the sender is checked first."""
    chain = _connect(args)
    sender = _sender(args, chain)
    client, terms = _trade_client(chain, _deployment(args, chain), args.trade_id)
    return chain, client, sender, terms


def _require_v2(client: Any, trade_id: int, what: str) -> None:
    if client.version < 2:
        raise EscrowError(
            f"trade {trade_id:#x} lives in the version 1 escrow {client.address}, which has "
            f"no {what}"
        )


def cmd_fund(args: argparse.Namespace) -> int:
    amount = _units(args.amount, _decimals(args.token))
    chain = _connect(args)
    sender = _sender(args, chain)
    seller = _account(args.seller, chain, "--seller")
    arbitrator = _account(args.arbitrator, chain, "--arbitrator")
    deployment = _deployment(args, chain)
    client = deployment.client(chain)
    token = _token(args.token, deployment)
    _, fee_in_force = client.platform_fee()
    cap = fee_in_force if args.max_fee_bps is None else args.max_fee_bps
    print(f"platform fee in force {_pct(fee_in_force)}; accepting at most {_pct(cap)}")
    if int(token, 16) != 0 and not args.no_approve:
        _print_tx(client.approve(token, amount, sender=sender), "approve")
    funded = client.fund(
        seller=seller,
        arbitrator=arbitrator,
        token=token,
        amount=amount,
        ship_by=chain.latest_timestamp() + int(args.ship_within_hours * 3600),
        inspection_period=int(args.inspection_hours * 3600),
        delivery_window=args.delivery_days * 24 * 3600,
        max_platform_fee_bps=cap,
        arbitrator_fee_bps=args.arbitrator_fee_bps,
        listing_ref=args.listing_ref,
        sender=sender,
    )
    _print_tx(funded, "fund")
    print(f"trade id {funded.trade_id:#x}  (buyer, lane and funding block; decimal also works)")
    return 0


def _simple_action(
    method: str, label: str, *extra: str, v2: str | None = None
) -> Callable[[argparse.Namespace], int]:
    """A trade action whose arguments are the trade and ``extra`` options; ``v2`` names what
    a version 1 escrow lacks when only version 2 has the action."""

    def run(args: argparse.Namespace) -> int:
        _, client, sender, terms = _trade_context(args)
        if v2 is not None:
            _require_v2(client, args.trade_id, v2)
        values = [getattr(args, name) for name in extra]
        result = getattr(client, method)(args.trade_id, terms, *values, sender=sender)
        _print_tx(result, label)
        return 0

    return run


def cmd_ship(args: argparse.Namespace) -> int:
    _, client, sender, terms = _trade_context(args)
    result = client.mark_shipped(args.trade_id, terms, sender=sender, shipment_ref=args.reference)
    _print_tx(result, "mark shipped")
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    import hashlib

    if args.file:
        try:
            digest = hashlib.sha256(Path(args.file).read_bytes()).digest()
        except OSError as exc:
            raise UsageError(f"--file {args.file}: {exc.strerror or exc}") from None
    else:
        digest = args.content_hash
    _, client, sender, terms = _trade_context(args)
    result = client.submit_evidence(args.trade_id, terms, args.uri, digest, sender=sender)
    _print_tx(result, "submit evidence")
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    """Takes the sender's credits from every escrow of the deployment that holds some."""
    from escrow.transactions import sender_address

    chain = _connect(args)
    sender = _sender(args, chain)
    to = _account(args.to, chain, "--to") if args.to else None
    deployment = _deployment(args, chain)
    token = _token(args.token, deployment)
    payee = sender_address(sender)
    records = list(getattr(deployment, "escrows", None) or [deployment.escrow])
    clients = [deployment.client_for(chain, record.address) for record in records]
    holding = [c for c in clients if c.credits(payee, token) > 0]
    if not holding:
        holding = clients[:1]  # the current escrow answers why (NothingToWithdraw)
    if to is not None:
        for client in holding:
            if client.version < 2:
                raise EscrowError(
                    f"the credit in the version 1 escrow {client.address} can be withdrawn "
                    "only to the payee itself: run without --to"
                )
    for client in holding:
        if to is None:
            result = client.withdraw(token=token, sender=sender)
        else:
            result = client.withdraw_to(to, token=token, sender=sender)
        label = "withdraw" if to is None else f"withdraw to {to}"
        if len(clients) > 1:
            label += f" from escrow {client.address} (v{client.version})"
        _print_tx(result, label)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    chain = _connect(args)
    client, _ = _trade_client(chain, _deployment(args, chain), args.trade_id)
    trade = client.trade(args.trade_id)
    state, terms = trade.state, trade.terms
    shown: dict[str, Any] = {
        "trade_id": f"{trade.trade_id:#x}",
        "escrow": client.address,
        "escrow_version": client.version,
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
    }
    if client.version >= 2:
        view = client.trade_view(args.trade_id, terms)
        shown["inspection_started"] = view.inspection_started
        shown["extension"] = {"days": view.extension_days, "granted": view.extension_granted}
    print(json.dumps(shown, indent=2))
    return 0


def _audit_deployment(args: argparse.Namespace, chain: Any) -> Any:
    """The deployment recorded for this chain, whatever its escrows' versions."""
    from escrow.deploy import read_deployment, registry_path, same_chain

    if chain.is_tester:
        return _deployment(args, chain)
    try:
        deployment = read_deployment(chain.chain_id)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeploymentError(
            f"the deployment record {registry_path(chain.chain_id)} cannot be read "
            f"({exc.__class__.__name__}: {exc}); name the escrow with --address, --version "
            "and --from-block"
        ) from exc
    if deployment is None:
        raise DeploymentError(
            f"no deployment recorded for chain {chain.chain_id}: run `escrow deploy`, or name "
            "the escrow with --address, --version and --from-block"
        )
    # anvil restarted from its state file may make a new genesis block on the same chain
    if not same_chain(chain, deployment):
        raise DeploymentError(
            f"the deployment recorded in {registry_path(chain.chain_id)} was made on another "
            "chain with this id (the chain was reset); name the escrow with --address, "
            "--version and --from-block"
        )
    return deployment


def cmd_audit(args: argparse.Namespace) -> int:
    from escrow.audit import EscrowTarget, audit, format_report, targets_of

    if args.address is None and (args.version is not None or args.from_block is not None):
        raise UsageError("--version and --from-block go with --address")
    if args.address is not None and args.from_block is None:
        raise UsageError(
            "--address needs --from-block: the block the escrow was deployed in (or earlier)"
        )
    chain = _connect(args)
    tokens: list[str] = []
    if args.address is not None:
        from escrow.deploy import code_version

        version = args.version
        if version is None:
            version = code_version(bytes(chain.w3.eth.get_code(args.address)))
            if version is None:
                raise UsageError(
                    f"--address {args.address}: its code is no escrow version this tool knows "
                    "(or there is no code); give --version 1 or 2"
                )
        targets = [EscrowTarget(args.address, version, args.from_block)]
    else:
        deployment = _audit_deployment(args, chain)
        targets = targets_of(deployment)
        for coin in (deployment.stablecoin, deployment.tenge):
            if coin is not None:
                tokens.append(coin.address)
    report = audit(chain, targets, extra_tokens=tokens, chunk_blocks=args.chunk_blocks)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    if report.ok:
        return 0
    failed = ", ".join(e.address for e in report.escrows if not e.ok)
    print(
        f"escrow audit: error: the books of escrow {failed} do not balance or do not match "
        "the contract (the report says where)",
        file=sys.stderr,
    )
    return EXIT_ERROR


def units_arg(decimals: int, unit: str) -> Callable[[str], int]:
    """A positive amount in ``unit`` (``0.5``, ``0,5``), returned in its smallest units."""

    def parse(text: str) -> int:
        try:
            return parse_units(text, decimals)
        except AmountError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} {unit}: {exc}") from None

    parse.__name__ = unit
    return parse


def cmd_keep(args: argparse.Namespace) -> int:
    """Sends the contract's timeouts that are due, from a platform account, within a budget."""
    import logging
    import signal

    import sqlalchemy.exc

    from escrow.db.engine import database_url, make_engine
    from escrow.keeper import Budget, Keeper

    if not args.rpc_url:
        raise UsageError("escrow keep needs a chain node: pass --rpc-url or set ESCROW_RPC_URL")
    budget = Budget(
        max_gas_price=args.max_gas_price_gwei, per_hour=args.budget_eth, per_run=args.run_budget_eth
    )
    chain = _connect(args)
    sender = _sender(args, chain)
    deployment = _deployment(args, chain)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s keeper %(levelname)s: %(message)s",
            stream=sys.stderr,
        )
    engine = make_engine(args.database_url or database_url())
    try:
        keeper = Keeper(
            chain,
            deployment,
            engine,
            sender,
            budget,
            receipt_timeout=args.receipt_timeout,
            max_per_pass=args.max_per_pass,
        )
        escrows = ", ".join(f"v{r.version} {r.address}" for r in deployment.escrows)
        run_cap = "none" if budget.per_run is None else f"{budget.per_run / 10**18:g} ETH"
        logging.getLogger("escrow.keeper").info(
            "keeping escrows %s on chain %d from %s; gas price at most %g gwei, budget %g ETH "
            "per hour, %s per run",
            escrows,
            chain.chain_id,
            keeper.address,
            budget.max_gas_price / 10**9,
            budget.per_hour / 10**18,
            run_cap,
        )
        if args.once:
            if not keeper.wait_until_idle(args.receipt_timeout):
                raise EscrowError(
                    f"the account {keeper.address} still has {keeper.pending_count()} pending "
                    f"transactions after {args.receipt_timeout:g} s: nothing was sent (a timeout "
                    "in flight must not be sent twice)"
                )
            try:
                report = keeper.run_once()
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise EscrowError(
                    f"cannot read the trades from the database ({exc.__class__.__name__}: "
                    f"{str(exc).splitlines()[0][:200]}); is it the one `escrow index` writes?"
                ) from exc
            print(f"escrow keep: {report.summary()}")
            return 0 if report.done else EXIT_ERROR
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            if args.leader_lock:
                _keep_as_leader(keeper, args, stop)
            else:
                keeper.run(stop, args.poll)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        engine.dispose()


def _keep_as_leader(keeper: Any, args: argparse.Namespace, stop: threading.Event) -> None:
    """Passes only while this process holds the keeper's lock (escrow.leader); a lost lock
    stops the passes until it is taken again."""
    import logging

    from escrow.db.engine import database_url
    from escrow.leader import LeadershipLost, leader_lock

    lock = leader_lock(args.database_url or database_url(), "keeper")
    try:
        while lock.acquire(stop):
            try:
                # Transactions an earlier active keeper left in flight are mined first.
                keeper.wait_until_idle(args.receipt_timeout, stop)
                keeper.run(stop, args.poll, before_pass=lock.check)
                return
            except LeadershipLost as exc:
                logging.getLogger("escrow.keeper").warning(
                    "%s: no more passes, waiting for the lock again", exc
                )
    finally:
        lock.release()


# ------------------------------------------------------------------ parser


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``escrow fund: error: argument --seller: …``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)}\n")


ACCOUNT_HELP = "address or dev account index"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="escrow",
        description="Escrow for person-to-person trades on an EVM chain.",
        epilog="Errors are one line; exit status 2 means the command line is wrong, 1 that "
        "the action was refused or failed. --debug (or ESCROW_DEBUG=1) adds the traceback.",
    )
    parser.add_argument(
        "--rpc-url",
        default=settings.rpc_url(),
        help="JSON-RPC URL of the chain (env ESCROW_RPC_URL); without it, "
        "an embedded chain that lives for one command",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False,
        help="print the traceback of an error (env ESCROW_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p: argparse.ArgumentParser = sub.add_parser(
        "compile", help="compile the contracts (cached by source hash)"
    )
    p.add_argument("--force", action="store_true", help="recompile even if nothing changed")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("chain", help="run a local anvil chain whose state survives restarts")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int_range_arg(1, 65535, "port"), default=8545)
    p.add_argument("--state-file", help="default: <data dir>/chain/anvil-state.json")
    p.add_argument(
        "--block-time",
        type=positive_seconds_arg,
        help="seconds per block (default: a block per transaction)",
    )
    p.add_argument("--fresh", action="store_true", help="forget the saved state first")
    p.set_defaults(func=cmd_chain)

    p = sub.add_parser("deploy", help="deploy the escrow (reuses a live deployment)")
    p.add_argument("--force", action="store_true", help="deploy anew over a live deployment")
    p.add_argument(
        "--ruling-period",
        type=int_range_arg(1, MAX_UINT32, "seconds"),
        default=7 * 24 * 3600,
        help="seconds an arbitrator has to rule (default 7 days)",
    )
    p.add_argument(
        "--from", dest="sender", type=account_arg, help=f"deployer: unlocked {ACCOUNT_HELP}"
    )
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("demo", help="run every trade path and print each step's gas")
    p.add_argument("--token", choices=("eth", "usd", "both"), default="both")
    p.set_defaults(func=cmd_demo)

    def trade_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        tp = sub.add_parser(name, help=help_text)
        tp.add_argument(
            "trade_id", type=trade_id_arg, help="trade id, in hex as printed (0x…) or decimal"
        )
        tp.add_argument(
            "--from",
            dest="sender",
            type=account_arg,
            help=f"sender: unlocked {ACCOUNT_HELP} (default: ESCROW_PRIVATE_KEY)",
        )
        return tp

    p = sub.add_parser("fund", help="open and fund a trade as the buyer")
    p.add_argument("--seller", required=True, type=account_arg, help=ACCOUNT_HELP)
    p.add_argument("--arbitrator", required=True, type=account_arg, help=ACCOUNT_HELP)
    p.add_argument(
        "--amount", required=True, help="in whole units, e.g. 0.25 or 0,25 (ETH) or 120 (USD)"
    )
    p.add_argument("--token", type=token_arg, default="eth", help="eth, usd or a token address")
    p.add_argument("--ship-within-hours", type=hours_arg(allow_zero=False), default=72.0)
    p.add_argument(
        "--inspection-hours",
        type=hours_arg(allow_zero=False, minimum=MIN_INSPECTION_HOURS),
        default=48.0,
        help=f"hours the buyer has to inspect once inspection starts (at least "
        f"{MIN_INSPECTION_HOURS}; default 48)",
    )
    p.add_argument(
        "--delivery-days",
        type=int_range_arg(0, MAX_DELIVERY_DAYS, "days"),
        default=DEFAULT_DELIVERY_DAYS,
        help="days after shipping that the seller promises delivery in; the inspection starts "
        "when the buyer marks the item received or when they end "
        f"(default {DEFAULT_DELIVERY_DAYS})",
    )
    p.add_argument(
        "--max-fee-bps",
        type=share_arg,
        default=None,
        help="the highest platform fee you accept, basis points or a percentage; the contract "
        "refuses the trade if the owner raised the fee above it (default: the fee in force, "
        "which is shown)",
    )
    p.add_argument(
        "--arbitrator-fee-bps",
        type=share_arg,
        default=0,
        help="basis points of the amount (or a percentage, 1.5%%)",
    )
    p.add_argument(
        "--listing-ref", type=bytes32_text_arg, default=b"", help="at most 32 bytes of text"
    )
    p.add_argument("--no-approve", action="store_true", help="the allowance is already set")
    p.add_argument(
        "--from",
        dest="sender",
        type=account_arg,
        help=f"buyer: unlocked {ACCOUNT_HELP} (default: ESCROW_PRIVATE_KEY)",
    )
    p.set_defaults(func=cmd_fund)

    p = trade_parser("ship", "seller marks the trade shipped")
    p.add_argument(
        "--reference",
        type=bytes32_text_arg,
        default=b"",
        help="tracking reference, at most 32 bytes (in the TradeShipped event)",
    )
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
        p = trade_parser(name, f"{name.replace('-', ' ')} (the buyer's share)")
        p.add_argument(
            "buyer_bps",
            type=share_arg,
            metavar="buyer_share",
            help="the buyer's share: basis points 0-10000 or a percentage (62.5%%)",
        )
        p.set_defaults(func=_simple_action(method, name, "buyer_bps"))
    trade_parser(
        "received", "buyer marks the item received: the inspection starts now"
    ).set_defaults(
        func=_simple_action("mark_received", "mark received", v2="delivery window to end early")
    )
    p = trade_parser("extend", "buyer asks, once, for more inspection days")
    p.add_argument(
        "--days",
        required=True,
        type=int_range_arg(1, MAX_EXTENSION_DAYS, "days"),
        help=f"1 to {MAX_EXTENSION_DAYS} more days of inspection",
    )
    p.set_defaults(
        func=_simple_action(
            "request_inspection_extension", "request extension", "days", v2="inspection extension"
        )
    )
    trade_parser("grant-extension", "seller grants the buyer's extension").set_defaults(
        func=_simple_action(
            "grant_inspection_extension", "grant extension", v2="inspection extension"
        )
    )
    trade_parser("cancel-split", "withdraw your own open split proposal").set_defaults(
        func=_simple_action("cancel_split", "cancel split", v2="way to cancel a split proposal")
    )
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
    group.add_argument("--content-hash", type=hash_arg, help="0x-prefixed 32-byte hash")
    p.set_defaults(func=cmd_evidence)
    trade_parser("show", "show a trade's terms and state").set_defaults(func=cmd_show)

    p = sub.add_parser("withdraw", help="take payments credited after a failed payout")
    p.add_argument("--token", type=token_arg, default="eth", help="eth, usd or a token address")
    p.add_argument(
        "--to",
        type=account_arg,
        help=f"send the credit to this {ACCOUNT_HELP} instead of the payee (version 2 escrows)",
    )
    p.add_argument(
        "--from",
        dest="sender",
        type=account_arg,
        help=f"payee: unlocked {ACCOUNT_HELP} (default: ESCROW_PRIVATE_KEY)",
    )
    p.set_defaults(func=cmd_withdraw)

    p = sub.add_parser(
        "audit",
        help="check every escrow's books from the chain alone (events, balances, open trades)",
        description="Replays each escrow's events from its deployment block and checks, per "
        "token, that its balance equals open trades + credits + accrued platform fees, and "
        "that credits and fees match the contract's views; lists every open trade with its "
        "next deadline. Exit status 0: the books balance (a surplus sent directly is "
        "reported, not a failure); 1: a shortfall or a mismatch; 2: the node lacks the logs.",
    )
    p.add_argument(
        "--address",
        type=address_arg,
        help="audit this escrow instead of the recorded deployment's (needs --from-block)",
    )
    p.add_argument(
        "--version",
        type=int,
        choices=(1, 2),
        help="contract version of --address (default: told from its code)",
    )
    p.add_argument(
        "--from-block",
        type=int_range_arg(0, 2**63 - 1, "blocks"),
        help="block to read the logs of --address from: its deployment block",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument(
        "--chunk-blocks",
        type=int_range_arg(1, 1_000_000, "blocks"),
        default=2_000,
        help="blocks per eth_getLogs request (default 2000; halved when the node refuses)",
    )
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "keep",
        help="send the contract's due timeouts (refund, release, resolve) from a platform account",
        description="Reads the trades the indexer keeps (escrow index), checks each due one on "
        "chain and sends refundAfterDeadline, releaseAfterInspection or "
        "resolveAfterRulingTimeout, never twice and within the gas budget. Exit status with "
        "--once: 0 when every due timeout was done, 1 when one was refused (gas price, budget) "
        "or failed.",
    )
    p.add_argument(
        "--from",
        dest="sender",
        type=account_arg,
        help=f"the keeper's account: unlocked {ACCOUNT_HELP} (default: ESCROW_PRIVATE_KEY)",
    )
    p.add_argument(
        "--poll", type=positive_seconds_arg, default=2.0, help="seconds between passes (2)"
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument(
        "--leader-lock",
        action="store_true",
        help="on PostgreSQL, make passes only while holding the keeper's advisory lock (one "
        "active keeper per database, the others stand by and take over); no effect on SQLite",
    )
    p.add_argument(
        "--max-gas-price-gwei",
        type=units_arg(9, "gwei"),
        default=100 * 10**9,
        help="send nothing while gas costs more than this per unit (default 100 gwei)",
    )
    p.add_argument(
        "--budget-eth",
        type=units_arg(18, "ETH"),
        default=10**17,
        help="spend at most this much ETH on gas in any hour (default 0.1)",
    )
    p.add_argument(
        "--run-budget-eth",
        type=units_arg(18, "ETH"),
        default=None,
        help="spend at most this much ETH on gas until the keeper stops (default: no cap)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="database the indexer writes (default: DATABASE_URL or the SQLite file in the "
        "data dir)",
    )
    p.add_argument(
        "--receipt-timeout",
        type=positive_seconds_arg,
        default=60.0,
        help="seconds to wait for the receipts of a pass (60)",
    )
    p.add_argument(
        "--max-per-pass",
        type=int_range_arg(1, 100_000, "trades"),
        default=1_000,
        help="due trades looked at in one pass at most (1000)",
    )
    p.set_defaults(func=cmd_keep)

    try:
        from escrow.indexer import commands as indexer_commands
    except ImportError:  # the indexer package is optional for the contract tools
        indexer_commands = None  # type: ignore[assignment]
    if indexer_commands is not None and hasattr(indexer_commands, "register"):
        indexer_commands.register(sub)

    for command in sub.choices.values():  # --debug after the command name works too
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _debugging(args: argparse.Namespace | None) -> bool:
    env = os.environ.get("ESCROW_DEBUG", "").strip().lower()
    return bool(getattr(args, "debug", False)) or env not in ("", "0", "false", "no")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = getattr(args, "func", None) or args.handler
    prog = f"escrow {args.command}"
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        os._exit(0)
    except Exception as exc:
        status, message = explain(exc)
        if _debugging(args):
            traceback.print_exc()
        print(f"{prog}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
