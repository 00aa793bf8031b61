"""The command line's option table: every verb's arguments and options as
plain data (names, short flags, kinds, defaults, help).

Two parsers are built from it, so they cannot drift apart: the typer
commands (:mod:`pydelta._cli_typer`, for help, errors and completion) and
the fast parser of the common verbs (:mod:`pydelta._cliparse`), which
starts the work without importing typer. Nothing here imports typer or the
library: ``pydelta signature ...`` reads this table and then only what its
work needs.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

#: The default of an argument that must be given.
REQUIRED = ...

#: Option kinds: what follows the option on the command line, and the value.
#: int, str: one value (``--x V``, ``--x=V``, ``-xV``); flag: no value, True;
#: switch: ``--x/--no-x``, True/False (default may be None: not given);
#: count: no value, how many times given; multi: one value, repeatable (a list).
KINDS = ("int", "str", "flag", "switch", "count", "multi")


class _Record:
    """A plain record (not a NamedTuple: building those compiles code at import,
    ~1 ms each, paid by every command)."""

    __slots__: Tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    def __hash__(self) -> int:
        return hash(tuple(repr(getattr(self, k)) for k in self.__slots__))


class Arg(_Record):
    """A positional argument (``default``: :data:`REQUIRED`, or the value when omitted)."""

    __slots__ = ("dest", "metavar", "help", "default", "show_default")

    def __init__(
        self, dest: str, metavar: str, help: str, default: Any = REQUIRED, show_default: bool = True
    ) -> None:
        self.dest = dest
        self.metavar = metavar
        self.help = help
        self.default = default
        self.show_default = show_default


class Opt(_Record):
    """An option; ``names`` as typer takes them (``"--fsync/--no-fsync"``)."""

    __slots__ = ("dest", "names", "kind", "default", "help", "metavar", "min", "show_default")

    def __init__(
        self,
        dest: str,
        names: Tuple[str, ...],
        kind: str,
        default: Any,
        help: str,
        metavar: Optional[str] = None,
        min: Optional[int] = None,
        show_default: Optional[bool] = None,
    ) -> None:
        assert kind in KINDS, kind
        self.dest = dest
        self.names = names
        self.kind = kind
        self.default = default
        self.help = help
        self.metavar = metavar
        self.min = min
        self.show_default = show_default

    def replace(self, **changes: Any) -> "Opt":
        """A copy with some fields changed (e.g. another help text)."""
        fields = {k: getattr(self, k) for k in self.__slots__}
        fields.update(changes)
        return Opt(**fields)


Param = Union[Arg, Opt]


class Verb(_Record):
    """A command: its parameters in order, its help, and where it runs
    (``impl``: ``"module:function"`` inside pydelta, called with the
    parameters as keyword arguments)."""

    __slots__ = ("name", "params", "impl", "help", "epilog")

    def __init__(
        self, name: str, params: Tuple[Param, ...], impl: str, help: str, epilog: str = ""
    ) -> None:
        self.name = name
        self.params = params
        self.impl = impl
        self.help = help
        self.epilog = epilog


def invoke(verb: Verb, kwargs: Dict[str, Any]) -> None:
    """Run a verb's implementation with its parsed parameters (both parsers end here)."""
    from importlib import import_module

    module, _, function = verb.impl.partition(":")
    getattr(import_module(f"pydelta.{module}"), function)(**kwargs)


# -- options shared by the verbs ---------------------------------------------

PROGRESS = Opt(
    "progress",
    ("--progress/--no-progress",),
    "switch",
    None,
    "Show a progress bar on stderr. Default: on when stderr is a terminal and the input "
    "is at least 64 MiB.",
    show_default=False,
)
QUIET = Opt(
    "quiet",
    ("--quiet", "-q"),
    "flag",
    False,
    "Print nothing on stderr but errors (no progress bar).",
)
THREADS = Opt(
    "threads",
    ("--threads", "-j"),
    "int",
    0,
    "Threads to use; 0 (the default) means all cores. The output is the same for any count.",
    min=0,
)
VERBOSE = Opt("verbose", ("--verbose", "-v"), "flag", False, "Print a one-line summary on stderr.")
LEVEL = Opt("level", ("--level",), "int", 1, "zstd compression level (1..22).", show_default=True)
FSYNC = Opt(
    "fsync",
    ("--fsync/--no-fsync",),
    "switch",
    True,
    "fsync the result before it replaces OUT, so a crash cannot leave a partial file.",
)

PIPELINE_EXAMPLE = (
    "ssh host pydelta signature f | pydelta delta - f.new | ssh host pydelta patch f - f"
)

# -- the file verbs ----------------------------------------------------------

