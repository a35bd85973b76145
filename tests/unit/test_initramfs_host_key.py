import stat

import paramiko

from harness import initramfs


def test_host_key_is_an_openssh_key_only_root_reads_and_its_public_half(tmp_path):
    key_file = tmp_path / "ssh_host_ed25519_key"
    public = initramfs._host_key(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    private = paramiko.Ed25519Key.from_private_key_file(str(key_file))
    assert public == f"ssh-ed25519 {private.get_base64()}"
    assert initramfs._host_key(tmp_path / "other") != public   # a new key each build
