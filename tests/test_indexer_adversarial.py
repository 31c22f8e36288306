"""No log can stop the indexer.

Everything on chain may come from a stranger: here a stranger drives the real contract on anvil
into the odd corners it allows (evidence URIs that are not UTF-8, carry NUL bytes or weigh
100 kB; the largest amount, fees and splits), then an honest buyer trades, and ``escrow index``
must index all of it. Logs that cannot be decoded at all (crafted, since the contract cannot
emit them) are stored raw, counted, and rolled back with their blocks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak
from hexbytes import HexBytes
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from web3.logs import DISCARD

from db_fixtures import *  # noqa: F403  (fixtures)
from db_fixtures import ZERO_ADDRESS, Market
from escrow.cli import main as escrow_main
from escrow.compiler import load_artifact
from escrow.db.engine import session_scope
from escrow.db.models import (
    EvidenceFile,
    Listing,
    ListingStatus,
    Trade,
    TradeEvent,
    TradeStatus,
    UndecodedLog,
    User,
)
from escrow.indexer import Indexer
from escrow.indexer.decoder import LogDecoder, RawLog, UndecodableLog
from escrow.indexer.reconcile import reconcile

MAX_AMOUNT = 2**128 - 1  # the contract's cap on a trade's amount
TERMS = "(address,address,address,address,uint256,uint64,uint32,uint16,uint16,uint32)"
SUBMIT_EVIDENCE = keccak(text=f"submitEvidence(uint256,{TERMS},string,bytes32)")[:4]
HONEST_PRICE = 10**17

#: Evidence URIs as raw bytes: the contract takes any bytes up to 512 (v2's cap), and its event
#: carries them as they are.
URIS = {
    "not_utf8": b"\xff\xfe ipfs://\xc3\x28 \xed\xa0\x80 end",
    "nul": b"https://x/\x00evil\x00",
    "big": b"https://example.com/" + b"a" * (512 - 20),
    "big_not_utf8": (b"\x00\xff" * 256),
    "cut_multibyte": "ipfs://caf\u00e9".encode()[:-1],
    "empty": b"",
}


def _index(url: str, db_url: str, market: Market) -> int:
    """``escrow index --once``: the command an operator runs."""
    return escrow_main(
        [
            "--rpc-url",
            url,
            "index",
            "--database-url",
            db_url,
            "--address",
            market.address,
            "--from-block",
            str(market.deploy_block),
            "--once",
        ]
    )


def _send(market: Market, sender: str, to: str, data: bytes, value: int = 0) -> Any:
    tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(12_000_000)}
    if value:
        tx["value"] = hex(value)
    return market.wait(HexBytes(market.rpc("eth_sendTransaction", [tx])))


def _submit_raw_evidence(
    market: Market, trade_id: int, sender: str, uri: bytes, content_hash: bytes
) -> Any:
    """``submitEvidence`` with any bytes as the URI (web3 would only encode valid text)."""
    args = abi_encode(
        ["uint256", TERMS, "bytes", "bytes32"],
        [trade_id, market.terms[trade_id], uri, content_hash],
    )
    return _send(market, sender, market.address, SUBMIT_EVIDENCE + args)


def _fund(
    market: Market,
    *,
    buyer: str,
    seller: str,
    amount: int,
    lane: int,
    token: str = ZERO_ADDRESS,
    arbitrator: str | None = None,
    fee_bps: int = 0,
    ship_within: int = 7 * 86400,
    inspection: int = 86400,
    listing_ref: bytes = b"\0" * 32,
) -> int:
    call = market.contract.functions.fund(
        seller,
        arbitrator or market.arbitrator,
        token,
        amount,
        market.now() + ship_within,
        inspection,
        0,  # delivery window
        fee_bps,
        1_000,  # platform fee cap: the contract's maximum
        lane,
        listing_ref,
    )
    value = amount if int(token, 16) == 0 else 0
    receipt = market.wait(call.transact({"from": buyer, "value": value}))
    event = market.contract.events.TradeFunded().process_receipt(receipt, errors=DISCARD)[0]
    trade_id = int(event["args"]["tradeId"])
    market.terms[trade_id] = tuple(event["args"]["terms"].values())
    return trade_id


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _trade(engine: Engine, onchain_id: int) -> Trade:
    with Session(engine) as session:
        row = session.scalar(select(Trade).where(Trade.onchain_id == onchain_id))
        assert row is not None
        return row


@pytest.mark.anvil
def test_a_strangers_adversarial_events_do_not_stop_the_indexer(
    anvil: Any, market: Market, engine: Engine, db_url: str
) -> None:
    w3 = market.w3
    stranger, own_seller, big_arbitrator = market.buyers[-1], market.buyers[-2], market.buyers[-3]
    honest_buyer = market.buyers[0]
    owner = market.owner

    listing_ref = keccak(text="the honest listing")
    with session_scope(engine) as session:
        seller = User(address=market.seller.lower())
        session.add(seller)
        session.flush()
        session.add(
            Listing(
                ref="0x" + listing_ref.hex(), seller_id=seller.id, title="Lamp", price=HONEST_PRICE
            )
        )

    # The extremes the contract allows: the largest fees, a token trade of the largest amount.
    market.wait(market.contract.functions.setPlatformFee(owner, 1_000).transact({"from": owner}))
    market.wait(
        market.contract.functions.registerArbitrator(big_arbitrator, 2_000).transact(
            {"from": owner}
        )
    )
    artifact = load_artifact("TestStablecoin")
    coin_receipt = market.wait(
        w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        .constructor(owner)
        .transact({"from": owner})
    )
    coin = w3.eth.contract(address=coin_receipt["contractAddress"], abi=artifact.abi)
    market.wait(
        market.contract.functions.setTokenAllowed(coin.address, True).transact({"from": owner})
    )
    market.wait(coin.functions.mint(stranger, 2 * MAX_AMOUNT).transact({"from": owner}))
    market.wait(coin.functions.approve(market.address, 2**256 - 1).transact({"from": stranger}))

    # A 1-wei trade to the stranger's own second address, quoting the honest listing's ref.
    tiny = _fund(
        market, buyer=stranger, seller=own_seller, amount=1, lane=0, listing_ref=listing_ref
    )
    ruled = _fund(
        market,
        buyer=stranger,
        seller=own_seller,
        amount=MAX_AMOUNT,
        lane=1,
        token=coin.address,
        arbitrator=big_arbitrator,
        fee_bps=2_000,
        ship_within=180 * 86400,
        inspection=60 * 86400,
    )
    market.act("markShipped", ruled, b"\xff" * 32, sender=own_seller)
    market.dispute(ruled)
    market.act("rule", ruled, 10_000, sender=big_arbitrator)
    settled = _fund(
        market, buyer=stranger, seller=own_seller, amount=MAX_AMOUNT, lane=2, token=coin.address
    )
    market.propose(settled, 10_000, sender=own_seller)
    market.act("acceptSplit", settled, 10_000, sender=stranger)
    assert _index(anvil.url, db_url, market) == 0

    # Files the stranger "uploaded" for their trade, so the URIs also reach evidence_files.
    hashes = {name: hashlib.sha256(name.encode()).digest() for name in URIS}
    tiny_pk = _trade(engine, tiny).id
    with session_scope(engine) as session:
        for name, digest in hashes.items():
            session.add(
                EvidenceFile(
                    trade_id=tiny_pk,
                    uploaded_by=stranger.lower(),
                    original_name=f"{name}.bin",
                    size_bytes=1,
                    sha256=digest.hex(),
                    storage_path=f"{digest.hex()[:2]}/{digest.hex()}",
                )
            )
    for name, uri in URIS.items():
        _submit_raw_evidence(market, tiny, stranger, uri, hashes[name])
    # Then an honest buyer buys the listing: it must be indexed although the logs before it
    # are hostile.
    honest = _fund(
        market,
        buyer=honest_buyer,
        seller=market.seller,
        amount=HONEST_PRICE,
        lane=0,
        listing_ref=listing_ref,
    )
    assert _index(anvil.url, db_url, market) == 0
    assert _index(anvil.url, db_url, market) == 0  # and again: nothing new, nothing broken

    bought = _trade(engine, honest)
    assert bought.status == TradeStatus.FUNDED.value and bought.listing_id is not None
    with Session(engine) as session:
        listing = session.scalar(select(Listing))
        assert listing is not None and listing.status == ListingStatus.SOLD.value
    assert _trade(engine, tiny).listing_id is None  # quotes the ref, does not buy it

    with Session(engine) as session:
        submitted = {
            row.args["contentHash"]: row.args
            for row in session.scalars(
                select(TradeEvent).where(TradeEvent.event == "EvidenceSubmitted")
            )
        }
        files = {f.sha256: f for f in session.scalars(select(EvidenceFile))}
    assert len(submitted) == len(URIS)
    for name, uri in URIS.items():
        args = submitted["0x" + hashes[name].hex()]
        try:
            text, valid = uri.decode("utf-8"), True
        except UnicodeDecodeError:
            text, valid = uri.decode("utf-8", errors="replace"), False
        assert args["uri"] == text, name
        assert args.get("uri_hex") == (None if valid else "0x" + uri.hex()), name
        stored = files[hashes[name].hex()]
        assert stored.onchain_tx_hash is not None, name
        assert stored.onchain_uri is not None and len(stored.onchain_uri) <= 500, name
        assert "\x00" not in stored.onchain_uri, name
        if len(text) <= 500 and "\x00" not in text:
            assert stored.onchain_uri == text, name

    first = _trade(engine, ruled)
    assert first.status == TradeStatus.RESOLVED.value and first.amount == MAX_AMOUNT
    assert first.arbitrator_fee == MAX_AMOUNT * 2_000 // 10_000
    assert first.buyer_amount == MAX_AMOUNT - first.arbitrator_fee and first.seller_amount == 0
    assert first.shipment_ref == "0x" + "ff" * 32 and first.platform_fee_bps == 1_000
    second = _trade(engine, settled)
    assert second.status == TradeStatus.SETTLED.value and second.buyer_bps == 10_000
    assert second.buyer_amount == MAX_AMOUNT and second.seller_amount == 0

    assert _count(engine, UndecodedLog) == 0  # all of that is decodable
    report = reconcile(w3, engine, market.address, abi=market.abi)
    assert report.ok and report.checked == 4 and report.undecoded_logs == 0


# ---------------------------------------------------------------------------- crafted logs


def _decoder() -> LogDecoder:
    return LogDecoder(load_artifact("P2PEscrow").abi)


def _topic(decoder: LogDecoder, name: str) -> str:
    return next(t for t, n in decoder.topics.items() if n == name)


def _raw(topics: list[str], data: str, log_index: int = 0, block: int = 1) -> RawLog:
    return RawLog(
        block_number=block,
        block_hash="0x" + "aa" * 32,
        block_timestamp=1_700_000_000,
        tx_hash="0x" + "bb" * 32,
        log_index=log_index,
        topics=topics,
        data=data,
    )


def _word(value: int) -> str:
    return f"{value:064x}"


def _crafted(decoder: LogDecoder) -> dict[str, RawLog]:
    evidence = _topic(decoder, "EvidenceSubmitted")
    shipped = _topic(decoder, "TradeShipped")
    funded = _topic(decoder, "TradeFunded")
    trade = "0x" + _word(7)
    who = "0x" + _word(0xABC)
    good_evidence = abi_encode(["bytes", "bytes32"], [b"ok", b"\x01" * 32]).hex()
    return {
        "unknown topic": _raw(["0x" + "12" * 32, trade], ""),
        "no topics": _raw([], "00" * 32),
        "too few topics": _raw([evidence, trade], good_evidence),
        "short topic": _raw([evidence, trade, "0x1234"], good_evidence),
        "non-hex data": _raw([evidence, trade, who], "zz" * 96),
        "odd-length data": _raw([evidence, trade, who], good_evidence + "0"),
        "truncated data": _raw([evidence, trade, who], good_evidence[:100]),
        "string offset out of range": _raw(
            [evidence, trade, who], _word(2**255) + _word(1) + good_evidence[128:]
        ),
        "static data too short": _raw([shipped, trade], _word(1)),
        "non-hex static word": _raw([shipped, trade], "g" * 64 + _word(5)),
        "tuple data too short": _raw([funded, trade, who, who], _word(1) * 3),
    }


@pytest.mark.parametrize("case", sorted(_crafted(_decoder())))
def test_a_malformed_log_raises_only_undecodable(case: str) -> None:
    decoder = _decoder()
    with pytest.raises(UndecodableLog):
        decoder.decode(_crafted(decoder)[case])


def test_text_that_is_not_utf8_is_kept_with_its_bytes() -> None:
    decoder = _decoder()
    raw_uri = b"\xff\x00ok"
    log = _raw(
        [_topic(decoder, "EvidenceSubmitted"), "0x" + _word(7), "0x" + _word(0xABC)],
        abi_encode(["bytes", "bytes32"], [raw_uri, b"\x02" * 32]).hex(),
    )
    args = decoder.decode(log).args
    assert args["uri"] == "\ufffd\x00ok" and args["uri_hex"] == "0x" + raw_uri.hex()
    assert args["contentHash"] == "0x" + "02" * 32 and args["tradeId"] == 7

    from escrow.events import EventDecoder

    event = EventDecoder(load_artifact("P2PEscrow").abi).decode_log(
        {
            "topics": log.topics,
            "data": "0x" + log.data,
            "blockNumber": 1,
            "blockHash": log.block_hash,
            "transactionHash": log.tx_hash,
            "logIndex": 0,
            "address": "0x" + "11" * 20,
        }
    )
    assert event.args["uri"] == "\ufffd\x00ok" and event.args["uri_hex"] == "0x" + raw_uri.hex()


@pytest.mark.anvil
def test_crafted_logs_become_undecoded_rows_and_roll_back_with_their_block(
    market: Market, engine: Engine
) -> None:
    """The scanner, fed the node's logs plus crafted ones: the crafted logs are stored raw,
    the real ones indexed, and a reorganisation removes raw rows above the fork."""
    kept = market.fund(amount=1)
    kept_block = market.w3.eth.block_number
    snapshot = market.rpc("evm_snapshot", [])
    lost = market.fund(amount=2)
    lost_block = market.w3.eth.block_number
    indexer = Indexer(
        market.w3, engine, market.address, abi=market.abi, start_block=market.deploy_block
    )
    decoder = indexer.decoder
    crafted = _crafted(decoder)
    real_get_logs = indexer.source.get_logs
    # Where each crafted log goes: most in the kept block, two in the block the reorg removes.
    placement = {name: kept_block for name in crafted}
    placement["truncated data"] = placement["unknown topic"] = lost_block
    block_hashes: dict[int, str] = {}

    def with_crafted(address: str, first: int, last: int, topics: Any = None) -> list[RawLog]:
        logs = real_get_logs(address, first, last, topics)
        for number in (kept_block, lost_block):
            block = market.w3.eth.get_block(number)
            block_hashes[number] = block["hash"].to_0x_hex()
        extra = [
            RawLog(
                block_number=block,
                block_hash=block_hashes[block],
                block_timestamp=None,
                tx_hash="0x" + keccak(text=name).hex(),
                log_index=index,
                topics=crafted[name].topics,
                data=crafted[name].data,
            )
            for index, (name, block) in enumerate(sorted(placement.items()))
            if first <= block <= last and market.w3.eth.block_number >= block
        ]
        return sorted(logs + extra, key=lambda r: (r.block_number, r.log_index))

    indexer.source.get_logs = with_crafted  # type: ignore[method-assign,assignment]
    result = indexer.sync()
    assert result.undecoded == len(crafted)
    assert {t.onchain_id for t in _trades(engine)} == {kept, lost}
    with Session(engine) as session:
        rows = session.scalars(select(UndecodedLog)).all()
        assert len(rows) == len(crafted)
        assert all(r.error and r.data.startswith("0x") for r in rows)
        assert all(r.contract_address == market.address.lower() for r in rows)
        assert {r.block_number for r in rows} == {kept_block, lost_block}
    assert indexer.sync().events == 0  # replaying stores nothing twice
    report = reconcile(market.w3, engine, market.address, abi=market.abi)
    assert report.ok and report.undecoded_logs == len(crafted)
    assert len(report.undecoded) == len(crafted)

    market.rpc("evm_revert", [snapshot])  # the block holding `lost` and two crafted logs goes
    del placement["truncated data"], placement["unknown topic"]
    market.rpc("anvil_mine", [3])
    indexer.sync()
    assert {t.onchain_id for t in _trades(engine)} == {kept}
    with Session(engine) as session:
        blocks = session.scalars(select(UndecodedLog.block_number)).all()
    assert sorted(blocks) == [kept_block] * (len(crafted) - 2)
    del lost


def _trades(engine: Engine) -> list[Trade]:
    with Session(engine) as session:
        return list(session.scalars(select(Trade)))


def test_healthz_and_reconcile_report_undecoded_logs(
    app: Any, deployment: Any, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    engine = app.extensions["escrow_engine"]
    chain_id = app.extensions["escrow_chain"].chain().chain_id
    address = deployment.escrow.address.lower()
    with session_scope(engine) as session:
        for index in range(3):
            session.add(
                UndecodedLog(
                    chain_id=chain_id,
                    contract_address=address if index else "0x" + "99" * 20,
                    block_number=5,
                    block_hash="0x" + "aa" * 32,
                    tx_hash="0x" + "bb" * 32,
                    log_index=index,
                    topics=["0x" + "12" * 32],
                    data="0x",
                    error="unknown topic",
                )
            )
    report = app.test_client().get("/healthz").get_json()
    assert report["indexer"]["undecoded_logs"] == 2  # this contract's only
    assert report["status"] == "ok"  # a stranger's log is no outage

    from escrow.indexer import commands

    printed: Callable[[], str] = lambda: capsys.readouterr().out  # noqa: E731
    monkeypatch.setattr(commands, "_connect", lambda args: app.extensions["escrow_chain"].chain())
    url = str(engine.url.render_as_string(hide_password=False))
    base = ["--database-url", url, "--address", address]
    args = commands.argparse.ArgumentParser()
    commands.register(args.add_subparsers(dest="command"))
    assert commands.run_reconcile(args.parse_args(["reconcile", *base])) == 0
    out = printed()
    assert "2 undecoded logs" in out and "unknown topic" in out
    assert commands.run_reconcile(args.parse_args(["reconcile", *base, "--json"])) == 0
    data = json.loads(printed())
    assert data["undecoded_logs"] == 2 and len(data["undecoded"]) == 2