SIGNATURE = Verb(
    "signature",
    (
        Arg("old", "OLD", "The old file (the basis); '-' reads standard input."),
        Arg("sig", "SIG", "Where to write the signature; omitted or '-' is standard output.", None),
        Opt(
            "block_size",
            ("--block-size", "-b"),
            "int",
            None,
            "Block length in bytes (1..67108864). Default: from the size of OLD (square root "
            "rule, 1 KiB..1 MiB; 32 KiB for a pipe; with --format rdiff, librsync's rule).",
            show_default=False,
        ),
        Opt(
            "strong_len",
            ("--strong-len", "-S"),
            "int",
            None,
            "Bytes of strong hash kept per block, default 16: 8..16 of XXH3-128, 8..32 of "
            "BLAKE3 (more than 16 picks BLAKE3 unless --hash says). With --format rdiff as "
            "rdiff's -S: 1..32 (1..16 for MD4), default and 0 the maximum, -1 librsync's "
            "minimum.",
            show_default=False,
        ),
        Opt(
            "sig_format",
            ("--format",),
            "str",
            "native",
            "native (pydelta's own, verified) or rdiff (librsync's format, what 'rdiff "
            "signature' writes, for rdiff/librsync peers).",
        ),
        Opt(
            "rollsum",
            ("--rollsum", "-R"),
            "str",
            "rabinkarp",
            "Rolling sum of an rdiff signature: rabinkarp (rdiff's default) or rollsum.",
        ),
        Opt(
            "strong_hash",
            ("--hash", "-H"),
            "str",
            None,
            "Per-block strong hash: xxh3 (XXH3-128, the default) or blake3; with --format "
            "rdiff: blake2 (rdiff's default) or md4 (legacy). Every delta is verified by "
            "the whole file's BLAKE3 either way.",
            show_default=False,
        ),
        PROGRESS,
        QUIET,
        VERBOSE,
        THREADS,
    ),
    "_cli_verbs:signature_cmd",
    """Write the signature of OLD to SIG.

    The signature is small (about 24 bytes per block) and is all the sender
    needs to make a delta against OLD. With --format rdiff it is a librsync
    signature, byte for byte what 'rdiff signature' writes with the same
    -b/-S/-H/-R options; 'pydelta delta' and 'rdiff delta' both accept it.
    """,
    "\b\nExample:\n"
    "  pydelta signature big.img big.img.sig\n"
    "  ssh host pydelta signature big.img > big.img.sig",
)

DELTA = Verb(
    "delta",
    (
        Arg("sig", "SIG", "Signature of the old file; '-' reads standard input."),
        Arg("new", "NEW", "The new file; '-' reads standard input."),
        Arg(
            "delta_out",
            "DELTA",
            "Where to write the delta; omitted or '-' is standard output.",
            None,
            show_default=False,
        ),
        PROGRESS,
        QUIET,
        THREADS,
        VERBOSE.replace(
            help="Print a one-line summary on stderr: new size, bytes copied and literal, "
            "delta size."
        ),
        Opt(
            "compress",
            ("--compress/--no-compress",),
            "switch",
            None,
            "Send literal data zstd-compressed where that saves at least 3%, per literal: "
            "plain or with the bytes of 16-bit values grouped (float16/bfloat16), whichever "
            "is smaller. Default: on if the zstandard package is installed. --no-compress "
            "writes deltas that older pydelta versions read.",
            show_default=False,
        ),
        LEVEL,
    ),
    "_cli_verbs:delta_cmd",
    """Write the delta that turns the file SIG was made from into NEW.

    NEW is read once, front to back, so it may be a pipe. If SIG is an rdiff
    (librsync) signature, DELTA is a librsync delta that 'rdiff patch' applies.
    """,
    f"\b\nExample:\n  pydelta delta old.sig new.bin new.delta\n  {PIPELINE_EXAMPLE}",
)

PATCH = Verb(
    "patch",
    (
        Arg(
            "old",
            "OLD",
            "The old file the signature was made from (a regular file: it is read at random "
            "offsets; '-' only if standard input is redirected from a file).",
        ),
        Arg("delta_in", "DELTA", "The delta; '-' reads standard input."),
        Arg(
            "out",
            "OUT",
            "Where to write the result; omitted or '-' is standard output. May be OLD itself: "
            "it is replaced only once the result is verified.",
            None,
        ),
        PROGRESS,
        QUIET,
        VERBOSE,
        FSYNC,
    ),
    "_cli_verbs:patch_cmd",
    """Apply DELTA to OLD and write the verified result to OUT.

    A result written to a file appears (atomically) only after its size and
    BLAKE3 digest match the delta's; on any error an existing OUT is left
    as it was. An rdiff (librsync) delta is applied too, but it carries no
    digest: its result cannot be verified, and a warning says so (unless
    --quiet).
    """,
    "\b\nExample:\n"
    "  pydelta patch old.bin new.delta new.bin\n"
    "  pydelta patch big.img big.img.delta big.img     # in place\n"
    f"  {PIPELINE_EXAMPLE}",
)

INFO = Verb(
    "info",
    (
        Arg(
            "file",
            "FILE",
            "A pydelta or rdiff (librsync) signature or delta; '-' reads standard input.",
        ),
        Opt(
            "as_json",
            ("--json",),
            "flag",
            False,
            "Print one JSON object: format, kind, and the fields with snake_case keys "
            "(digests as hex strings, sizes as integers).",
        ),
        QUIET,
    ),
    "_cli_verbs:info_cmd",
    """Describe what a signature or delta holds (block size, sizes, digests).""",
    "\b\nExample:\n  pydelta info old.sig\n  pydelta info new.delta",
)

#: The file verbs, in the order ``pydelta --help`` lists them (sync follows:
#: :data:`pydelta._cli_sync.SYNC`).
FILE_VERBS = (SIGNATURE, DELTA, PATCH, INFO)
