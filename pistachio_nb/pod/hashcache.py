"""sha256 of large model files, remembered by (size, mtime): a pod's models are hashed once, not at every lock."""

from __future__ import annotations

import json
from pathlib import Path

from ..downloads import sha256_file
from ..files import write_json


class HashCache:
    """A JSON file of path -> [size, mtime_ns, sha256]; an entry is trusted only while size and mtime match."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._entries = {}
        self.hashed = 0  # files actually read in this run

    def sha256(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        size, mtime, digest = self._entries.get(key, (None, None, None))
        if (size, mtime) != (st.st_size, st.st_mtime_ns):
            digest = sha256_file(file)
            self._entries[key] = [st.st_size, st.st_mtime_ns, digest]
            self.hashed += 1
        return digest

    def save(self) -> None:
        write_json(self.path, self._entries)
