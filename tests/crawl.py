"""A crawler for the dashboard in headless Chromium: from the navigation, every page a role can reach.

What it visits: the links of the header's navigation, then every same-origin link found on the
pages it visits (and the URL of each GET form as filled in by the page, such as 电源管理's preview),
one page per *page type*, the Flask endpoint (``/devices/s1/pc-101`` and
``/devices/s1/pc-102`` are one type, ``/faults/?state=firing`` and ``/faults/?state=all`` too): every
menu entry, then the first link found of each other type (a device, a register entry, a teacher's
lessons). It does not follow the language switch, logout, the JSON API, the OpenAPI document,
static files or downloads (a link with ``download``, or an .xlsx/.csv/.json URL).

What it reports, per page (``Problem``):

- ``console``: a console message of type error, or an uncaught exception in a script;
- ``requestfailed``: a request the browser could not complete (not found script, refused, aborted);
- ``http``: any response with status >= 400 (the page, a script, a style sheet, an image, a fetch);
- ``untranslated`` (English pages only): a visible text node with Chinese characters (or full-width
  punctuation) in the page's chrome. Text marked as Chinese (``lang="zh…"``, the language switch's
  中文) is exempt, and so is data: text inside a table cell (``td``), a ``dd``, an
  ``option``, a ``textarea``, ``pre``/``code``, a chart's SVG (its axes name schools and floors),
  or any element marked ``translate="no"`` (names of
  people, classes, rooms and schools, stored subjects). Chrome inside a data cell is checked
  nonetheless: buttons, ``.chip`` labels, ``th``, ``label``, ``summary``, ``legend`` and ``.button``
  links. So a Chinese heading, menu entry, button, column header, form label, status chip or
  paragraph left in an English page is reported, a teacher's Chinese name in a table is not;
- ``raw_code``: a visible text node whose whole text is a code of the catalogue (collector.codes),
  such as ``display_missing`` shown instead of 投影无信号, or that holds a snake_case code of it as a
  word (``disk_full, display_missing`` in a list; a plain word such as ``projector`` in an agent's
  English detail is not taken for a code).
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException

SKIP_ENDPOINTS = {"auth.logout", "i18n.switch", "static", "openapi.openapi", "overview.data"}
SKIP_SUFFIXES = (".xlsx", ".csv", ".json", ".pdf", ".zip", ".ico")
MAX_PAGES = 60
# each page is loaded at the first size, checked and photographed at each (a resize re-lays it out and
# fires the charts' resize handlers, as turning a phone would); the first size gets a full-page screenshot
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}

# the links of a page, and the URL each GET form would open with its values as the page fills them in
LINKS_JS = r"""
() => Array.from(document.querySelectorAll("a[href]")).filter(a => !a.hasAttribute("download"))
  .map(a => a.href.split("#")[0])
  .concat(Array.from(document.querySelectorAll("form"))  // (a field named action or method hides the property)
    .filter(f => (f.getAttribute("method") || "get").toLowerCase() === "get").map(f => {
    const url = new URL(f.getAttribute("action") || "", document.baseURI);
    url.search = new URLSearchParams(new FormData(f)).toString();
    return url.href;
  }))
