"""The SSH key of a run: generated fresh, never written into an image.

The guest learns the public half from the kernel command line at boot, so one cached image
serves every run while each run's key stays its own.

ECDSA P-256, here and for the guest's host key (initramfs.py): the guest's sshd verifies
and signs it with OpenSSL's optimised code, where OpenSSH does Ed25519 with its own
reference code, which under TCG takes 0.13 s more to log in.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new key of the type both the run and the guest's sshd use."""
    return ec.generate_private_key(ec.SECP256R1())


def public_line(key: ec.EllipticCurvePrivateKey) -> str:
    """'ecdsa-sha2-nistp256 AAAA...', as authorized_keys and known_hosts write it."""
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


@dataclass(frozen=True)
class RunKey:
    private: paramiko.PKey
    public_line: str          # "ecdsa-sha2-nistp256 AAAA..."

    @property
    def kernel_arg(self) -> str:
        """Type and key as one kernel parameter value (no spaces): 'TYPE:BASE64'."""
        return ":".join(self.public_line.split()[:2])

    @classmethod
    def generate(cls) -> "RunKey":
        key = generate_key()
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
        return cls(paramiko.ECDSAKey.from_private_key(io.StringIO(pem)), public_line(key))
