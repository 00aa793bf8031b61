"""The fast parser of the common verbs (signature, delta, patch, info, sync).

Built from the same option table as the typer commands
(:mod:`pydelta._cliopts`), it takes a command line only when it fully
understands it - a known verb, known options, well-formed values, the right
number of arguments - and gives the verb's parameters exactly as typer
would. Anything else (help, completion, an unknown or misspelt option, a
bad value, a missing or extra argument) is
left to typer, unchanged: :func:`parse` returns None and
:mod:`pydelta.__main__` goes on to :mod:`pydelta.cli`, so messages and exit
statuses are typer's own. Skipping typer saves most of the start-up of a
command (issue 13.4).

The subset follows click's parsing rules: options and arguments in any
order; ``--name VALUE`` and ``--name=VALUE``; short options alone or
bundled (``-qv``, ``-ii``, ``-b4096``, ``-qb 4096``); an option that takes
a value takes the next word whatever it is (``-S -1``); ``--`` ends the
options; ``-`` is an argument; a repeated single-value option keeps the
last value.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from ._cli_sync import SYNC
from ._cliopts import FILE_VERBS, REQUIRED, Arg, Opt, Verb

#: The verbs the fast parser takes, by name.
VERBS: Dict[str, Verb] = {v.name: v for v in (*FILE_VERBS, SYNC)}

#: typer's completion hook: set, the command line is completion's (typer's).
COMPLETE_ENV = "_PYDELTA_COMPLETE"


class _Defer(Exception):
    """Not understood here: typer takes the command line."""


def _names(verb: Verb) -> Dict[str, Tuple[Opt, Any]]:
    """Every option string of a verb -> (option, value it sets if it takes none)."""
    found: Dict[str, Tuple[Opt, Any]] = {}
    for p in verb.params:
        if not isinstance(p, Opt):
            continue
        for decl in p.names:
            on, _, off = decl.partition("/")
            found[on] = (p, True)
            if off:
                found[off] = (p, False)
    return found


def _int(text: str, opt: Opt) -> int:
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not (digits.isascii() and digits.isdigit()):
        raise _Defer
    value = int(text)
    if opt.min is not None and value < opt.min:
        raise _Defer
    return value


def _set(values: Dict[str, Any], opt: Opt, given: Any, text: Optional[str]) -> None:
    """Record one occurrence of ``opt`` (``text``: its value, for kinds that take one)."""
    if opt.kind in ("flag", "switch"):
        values[opt.dest] = given
    elif opt.kind == "count":
        values[opt.dest] = values.get(opt.dest, 0) + 1
    else:
        assert text is not None  # even "-x": click takes the next word as the value
        if opt.kind == "int":
            values[opt.dest] = _int(text, opt)
        elif opt.kind == "multi":
            values.setdefault(opt.dest, []).append(text)
        else:
            values[opt.dest] = text


def _takes_value(opt: Opt) -> bool:
    return opt.kind in ("int", "str", "multi")


def _parse(verb: Verb, args: List[str]) -> Dict[str, Any]:
    names = _names(verb)
    values: Dict[str, Any] = {}
    positional: List[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if arg[:1] != "-" or arg == "-":
            positional.append(arg)
        elif arg[:2] == "--":
            name, eq, text = arg.partition("=")
            if name not in names:
                raise _Defer
            opt, given = names[name]
            if _takes_value(opt):
                if not eq:
                    if i >= len(args):
                        raise _Defer
                    text = args[i]
                    i += 1
                _set(values, opt, given, text)
            elif eq:
                raise _Defer  # a flag given a value: click's error
            else:
                _set(values, opt, given, None)
        else:  # -x, or bundled: -qv, -b4096
            for j in range(1, len(arg)):
                name = "-" + arg[j]
                if name not in names:
                    raise _Defer
                opt, given = names[name]
                if not _takes_value(opt):
                    _set(values, opt, given, None)
                    continue
                if j + 1 < len(arg):
                    text = arg[j + 1 :]
                elif i < len(args):
                    text = args[i]
                    i += 1
                else:
                    raise _Defer
                _set(values, opt, given, text)
                break
    kwargs: Dict[str, Any] = {}
    arguments = [p for p in verb.params if isinstance(p, Arg)]
    if len(positional) > len(arguments):
        raise _Defer
    for n, p in enumerate(arguments):
        if n < len(positional):
            kwargs[p.dest] = positional[n]
        elif p.default is REQUIRED:
            raise _Defer
        else:
            kwargs[p.dest] = p.default
    for o in verb.params:
        if isinstance(o, Opt):
            kwargs[o.dest] = values.get(o.dest, o.default)
    return kwargs


def parse(argv: List[str]) -> Optional[Tuple[Verb, Dict[str, Any]]]:
    """(verb, its parameters) for a command line this parser fully understands, else None.

    ``argv`` is the command line after ``pydelta`` (``sys.argv[1:]``).
    """
    if not argv or argv[0] not in VERBS or COMPLETE_ENV in os.environ:
        return None
    verb = VERBS[argv[0]]
    try:
        return verb, _parse(verb, argv[1:])
    except _Defer:
        return None
