"""SSH keys: the run's (generated fresh, never written into an image) and the guest's.

The guest learns the run key's public half from the kernel command line at boot, so one
cached image serves every run while each run's key stays its own.

The key types are chosen for what the emulated guest's sshd has to compute:
- the run key is RSA: sshd verifies its log-in signature, and an RSA verification is a
  few multiplications. Under TCG an ECDSA log-in took 0.29 s on s390x and RSA 0.15 s; an
  Ed25519 one 0.26 s on x86_64 (OpenSSH's own reference code) and RSA or ECDSA 0.13 s;
- the host key (initramfs.py) is Ed25519: sshd loads it at its start and signs with it
  once. Loading an ECDSA key checks its point (0.1 s on s390x), and boots to SSH with
  an ECDSA host key took 0.1 s longer on s390x, the same on x86_64.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def host_key() -> ed25519.Ed25519PrivateKey:
    """A new key for a guest's sshd."""
    return ed25519.Ed25519PrivateKey.generate()


def public_line(key) -> str:
    """'TYPE AAAA...', as authorized_keys and known_hosts write a public key."""
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


@dataclass(frozen=True)
class RunKey:
    private: paramiko.PKey
    public_line: str          # "ssh-rsa AAAA..."

    @property
    def kernel_arg(self) -> str:
        """Type and key as one kernel parameter value (no spaces): 'TYPE:BASE64'."""
        return ":".join(self.public_line.split()[:2])

    @classmethod
    def generate(cls) -> "RunKey":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(paramiko.RSAKey(key=key), public_line(key))

    @classmethod
    @functools.lru_cache(maxsize=None)
    def of_this_run(cls) -> "RunKey":
        """One key for every guest of this process: an RSA key takes 0.1 s to make."""
        return cls.generate()
