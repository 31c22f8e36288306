"""Precision and recall of the phishing guard (webapp/phishing.py) on the labelled messages.

Reads ``tests/data/phishing_messages.jsonl`` (one message a line: ``lang``, ``label`` "scam"
or "normal", ``text``), scans each for a market served at ``SITE_HOST``, prints precision,
recall and the false-positive rate per language and overall, lists every miss and every false
alarm, and writes ``build/bench/phishing.json``.

    .venv/bin/python scripts/eval_phishing.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webapp.phishing import scan  # noqa: E402

DATA = ROOT / "tests" / "data" / "phishing_messages.jsonl"
OUT = ROOT / "build" / "bench" / "phishing.json"
#: The host the labelled set's messages were written for (its own links point there).
SITE_HOST = "p2p-escrow.kz"


def load(path: Path = DATA) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(1 for r in rows if r["label"] == "scam" and r["flagged"])
    fn = sum(1 for r in rows if r["label"] == "scam" and not r["flagged"])
    fp = sum(1 for r in rows if r["label"] == "normal" and r["flagged"])
    tn = sum(1 for r in rows if r["label"] == "normal" and not r["flagged"])
    return {
        "scam": tp + fn,
        "normal": fp + tn,
        "true_positives": tp,
        "false_negatives": fn,
        "false_positives": fp,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "false_positive_rate": round(fp / (fp + tn), 4) if fp + tn else None,
    }


def evaluate(rows: list[dict[str, Any]], site_host: str = SITE_HOST) -> dict[str, Any]:
    checked = []
    for row in rows:
        result = scan(row["text"], site_host)
        checked.append({**row, "flagged": result.risky, "reasons": list(result.reasons)})
    languages = sorted({r["lang"] for r in checked})
    return {
        "site_host": site_host,
        "overall": scores(checked),
        "by_language": {
            lang: scores([r for r in checked if r["lang"] == lang]) for lang in languages
        },
        "missed": [r for r in checked if r["label"] == "scam" and not r["flagged"]],
        "false_alarms": [r for r in checked if r["label"] == "normal" and r["flagged"]],
        "reasons": _reason_counts(checked),
    }


def _reason_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        if row["label"] == "scam":
            for reason in row["reasons"]:
                counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items()))


def main() -> int:
    report = evaluate(load())
    print(f"{'':8} {'scam':>5} {'normal':>6} {'precision':>9} {'recall':>7} {'FP rate':>8}")
    for name, s in [*report["by_language"].items(), ("overall", report["overall"])]:
        print(
            f"{name:8} {s['scam']:5d} {s['normal']:6d} {s['precision'] or 0:9.3f} "
            f"{s['recall'] or 0:7.3f} {s['false_positive_rate'] or 0:8.3f}"
        )
    for row in report["missed"]:
        print(f"missed   [{row['lang']}] {row['text']}")
    for row in report["false_alarms"]:
        print(f"flagged  [{row['lang']}] {row['reasons']} {row['text']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
