"""Checks a browser page must pass, for the Playwright tests: nothing wider than the window,
every field labelled and every button named, and a full-page screenshot kept under
tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => { const r = e.getBoundingClientRect();
                 return r.width > 0 && (r.right > innerWidth + 0.5 || r.left < -0.5)
                        && !e.closest('.hp, .skip'); })
  .map(e => e.tagName + '.' + e.className).slice(0, 5)"""
# Basic accessibility: every field labelled, every button named, one h1, a language.
A11Y = """() => {
  const problems = [];
  for (const e of document.querySelectorAll('input, select, textarea')) {
    if (e.type === 'hidden' || e.closest('.hp')) continue;
    if (!e.labels.length && !e.getAttribute('aria-label')) problems.push('unlabelled ' + e.name);
  }
  for (const b of document.querySelectorAll('button, a'))
    if (!b.textContent.trim() && !b.getAttribute('aria-label'))
      problems.push('unnamed ' + b.outerHTML);
  if (document.querySelectorAll('h1').length !== 1) problems.push('h1 count');
  if (!document.documentElement.lang) problems.push('no lang');
  return problems;
}"""


def shot(page: Any, name: str, width: int) -> None:
    """Screenshot the page at `width` into tests/artifacts/web/; check it fits and is labelled."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # sticky parts where a visitor first sees them
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, name
    assert page.evaluate(OVERFLOWING) == [], name
    if page.url.startswith("http"):  # our pages (emails are checked by their own tests)
        assert page.evaluate(A11Y) == [], name
