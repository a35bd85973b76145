import dataclasses

import pytest

from harness import arch
from harness.errors import MissingHostTool
from harness import machine as machinemod
from harness.machine import Machine


def test_missing_qemu_names_the_package(tmp_path):
    profile = dataclasses.replace(arch.get("s390x"), qemu_binary="qemu-system-s390x-missing")
    machine = Machine(image=None, profile=profile, workdir=tmp_path)
    with pytest.raises(MissingHostTool) as info:
        machine.boot()
    assert "qemu-system-misc" in str(info.value)
    machine.shutdown()


@pytest.mark.parametrize("argv, complaint", [
    (["--smp", "0"], "guest CPUs must be a whole number of 1 or more, got '0'"),
    (["--smp", "-1"], "guest CPUs must be a whole number of 1 or more, got '-1'"),
    (["--memory", "16"], "guest memory is a number of MiB of at least 128"),
    (["--memory", "0"], "guest memory is a number of MiB of at least 128")])
def test_bad_machine_options_are_refused_before_anything_runs(argv, complaint, capsys):
    from harness import cli
    with pytest.raises(SystemExit) as info:
        cli.main(["run", *argv, "scenarios/smoke"])
    assert info.value.code == 2
    assert complaint in capsys.readouterr().err


def _ppc64le_machine(tmp_path, config):
    """A Machine (not booted) for an image whose kernel config has ``config``'s symbols."""
    class Image:
        def config_symbols(self):
            return config
    return Machine(image=Image(), profile=arch.get("ppc64le"), workdir=tmp_path)


@pytest.mark.parametrize("config, factor", [
    ({}, 1.0), ({"CONFIG_KASAN": "y"}, 2.0),
    ({"CONFIG_KASAN": "y", "CONFIG_PROVE_LOCKING": "y"}, 3.0),
    ({"CONFIG_PROVE_LOCKING": "n"}, 1.0)])
def test_a_debug_kernel_gets_longer_to_boot(tmp_path, monkeypatch, config, factor):
    monkeypatch.setattr(machinemod, "host_load", lambda: 1.0)   # whatever runs beside
    machine = _ppc64le_machine(tmp_path, config)
    assert machine.timeout("init") == pytest.approx(60.0 * 1.5 * factor)
    machine.shutdown()


@pytest.mark.parametrize("load, cores, stretch", [
    (0.3, 2, 1.0), (2.0, 2, 1.0), (5.0, 2, 2.5), (40.0, 2, machinemod.HOST_LOAD_CAP)])
def test_an_oversubscribed_host_stretches_every_wait(tmp_path, monkeypatch, load, cores,
                                                      stretch):
    monkeypatch.setattr(machinemod.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(machinemod.os, "cpu_count", lambda: cores)
    machine = _ppc64le_machine(tmp_path, {})
    assert machine.scale == pytest.approx(1.5 * stretch)
    assert machine.timeout("init") == pytest.approx(60.0 * 1.5 * stretch)
    machine.shutdown()


def _silent_server(path):
    """A UNIX socket that takes connections and never speaks: an sshd that does not come up
    (the guest's port is open, nothing answers). Closing it ends the connections."""
    import socket
    import threading
    server, held = socket.socket(socket.AF_UNIX), []
    server.bind(str(path))
    server.listen()

    def serve():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:   # closed by the test
                return
    threading.Thread(target=serve, daemon=True).start()
    return server, held


def test_paramikos_tracebacks_of_a_failed_handshake_go_to_the_ssh_log_not_the_terminal(
        tmp_path, capsys, caplog):
    """paramiko logs `Error reading SSH protocol banner` with its traceback through its
    logger; the terminal (and pytest's capture, which shows in reports) must get only the
    harness's message, which names the file where paramiko's records went."""
    import logging
    from types import SimpleNamespace

    import paramiko

    from harness.errors import WaitTimeout
    from harness.guest import Guest
    host_key = paramiko.RSAKey.generate(1024)
    machine = SimpleNamespace(
        ssh_socket=tmp_path / "ssh", ssh_log=tmp_path / "ssh.log",
        host_key=f"ssh-rsa {host_key.get_base64()}",
        key=SimpleNamespace(private=host_key), alive=lambda: True, check_alive=lambda: None)
    server, held = _silent_server(machine.ssh_socket)
    caplog.set_level(logging.DEBUG)   # as a user's `--log-level` would: root sees everything
    try:
        with pytest.raises(WaitTimeout) as info:
            Guest.connect(machine, timeout=1.0)   # paramiko's banner_timeout
    finally:
        for sock in [server, *held]:
            sock.close()
    assert "Error reading SSH protocol banner" in str(info.value)
    assert f"(the SSH client's log: {machine.ssh_log})" in str(info.value)
    log = machine.ssh_log.read_text()
    assert "ERROR Exception (client): Error reading SSH protocol banner" in log
    assert "Traceback (most recent call last)" in log
    assert capsys.readouterr().err == ""
    assert not [r for r in caplog.records if r.name.startswith("paramiko")]


def test_a_failed_connection_names_the_ssh_log_only_if_paramiko_wrote_one(tmp_path):
    """paramiko logs an EOF below INFO: then there is no file to point to."""
    from types import SimpleNamespace

    from harness.guest import ssh_log_note
    machine = SimpleNamespace(ssh_log=tmp_path / "ssh.log")
    assert ssh_log_note(machine) == ""
    machine.ssh_log.write_text("ERROR Exception (client): Error reading SSH protocol banner\n")
    assert ssh_log_note(machine) == f" (the SSH client's log: {machine.ssh_log})"
