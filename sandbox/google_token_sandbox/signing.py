"""Signs ID tokens the way Google does: RS256 JWTs with the key id in the header."""

from __future__ import annotations

import base64
import functools
import json
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class IdTokenSigner:
    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self.public_key_pem = (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, claims: Mapping[str, Any]) -> str:
        header = {"alg": "RS256", "kid": self.key_id, "typ": "JWT"}
        signing_input = f"{_b64_json(header)}.{_b64_json(claims)}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def certs(self) -> dict[str, str]:
        """Key id -> public key: the form of Google's `oauth2/v1/certs` that google-auth reads."""
        return {self.key_id: self.public_key_pem}


@functools.cache
def process_signer() -> IdTokenSigner:
    """One key per process: making an RSA key takes a noticeable fraction of a second."""
    return IdTokenSigner()


def _b64_json(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
