"""Accessibility checks in a real browser: axe-core (npm, ``node_modules/axe-core``) injected
into a Playwright page and run against the WCAG 2.1 A and AA rules.

The market's Content-Security-Policy (``script-src 'self'``) refuses an inline script tag
(``page.add_script_tag``), so axe's source is evaluated through the DevTools protocol, which
the policy does not govern; the page itself runs under its real policy."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: list[str]
    summary: str

    def __str__(self) -> str:
        where = ", ".join(self.targets[:5]) + (" …" if len(self.targets) > 5 else "")
        return f"[{self.impact}] {self.rule}: {self.help} ({len(self.targets)}×: {where})"


@functools.cache
def _axe_source() -> str:
    return AXE.read_text()


def axe_violations(page: Page) -> list[Violation]:
    """Every WCAG 2.1 A/AA violation axe finds on the page as it is now."""
    if not AXE.is_file():
        raise FileNotFoundError(f"{AXE} is missing: run `npm ci`")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    result: dict[str, Any] = page.evaluate(
        """async (tags) => {
             const r = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                resultTypes: ['violations']});
             return {violations: r.violations.map((v) => ({
               id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map((n) => ({target: n.target.map(String).join(' '),
                                           summary: n.failureSummary || ''}))}))};
           }""",
        WCAG_21_AA,
    )
    return [
        Violation(
            rule=v["id"],
            impact=v["impact"] or "minor",
            help=v["help"],
            targets=[n["target"] for n in v["nodes"]],
            summary=v["nodes"][0]["summary"] if v["nodes"] else "",
        )
        for v in result["violations"]
    ]


def blocking(violations: list[Violation]) -> list[Violation]:
    """The serious and critical ones: a page must have none."""
    return [v for v in violations if v.impact in BLOCKING]


def focus_is_visible(page: Page) -> dict[str, Any]:
    """The focused element and whether it shows it has focus: an outline wider than zero that
    is not transparent, or a box shadow."""
    found: dict[str, Any] = page.evaluate(
        """() => {
             const el = document.activeElement;
             if (!el || el === document.body) return {element: null, visible: false};
             const style = getComputedStyle(el);
             const clear = /rgba\\(.*,\\s*0\\)$/.test(style.outlineColor) ||
               style.outlineColor === 'transparent';
             const outline = style.outlineStyle !== 'none' &&
               parseFloat(style.outlineWidth) > 0 && !clear;
             const shadow = style.boxShadow && style.boxShadow !== 'none';
             const label = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim();
             return {element: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                       ' "' + label.slice(0, 40) + '"', visible: Boolean(outline || shadow)};
           }"""
    )
    return found
