"""The SSH key of a run: generated fresh, never written into an image.

The guest learns the public half from the kernel command line at boot, so one cached image
serves every run while each run's key stays its own.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class RunKey:
    private: paramiko.PKey
    public_line: str          # "ssh-ed25519 AAAA..."

    @property
    def public_blob(self) -> str:
        """The base64 part alone: it has no spaces, so it fits one kernel parameter."""
        return self.public_line.split()[1]

    @classmethod
    def generate(cls) -> "RunKey":
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        return cls(paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), public)
