"""User API tokens: generated once, shown once, stored only as a hash (fixes quirk §11.1: the
reference stored token values in clear in the user object and its readdb).

* ``generate_token()`` makes a high-entropy value (160 random bits, 40 hex characters, the same
  look as the reference's tokens); the caller returns it to the user exactly once.
* ``hash_token()`` is what is stored (``User.tokens[name]``) and indexed (readdb ``user_token``):
  sha256 hex. A slow password hash is not needed because the token is random, not chosen by a
  person: a sha256 preimage search over 160 bits is out of reach.
* ``token_matches()`` compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from agola.types.configstore import User

TOKEN_BYTES = 20


def generate_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)


def user_token_name(user: User, token: str) -> str | None:
    """The name of ``user``'s token whose value is ``token``, else None.

    Every stored hash is compared (no early exit) so timing does not tell which one matched.
    """
    wanted = hash_token(token)
    found: str | None = None
    for name, stored in user.tokens.items():
        if hmac.compare_digest(wanted, stored):
            found = name
    return found
