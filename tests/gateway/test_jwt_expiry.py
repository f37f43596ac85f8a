"""Login tokens always expire: a JWT without ``exp`` (or with a non-numeric one) is refused even
when its signature is good; the lifetime is ``gateway.tokenSigning.duration``."""

from __future__ import annotations

import pytest

from agola.errors import Unauthorized
from agola.services.gateway.auth import TokenSigner


def test_a_signed_token_without_exp_is_refused() -> None:
    signer = TokenSigner("hmac", key=b"k" * 32)
    for claims in ({"sub": "u1"}, {"sub": "u1", "exp": "never"}, {"sub": "u1", "exp": True}):
        with pytest.raises(Unauthorized, match="invalid token"):
            signer.decode(signer.encode(claims))


def test_login_tokens_live_for_the_configured_duration() -> None:
    signer = TokenSigner("hmac", key=b"k" * 32, duration=60)
    token = signer.login_token("u1", now=1000)
    assert signer.decode(token, now=1059)["sub"] == "u1"
    with pytest.raises(Unauthorized, match="token expired"):
        signer.decode(token, now=1060)
