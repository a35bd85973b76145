"""The shadow variable counter on real guests: exact with thousands of live variables,
cheap to read, and a clear refusal where the kernel's table is not what it expects."""
import pytest

from harness import livepatch, runner, shadow

pytestmark = pytest.mark.vm
SESSION = 0x5e551   # klp_sessions_v1's per-session shadow variables


@pytest.fixture
def arch_state(klp_harness_session, klp_arch, klp_guest):
    return klp_harness_session.state(klp_arch)


def _load(guest, catalog, name):
    livepatch.load(guest, f"{runner.WORKDIR}/{runner.push_module(guest, catalog, name)}")


def test_the_counter_is_exact_with_thousands_of_live_variables(arch_state, klp_guest,
                                                              klp_shadow):
    counter = klp_shadow
    start = counter.read()
    _load(klp_guest, arch_state.catalog, "klp_sessions")
    _load(klp_guest, arch_state.catalog, "klp_sessions_v1")
    try:
        livepatch.wait_transition(klp_guest, "klp_sessions_v1", runner.STEP_TIMEOUT)
        klp_guest.run("echo create 3000 > /proc/klp_sessions; cat /proc/klp_sessions >/dev/null")
        added = counter.read().minus(start)
        assert (added.of(SESSION), added.of(0x5e550), added.total) == (3000, 1, 3001)
        klp_guest.run("echo destroy 1234 > /proc/klp_sessions")
        assert counter.read().minus(start).of(SESSION) == 3000 - 1234
        listed = counter.objects(SESSION, limit=5000)
        assert len(listed) == 3000 - 1234 and len(set(listed)) == len(listed)
    finally:
        livepatch.cleanup(klp_guest, runner.STEP_TIMEOUT)
        livepatch.unload_modules(klp_guest, ["klp_sessions_v1", "klp_sessions"])
    assert counter.read().minus(start).total == 0


def test_a_table_that_is_not_the_kernels_is_refused_with_the_reason(arch_state, klp_guest,
                                                                   klp_shadow):
    """Point the counter at the lock instead of the table: its self-test must not find its
    probe variable, and loading must fail saying so (not count wrong, not crash)."""
    before = klp_shadow.read()
    found = klp_guest.run("grep ' klp_shadow_lock$' /proc/kallsyms").stdout.split()[0]
    klp_guest.run(f"rmmod {shadow.MODULE}")
    try:
        remote = f"/root/{shadow.MODULE}.ko"
        result = livepatch.load(klp_guest, remote, {"hash_addr": f"0x{found}",
                                                    "lock_addr": f"0x{found}"},
                                check=False, kmod=True)
        assert not result.ok
        why = klp_guest.run(f"dmesg | grep '{shadow.MODULE}: this kernel' | tail -n 1").stdout
        assert "shadow variable table is not the one this counter knows" in why
        assert "test variable not found" in why
    finally:
        arch_state.counter = shadow.ShadowCounter.install(klp_guest, arch_state.counter_module)
    assert arch_state.counter.read().by_id == before.by_id   # reinstalled, counting again
