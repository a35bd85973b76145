import paramiko

from harness.sshkey import RunKey


def test_the_kernel_parameter_carries_the_public_key_without_spaces():
    key = RunKey.generate()
    arg = key.kernel_arg
    assert not any(c.isspace() for c in arg)
    # rc.sh writes "${key%%:*} ${key#*:}" into authorized_keys: that must be the key.
    keytype, _, blob = arg.partition(":")
    assert f"{keytype} {blob}" == key.public_line
    assert keytype == key.private.get_name() and blob == key.private.get_base64()


def test_one_key_serves_every_guest_of_the_run():
    assert RunKey.of_this_run() is RunKey.of_this_run()
    assert isinstance(RunKey.of_this_run().private, paramiko.RSAKey)
