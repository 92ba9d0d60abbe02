"""The admin token `serve` makes when none is configured, kept in the data directory (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "admin-token"  # noqa: S105 (a file name, not a secret)


def token_file(data_dir: Path) -> Path:
    """Where `serve` keeps the token it made."""
    return data_dir / TOKEN_FILE


def kept_or_new_token(data_dir: Path) -> tuple[str, bool]:
    """The token kept in `data_dir`, or a new one written there (0600); True when new."""
    path = token_file(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        kept = path.read_text().strip()
        if not kept:
            raise ValueError(f"{path} is empty: delete it to have a new admin token made") from None
        return kept, False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token, True