"""

TEXT_JS = r"""
(codes) => {
  const CJK = /[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]/;
  const DATA = "td, dd, option, textarea, pre, code, svg";
  const CHROME = "button, .chip, th, label, summary, legend, .button";
  const known = new Set(codes);
  const out = {untranslated: [], raw: []};
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    const el = n.parentElement;
    if (!text || !el || el.closest("script, style, template, noscript")) continue;
    const holder = el.closest("option") ? el.closest("select") : el;
    if (!holder || !holder.checkVisibility({visibilityProperty: true})) continue;
    if (known.has(text)) out.raw.push(text);
    else for (const w of text.split(/[^A-Za-z0-9_]+/)) if (w.includes("_") && known.has(w)) out.raw.push(w);
    const tagged = el.closest("[lang]");
    if (!CJK.test(text) || el.closest("[translate=no]") || (tagged && tagged.lang.startsWith("zh") &&
        tagged !== document.documentElement)) continue;
    const data = el.closest(DATA);
    const chrome = el.closest(CHROME);
    if (!data || (chrome && data.contains(chrome))) out.untranslated.push(text.slice(0, 60));
  }
  return out;
}
"""


@dataclass(frozen=True)
class Problem:
    url: str
    kind: str
    detail: str
    viewport: str = ""

    def __str__(self) -> str:
        return f"{self.kind} [{self.viewport}] {self.url}: {self.detail}"


@dataclass
class Crawl:
    visited: dict[str, str]  # url -> endpoint
    problems: list[Problem]
    shots: list[Path]


def page_type(app: Any, url: str, base: str) -> str | None:
    """The endpoint of a same-origin URL worth visiting, else None."""
    parts = urlsplit(url)
    if not url.startswith(base) or parts.path.endswith(SKIP_SUFFIXES) or parts.path.startswith("/api/"):
        return None
    try:
        endpoint, _ = app.url_map.bind("localhost").match(parts.path, method="GET")
    except HTTPException:
        return None
    if endpoint in SKIP_ENDPOINTS:
        return None
    return str(endpoint)


def _slug(url: str, base: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", url[len(base):]).strip("_")[:80] or "root"


class Tab:
    """One browser tab that visits URL after URL and tells each page's problems apart: a request counts for
    the page whose visit started it (a request of the previous page, aborted by the navigation, does not)."""

    def __init__(self, ctx: Any) -> None:
        self.page = ctx.new_page()
        self.url = ""
        self.viewport = ""
        self.problems: list[Problem] = []
        self.requests: set[Any] = set()
        self.page.on("request", lambda r: self.requests.add(r))  # the set of the page being visited
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self._add("console", f"uncaught: {e}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _add(self, kind: str, detail: str, when: bool = True) -> None:
        if self.url and when:
            self.problems.append(Problem(self.url, kind, detail, self.viewport))

    def _console(self, m: Any) -> None:
        self._add("console", m.text, m.type == "error")

    def _failed(self, r: Any) -> None:
        self._add("requestfailed", f"{r.url} {r.failure or ''}".strip(), r in self.requests)

    def _response(self, r: Any) -> None:
        self._add("http", f"{r.status} {r.url}", r.status >= 400 and r.request in self.requests)

    def visit(self, url: str, lang: str, codes: list[str], shots: Path | None) -> tuple[list[Problem], list[str]]:
        """Open one URL; its problems and the links it holds. ``shots``: where its screenshots go, the
        viewport's name and .jpg appended."""
        self.url, self.problems, self.requests = url, [], set()
        page = self.page
        links: list[str] = []
        for n, (name, size) in enumerate(VIEWPORTS.items()):
            self.viewport = name
            page.set_viewport_size(size)
            if n == 0:
                page.goto(url, wait_until="load")
                links = page.evaluate(LINKS_JS)
            else:
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
            text = page.evaluate(TEXT_JS, codes)
            if lang == "en":
                self.problems += [Problem(url, "untranslated", t, name) for t in dict.fromkeys(text["untranslated"])]
            self.problems += [Problem(url, "raw_code", t, name) for t in dict.fromkeys(text["raw"])]
            if shots is not None:
                page.screenshot(path=f"{shots}-{name}.jpg", full_page=n == 0, type="jpeg", quality=50)
        problems, self.url = self.problems, ""
        return problems, links

    def close(self) -> None:
        self.url = ""
        self.page.close()


def crawl(ctx: Any, app: Any, base: str, lang: str, codes: list[str], artifacts: Path | None = None,
          start: list[str] | None = None, follow: bool = True) -> Crawl:
    """Visit the navigation's pages (or ``start``) and, with ``follow``, every page type they link to."""
    tab = Tab(ctx)
    if start is None:
        tab.page.goto(base + "/", wait_until="load")
        start = [base + "/"] + tab.page.eval_on_selector_all("header nav a[href]", "els => els.map(a => a.href)")
    result = Crawl({}, [], [])
    seen: set[str] = set()
    queue: deque[tuple[str, str]] = deque()  # (url, the page that links to it)
    for url in start:
        kind = page_type(app, url, base)
        if kind is not None and kind not in seen:
            seen.add(kind)
            queue.append((url, "navigation"))
    while queue and len(result.visited) < MAX_PAGES:
        url, source = queue.popleft()
        shot = None
        if artifacts is not None:
            artifacts.mkdir(parents=True, exist_ok=True)
            shot = artifacts / f"{len(result.visited):02d}-{_slug(url, base)}"
            result.shots += [Path(f"{shot}-{name}.jpg") for name in VIEWPORTS]
        problems, links = tab.visit(url, lang, codes, shot)
        result.visited[url] = page_type(app, url, base) or "?"
        result.problems += [Problem(p.url, p.kind, f"{p.detail} (linked from {source})") if p.kind == "http"
                            and p.detail.endswith(url) else p for p in problems]
        for link in links if follow else []:
            kind = page_type(app, link, base)
            if kind is not None and kind not in seen:
                seen.add(kind)
                queue.append((link, url))
    tab.close()
    return result
