"""Typer commands built from the option table (:mod:`pydelta._cliopts`).

The typer side of the command line: help, usage errors, shell completion,
and every command line the fast parser (:mod:`pydelta._cliparse`) does not
take. Each verb's parameters become an ``Annotated[type, typer.Option(...)]``
signature, so typer parses exactly what the table declares, and the command
hands them to :func:`pydelta._cliopts.invoke`, as the fast parser does.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Dict, List, Optional

import typer

from . import _cliopts
from ._cliopts import REQUIRED, Arg, Opt, Param, Verb

_TYPES: Dict[str, Any] = {"int": int, "str": str, "flag": bool, "switch": bool, "count": int}


def annotated(param: Param) -> Any:
    """``Annotated[type, typer.Argument/Option(...)]`` for one parameter of the table."""
    if isinstance(param, Arg):
        kw: Dict[str, Any] = {"metavar": param.metavar, "help": param.help}
        if not param.show_default:
            kw["show_default"] = False
        base: Any = str
        info: Any = typer.Argument(**kw)
        optional = param.default is None
    else:
        kw = {"help": param.help}
        for name in ("metavar", "min", "show_default"):
            if getattr(param, name) is not None:
                kw[name] = getattr(param, name)
        if param.kind == "count":
            kw["count"] = True
        base = List[str] if param.kind == "multi" else _TYPES[param.kind]
        info = typer.Option(*param.names, **kw)
        optional = param.default is None
    return Annotated[Optional[base] if optional else base, info]  # type: ignore[valid-type]


def _normalise(param: Opt, value: Any) -> Any:
    """What typer hands over, as the fast parser gives it (a repeated option: a list or None)."""
    if param.kind == "multi":
        return list(value) if value else None
    return value


def command(verb: Verb) -> Any:
    """A function typer can register for ``verb``: its signature is the table's."""
    params = [
        inspect.Parameter(
            p.dest,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if p.default is REQUIRED else p.default,
            annotation=annotated(p),
        )
        for p in verb.params
    ]
    kinds = {p.dest: p for p in verb.params if isinstance(p, Opt)}

    def run_verb(**kwargs: Any) -> None:
        for dest, param in kinds.items():
            kwargs[dest] = _normalise(param, kwargs[dest])
        _cliopts.invoke(verb, kwargs)  # looked up at call time (tests record the call)

    run_verb.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run_verb.__name__ = run_verb.__qualname__ = verb.name
    run_verb.__doc__ = verb.help
    return run_verb


def add_verb(app: typer.Typer, verb: Verb, **kwargs: Any) -> None:
    """Register ``verb`` on ``app`` (``kwargs``: more of typer's command settings)."""
    app.command(verb.name, epilog=verb.epilog or None, no_args_is_help=True, **kwargs)(
        command(verb)
    )
