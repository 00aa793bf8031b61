"""The file verbs' work: signature, delta, patch, info.

Called by either parser (:func:`pydelta._cliopts.invoke`) with the verb's
parameters from the option table (:mod:`pydelta._cliopts`). Each parses
nothing: it checks what the library cannot, calls the library once inside
:func:`~pydelta._cliutil.run` (one line on stderr and a distinct exit status
per kind of failure) and prints. The library is imported inside each verb:
a verb loads only what it runs.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Optional

from ._cliutil import (
    Bar,
    Failure,
    delta_result_size,
    input_size,
    one_stdin,
    refuse_terminal,
    run,
    say,
    summary,
    want_progress,
)


def _is_signature(path: str) -> bool:
    """True if the file at path starts like a pydelta signature."""
    from .formats import SIGNATURE, sniff

    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(16)) == SIGNATURE
    except OSError:
        return False


def signature_cmd(
    old: str,
    sig: Optional[str],
    block_size: Optional[int],
    strong_len: Optional[int],
    sig_format: str,
    rollsum: str,
    strong_hash: Optional[str],
    progress: Optional[bool],
    quiet: bool,
    verbose: bool,
    threads: int,
) -> None:
    """``pydelta signature``."""

    def action() -> None:
        from .signature import signature as make_signature

        refuse_terminal(sig, "signature")
        if sig_format not in ("native", "rdiff"):
            raise Failure(f"unknown --format {sig_format!r}: use native or rdiff")
        if sig_format == "native" and rollsum != "rabinkarp":
            raise Failure("--rollsum applies to --format rdiff only")
        native_hashes = ("xxh3", "blake3")
        if sig_format == "native" and strong_hash not in (None,) + native_hashes:
            raise Failure(f"unknown --hash {strong_hash!r}: use xxh3 or blake3")
        if sig_format == "rdiff" and strong_hash in native_hashes:
            raise Failure("--hash xxh3/blake3 apply to native signatures; rdiff's: blake2 or md4")
        size = input_size(old)
        with Bar(want_progress(progress, quiet, size), size, "signature") as bar:
            made = make_signature(
                old,
                "-" if sig is None else sig,
                block_size=block_size,
                strong_len=strong_len,
                progress=bar.callback,
                threads=threads,
                format=sig_format,
                rdiff_weak=rollsum,
                rdiff_hash=strong_hash if sig_format == "rdiff" and strong_hash else "blake2",
                strong_hash=strong_hash if sig_format == "native" else None,
            )
        if verbose and not quiet:
            n = made.block_count
            say(
                f"pydelta: old {made.basis_size} bytes, {n} block{'s' if n != 1 else ''} "
                f"of {made.block_len} bytes, {made.strong_len}-byte strong hashes"
            )

    run(action)


def delta_cmd(
    sig: str,
    new: str,
    delta_out: Optional[str],
    progress: Optional[bool],
    quiet: bool,
    threads: int,
    verbose: bool,
    compress: Optional[bool],
    level: int,
) -> None:
    """``pydelta delta``."""

    def action() -> None:
        from .delta import delta as make_delta
        from .errors import NotASignatureError
        from .formats.literals import check_level

        one_stdin(sig, "SIG", new, "NEW")
        refuse_terminal(delta_out, "delta")
        check_level(level)
        size = input_size(new)
        with Bar(want_progress(progress, quiet, size), size, "delta") as bar:
            try:
                stats = make_delta(
                    sig,
                    new,
                    "-" if delta_out is None else delta_out,
                    progress=bar.callback,
                    threads=threads,
                    compress=compress,
                    level=level,
                )
            except NotASignatureError as e:
                if new != "-" and "wrong order" not in str(e) and _is_signature(new):
                    raise NotASignatureError(
                        f"{e} (arguments in the wrong order? NEW {new} is a signature: "
                        "it is 'pydelta delta SIG NEW')"
                    ) from None
                raise
        if verbose and not quiet:
            say(summary(stats))

    run(action)


def patch_cmd(
    old: str,
    delta_in: str,
    out: Optional[str],
    progress: Optional[bool],
    quiet: bool,
    verbose: bool,
    fsync: bool,
) -> None:
    """``pydelta patch``."""

    def action() -> None:
        import warnings

        from .errors import UnverifiedWarning
        from .patch import patch as apply_patch

        one_stdin(old, "OLD", delta_in, "DELTA")
        refuse_terminal(out, "result")
        # the bar counts result bytes; "large" goes by the bigger of result and OLD
        total = delta_result_size(delta_in)
        basis_size = input_size(old)
        known = [s for s in (total, basis_size) if s is not None]
        on = want_progress(progress, quiet, max(known) if known else None)
        with Bar(on, total, "patch") as bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnverifiedWarning)
            result = apply_patch(
                sys.stdin.buffer if old == "-" else old,
                delta_in,
                "-" if out is None else out,
                progress=bar.callback,
                fsync=fsync,
            )
        for w in caught:  # an rdiff delta: say the result is unverified
            if not issubclass(w.category, UnverifiedWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            elif not quiet:
                sys.stderr.write(f"pydelta: warning: {w.message}\n")
                sys.stderr.flush()

        if verbose and not quiet:
            check = "verified" if result.verified else "NOT verified (rdiff delta)"
            say(f"pydelta: result {result.size} bytes, BLAKE3 {result.digest.hex()} ({check})")

    run(action)


def info_cmd(file: str, as_json: bool, quiet: bool) -> None:
    """``pydelta info``."""

    def action() -> None:
        from .info import info as describe_file

        found = describe_file(file)
        if as_json:
            import json

            obj: Dict[str, Any] = {"format": found.format, "kind": found.kind}
            obj.update({k.replace(" ", "_"): v for k, v in found.fields.items()})
            text = json.dumps(obj)
        else:
            text = str(found)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    run(action)
