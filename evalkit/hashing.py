"""SHA-256 of a file, for the record of what a run read.

A module of its own, below :mod:`evalkit.readers` and :mod:`evalkit.codebook`,
which both record the hash of every file they open (tables, ``codebook.yml``,
the XLSForm).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]


def sha256_file(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
