"""Bearer tokens for the WES server: a token file maps tokens to users.

Each non-empty line of the file is `TOKEN` or `TOKEN USER` (`#` starts a comment). Tokens without
a user all belong to the user `default`. Each user sees, reads and cancels only their own runs.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Dict, Optional

from ..errors import ConfigError
from .run_request import WESError


class TokenMap:
    def __init__(self, tokens: Dict[str, str]):
        self._tokens = tokens

    @classmethod
    def from_file(cls, path: Path) -> "TokenMap":
        tokens: Dict[str, str] = {}
        try:
            text = Path(path).read_text()
        except OSError as exn:
            raise ConfigError(f"cannot read the token file {path}: {exn.strerror}") from None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) > 2:
                raise ConfigError(f"{path}:{number}: expected `TOKEN [USER]`")
            if len(parts[0]) < 16:
                raise ConfigError(f"{path}:{number}: token too short (use at least 16 characters, e.g. `openssl rand -hex 32`)")
            tokens[parts[0]] = parts[1] if len(parts) == 2 else "default"
        if not tokens:
            raise ConfigError(f"{path}: no tokens")
        return cls(tokens)

    def user(self, authorization: Optional[str]) -> str:
        """The user an `Authorization: Bearer TOKEN` header names, or a 401 WESError."""
        if not authorization:
            raise WESError(401, "this server needs a bearer token: send `Authorization: Bearer TOKEN`")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise WESError(401, "the Authorization header must be `Bearer TOKEN`")
        token = token.strip()
        found = None
        for known, user in self._tokens.items():  # compare every token in constant time
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        if found is None:
            raise WESError(401, "the bearer token is not valid on this server")
        return found
