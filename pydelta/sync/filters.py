"""``--exclude`` / ``--include``: which entries of a tree a sync considers.

A subset of rsync's filter rules, applied by the driving end to both
listings (so an older far end needs to know nothing about them):

* rules are tried in the order given and the first whose pattern matches
  decides; an entry no rule matches is included;
* ``*`` matches any run of characters except '/', ``?`` one character
  except '/', ``[...]`` a character class, ``**`` anything including '/';
* a pattern ending in '/' matches directories only (the '/' is not part of
  the match);
* a pattern starting with '/' is anchored to the root of the transfer;
  otherwise a pattern holding a '/' or ``**`` matches the end of the path
  (at a component boundary), and one without matches the last component
  (the name) at any depth;
* an excluded directory excludes everything below it (it is not descended
  into, as with rsync), whatever the rules say about its contents;
* ``--delete`` does not remove what is excluded on the receiving end
  (rsync's default, without ``--delete-excluded``).

Not implemented: rsync's ``- ``/``+ `` rule prefixes, merge files,
``***``, and per-directory ``.rsync-filter`` files.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import UsageError
from ..results import Frozen


def _translate(glob: str) -> str:
    """A regular expression for an rsync-style wildcard (no anchors)."""
    out: List[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                neg = body[:1] in ("!", "^")
                if neg:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^/' if neg else ''}{body}]")
                i = j + 1
                continue
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class Rule(Frozen):
    """One ``--exclude``/``--include`` pattern, compiled."""

    include: bool
    pattern: str
    dir_only: bool
    regex: "re.Pattern[str]"
    _fields = ("include", "pattern", "dir_only", "regex")

    def __init__(
        self, include: bool, pattern: str, dir_only: bool, regex: "re.Pattern[str]"
    ) -> None:
        vars(self).update(include=include, pattern=pattern, dir_only=dir_only, regex=regex)

    @classmethod
    def parse(cls, include: bool, pattern: str) -> "Rule":
        """Compile one pattern; UsageError if it is empty or holds a NUL."""
        if not isinstance(pattern, str) or not pattern or "\0" in pattern:
            raise UsageError(f"bad {'include' if include else 'exclude'} pattern {pattern!r}")
        p = pattern
        dir_only = p.endswith("/")
        p = p.rstrip("/")
        if not p:  # "/" alone: the root itself, never an entry
            raise UsageError(f"pattern {pattern!r} matches nothing inside the tree")
        # anchored: the whole path; else the end of the path at a component
        # boundary (for a pattern without '/' or '**': the name, as '*' and
        # '?' cannot cross a '/')
        anchor = "^" if p.startswith("/") else "(?:^|/)"
        body = anchor + _translate(p.lstrip("/")) + "$"
        try:
            regex = re.compile(body, re.DOTALL)
        except re.error as e:
            raise UsageError(f"bad pattern {pattern!r}: {e}") from None
        return cls(include, pattern, dir_only, regex)

    def matches(self, path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        return self.regex.search(path) is not None


class Filter:
    """Ordered include/exclude rules (first match wins; no match: included).

    Example:
        >>> f = Filter([("include", "keep.bin"), ("exclude", "*.bin"), ("exclude", "/cache/")])
        >>> [f.included(p, d) for p, d in [("a/keep.bin", False), ("a/x.bin", False),
        ...                                ("cache", True), ("a/cache", True)]]
        [True, False, False, True]
    """

    def __init__(self, rules: Iterable[Tuple[str, str]] = ()) -> None:
        self.rules: List[Rule] = [Rule.parse(kind == "include", pat) for kind, pat in rules]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def included(self, path: str, is_dir: bool) -> bool:
        """Whether the entry at '/'-separated ``path`` (relative to the root) is synced."""
        for rule in self.rules:
            if rule.matches(path, is_dir):
                return rule.include
        return True

    def apply(self, entries: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The entries of a listing (parents before children) that are included.

        Everything below an excluded directory goes with it.
        """
        if not self.rules:
            return entries
        out: List[Dict[str, Any]] = []
        pruned: List[str] = []  # excluded directories, as "path/"
        for e in entries:
            path = e["path"]
            if pruned and any(path.startswith(p) for p in pruned):
                continue
            is_dir = e.get("type") == "dir"
            if self.included(path, is_dir):
                out.append(e)
            elif is_dir:
                pruned.append(path + "/")
        return out


def make_filter(
    exclude: Optional[Sequence[str]] = None,
    include: Optional[Sequence[str]] = None,
    rules: Optional[Sequence[Tuple[str, str]]] = None,
) -> Filter:
    """The filter of the API's arguments.

    ``rules`` gives the order of mixed rules as (``"include"``/``"exclude"``,
    pattern) pairs (the CLI passes them in command-line order); otherwise
    the ``include`` patterns are tried before the ``exclude`` ones, so
    ``include=["*.json"], exclude=["*"]`` keeps only the JSON files.
    """
    if isinstance(exclude, str) or isinstance(include, str):
        raise UsageError("exclude and include take a list of patterns, not one string")
    ordered: List[Tuple[str, str]] = list(rules or [])
    ordered += [("include", p) for p in include or ()]
    ordered += [("exclude", p) for p in exclude or ()]
    return Filter(ordered)


def order_from_argv(
    argv: Sequence[str], exclude: Sequence[str], include: Sequence[str]
) -> Optional[List[Tuple[str, str]]]:
    """The --exclude/--include rules in the order a command line gave them.

    The option parser hands each kind over as its own list; this recovers
    the interleaving from the raw arguments, and only if they hold exactly
    those patterns (in each kind's order), else None (then includes go
    first).

    Example:
        >>> order_from_argv(["--exclude", "a/*", "--include=a/k", "x"], ["a/*"], ["a/k"])
        [('exclude', 'a/*'), ('include', 'a/k')]
    """
    out: List[Tuple[str, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        for kind in ("exclude", "include"):
            flag = f"--{kind}"
            if arg == flag and i + 1 < len(argv):
                out.append((kind, argv[i + 1]))
                i += 1
            elif arg.startswith(flag + "="):
                out.append((kind, arg[len(flag) + 1 :]))
        i += 1
    got_ex = [p for k, p in out if k == "exclude"]
    got_in = [p for k, p in out if k == "include"]
    if got_ex != list(exclude) or got_in != list(include):
        return None
    return out
