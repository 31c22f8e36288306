"""Evidence files on disk. A file is stored under its sha256 (content-addressed), so the same
content is kept once and the name cannot be chosen by the uploader; the hash is what goes on
chain in ``submitEvidence``."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from escrow.settings import data_dir

CHUNK = 1 << 16


def evidence_dir() -> Path:
    """``<data>/evidence``."""
    return data_dir() / "evidence"


@dataclass(frozen=True)
class StoredFile:
    sha256: str  # hex, without 0x
    size_bytes: int
    storage_path: str  # relative to the evidence folder

    @property
    def onchain_hash(self) -> str:
        """The ``bytes32 contentHash`` to pass to ``submitEvidence`` (0x hex)."""
        return "0x" + self.sha256


def store_evidence(
    source: BinaryIO | bytes, root: Path | None = None, max_bytes: int | None = None
) -> StoredFile:
    """Writes ``source`` to ``root`` (default :func:`evidence_dir`) as ``ab/cd/<sha256>``.

    The data is written to a temporary file in the same folder and renamed into place, so a
    crash never leaves a partial file under a valid hash. Raises ``ValueError`` above
    ``max_bytes``.
    """
    root = root or evidence_dir()
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, bytes):
                chunks: Iterable[bytes] = [source]
            else:
                chunks = iter(lambda: source.read(CHUNK), b"")
            for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise ValueError(f"file is larger than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        relative = Path(sha[:2]) / sha[2:4] / sha
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return StoredFile(sha256=sha, size_bytes=size, storage_path=str(relative))


def evidence_path(storage_path: str, root: Path | None = None) -> Path:
    """Absolute path of a stored file; refuses paths that leave the evidence folder."""
    root = (root or evidence_dir()).resolve()
    path = (root / storage_path).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"evidence path outside the evidence folder: {storage_path}")
    return path


def verify_evidence(storage_path: str, sha256: str, root: Path | None = None) -> bool:
    """True when the stored file still has the hash recorded for it."""
    digest = hashlib.sha256()
    with evidence_path(storage_path, root).open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest() == sha256.removeprefix("0x")
