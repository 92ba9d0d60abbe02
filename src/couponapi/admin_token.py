"""The secrets `serve` makes when none is configured, kept in the data directory (0600): the
admin token, and the HS256 secret of user tokens (`couponapi token` signs with the same)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "admin-token"  # noqa: S105 (a file name, not a secret)
JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 (a file name, not a secret)


def token_file(data_dir: Path, name: str = TOKEN_FILE) -> Path:
    """Where `serve` keeps the secret it made."""
    return data_dir / name


def kept_or_new_token(data_dir: Path, name: str = TOKEN_FILE) -> tuple[str, bool]:
    """The secret kept in `data_dir` under `name`, or a new one written there (0600); True
    when new. Created with O_EXCL: two processes starting at once agree on one secret."""
    path = token_file(data_dir, name)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        kept = path.read_text().strip()
        if not kept:
            raise ValueError(f"{path} is empty: delete it to have a new one made") from None
        return kept, False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token, True


def kept_token(data_dir: Path, name: str) -> str | None:
    """The secret kept in `data_dir` under `name`, None when there is none (never makes one)."""
    try:
        return token_file(data_dir, name).read_text().strip() or None
    except OSError:
        return None
