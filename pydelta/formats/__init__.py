"""pydelta's file formats, as bytes: no I/O and no kernels here.

* :mod:`.magic` - every magic number and the one :func:`sniff`;
* :mod:`.native` - pydelta's signature and delta headers, trailers and the
  one reader of delta instructions;
* :mod:`.literals` - compressed literals ('Z' instructions);
* :mod:`.rdiff` - librsync's (rdiff's) signature and delta formats.

docs/FORMAT.md describes pydelta's formats byte by byte, and
docs/librsync-format.md librsync's.
"""

from .magic import DELTA, RDIFF_DELTA, RDIFF_SIGNATURE, SIGNATURE, describe_magic, sniff

__all__ = ["sniff", "describe_magic", "SIGNATURE", "DELTA", "RDIFF_SIGNATURE", "RDIFF_DELTA"]
