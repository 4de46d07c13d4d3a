"""The rates table's view: search, 只看未达标, grouping (年级 / 教研组), sorting and paging, all from
query arguments so that a filtered page is a shareable URL and works without JavaScript.

Pure functions over the rate rows of collector.rates.usage (rate_dict): nothing here computes a rate or
compares one with the threshold (``below_threshold`` comes with the rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import ceil
from typing import Any, Callable, Mapping

from collector.lessons.teacher_groups import grade_rank

PAGE_SIZE = 50
SORTS = ("name", "scheduled", "used", "rate", "below", "excluded", "awaiting_review")
GROUPS = ("", "grade", "group")
NO_GROUP = "—"  # the heading of rows whose grade or group is unknown (shown last)


class ViewError(ValueError):
    """A query argument that is not one of the allowed values (names the argument)."""


@dataclass(frozen=True)
class View:
    q: str = ""
    below: bool = False
    group: str = ""
    sort: str = "rate"
    desc: bool = False
    page: int = 1

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query arguments of this view (defaults left out), with changes; a change resets the page."""
        v = replace(self, **changes) if changes else self
        if changes and "page" not in changes:
            v = replace(v, page=1)
        out = {"q": v.q, "below": "1" if v.below else "", "group": v.group,
               "sort": "" if v.sort == "rate" else v.sort, "dir": "desc" if v.desc else "",
               "page": v.page if v.page > 1 else ""}
        return {k: x for k, x in out.items() if x}

    def toggled(self, sort: str) -> dict[str, Any]:
        """The arguments of a click on a column's header: sort by it, or reverse it if already sorted."""
        return self.args(sort=sort, desc=not self.desc if sort == self.sort else sort in ("awaiting_review",))


def parse_view(args: Mapping[str, str], groups: tuple[str, ...] = GROUPS) -> View:
    """The view a request asks for; ViewError names a bad argument."""
    sort = args.get("sort") or "rate"
    if sort not in SORTS:
        raise ViewError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    group = args.get("group") or ""
    if group not in groups:
        raise ViewError(f"group must be one of {', '.join(g for g in groups if g)}, not {group!r}")
    direction = args.get("dir") or "asc"
    if direction not in ("asc", "desc"):
        raise ViewError(f"dir must be asc or desc, not {direction!r}")
    try:
        page = int(args.get("page") or 1)
    except ValueError:
        raise ViewError(f"page must be a number, not {args.get('page')!r}") from None
    return View(q=(args.get("q") or "").strip()[:100], below=args.get("below") in ("1", "on", "true"),
                group=group, sort=sort, desc=direction == "desc", page=max(1, page))


@dataclass
class Section:
    """Rows of one group on the page, with the group's counts over all its rows (not only this page)."""
    name: str | None
    rows: list[dict[str, Any]]
    total: int = 0
    below: int = 0


@dataclass
class Table:
    sections: list[Section]
    matched: int            # rows after search and filter
    total: int              # all rows
    below: int              # all rows below the threshold
    page: int
    pages: int
    first: int              # 1-based position of the first row shown (0 when none)
    last: int
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (total, below)


def sort_key(sort: str, key: str) -> Callable[[dict[str, Any]], Any]:
    if sort == "name":
        return lambda r: str(r[key])
    if sort == "below":
        return lambda r: (not r["below_threshold"], r["rate"], str(r[key]))
    return lambda r: (r.get(sort) or 0, r["rate"], str(r[key]))


def build(rows: list[dict[str, Any]], view: View, key: str, group_of: Callable[[str], str | None],
          page_size: int = PAGE_SIZE) -> Table:
    """Search (in the name and its group), filter, sort, group and cut one page out of the rate rows."""
    q = view.q.lower()
    matched = [r for r in rows if (not q or q in str(r[key]).lower() or q in (group_of(str(r[key])) or "").lower())
               and (not view.below or r["below_threshold"])]
    matched.sort(key=sort_key(view.sort, key), reverse=view.desc)
    counts: dict[str, tuple[int, int]] = {}
    if view.group:
        for r in matched:
            g = group_of(str(r[key])) or NO_GROUP
            t, b = counts.get(g, (0, 0))
            counts[g] = (t + 1, b + int(bool(r["below_threshold"])))
        order = {g: _group_rank(g) for g in counts}
        matched.sort(key=lambda r: order[group_of(str(r[key])) or NO_GROUP])  # stable: keeps the sort inside
    pages = max(1, ceil(len(matched) / page_size))
    page = min(view.page, pages)
    shown = matched[(page - 1) * page_size: page * page_size]
    sections: list[Section] = []
    for r in shown:
        name: str | None = (group_of(str(r[key])) or NO_GROUP) if view.group else None
        if not sections or sections[-1].name != name:
            t, b = counts.get(name or "", (0, 0))
            sections.append(Section(name, [], t, b))
        sections[-1].rows.append(r)
    first = (page - 1) * page_size + 1 if shown else 0
    return Table(sections, len(matched), len(rows), sum(1 for r in rows if r["below_threshold"]), page, pages,
                 first, first + len(shown) - 1 if shown else 0, counts)


def _group_rank(name: str) -> tuple[int, tuple[int, str]]:
    return (1, (0, "")) if name == NO_GROUP else (0, grade_rank(name))
