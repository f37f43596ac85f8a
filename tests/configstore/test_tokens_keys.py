from __future__ import annotations

from agola.services.configstore.keys import generate_ssh_key, public_key_from_private, random_secret
from agola.services.configstore.tokens import (
    generate_token,
    hash_token,
    token_matches,
    user_token_name,
)
from agola.types.configstore import User


def test_tokens_are_random_and_stored_as_hash() -> None:
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50
    token = tokens.pop()
    assert len(token) == 40
    stored = hash_token(token)
    assert stored != token and len(stored) == 64
    assert token not in stored
    assert token_matches(token, stored)
    assert not token_matches(token + "x", stored)
    assert not token_matches(tokens.pop(), stored)


def test_user_token_lookup_by_value() -> None:
    t1, t2 = generate_token(), generate_token()
    user = User(id="u", name="user01", tokens={"ci": hash_token(t1), "laptop": hash_token(t2)})
    assert user_token_name(user, t1) == "ci"
    assert user_token_name(user, t2) == "laptop"
    assert user_token_name(user, generate_token()) is None
    # the stored user never contains the token values
    assert t1 not in str(user.to_json()) and t2 not in str(user.to_json())


def test_random_secret() -> None:
    assert random_secret() != random_secret()
    assert len(random_secret()) == 40


def test_ssh_key_pair() -> None:
    pair = generate_ssh_key(bits=2048)
    assert pair.private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert pair.public_openssh.startswith("ssh-rsa ")
    assert public_key_from_private(pair.private_pem) == pair.public_openssh
    assert "PRIVATE" not in repr(pair)
