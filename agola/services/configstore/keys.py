"""Generated secrets of users and projects: random signing secrets, webhook secrets, and the SSH
key pair a project uses as deploy key (spec §5.2, §6.4)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

# The reference used 4096-bit RSA keys for deploy keys.
DEFAULT_SSH_KEY_BITS = 4096


def random_secret() -> str:
    """A random secret with the look of the reference's (sha1 hex, 40 characters)."""
    return secrets.token_hex(20)


@attrs.frozen
class SSHKeyPair:
    private_pem: str = attrs.field(repr=False)
    public_openssh: str


def generate_ssh_key(bits: int = DEFAULT_SSH_KEY_BITS) -> SSHKeyPair:
    """A new RSA key pair: the private key PEM (PKCS#1, as the reference stores it) and the public
    key in OpenSSH ``authorized_keys`` form (what a git host takes as a deploy key).

    Generating 4096 bits takes around a second: run it in a thread from async code.
    """
    # Imported here: only the roles that create projects need it.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.TraditionalOpenSSL,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode()
    return SSHKeyPair(private_pem=private_pem, public_openssh=_public_openssh(key.public_key()))


def public_key_from_private(private_pem: str) -> str:
    """The OpenSSH public key line of a stored private key PEM."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return _public_openssh(key.public_key())


def _public_openssh(public_key: PublicKeyTypes) -> str:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        encoding=serialization.Encoding.OpenSSH,
        format=serialization.PublicFormat.OpenSSH,
    ).decode()
