"""Config fragments: alternatives judged by the tree's Kconfig, and the unmet-setting check
naming fragment line, symbol and the kernel version judged (no kernel build needed)."""
import pytest

from harness import kconfig


@pytest.fixture
def tree(tmp_path):
    """A tree whose Kconfig defines SYSCTL and PROC_FS but not PROC_SYSCTL (as Linux 7.3)."""
    (tmp_path / "fs" / "proc").mkdir(parents=True)
    (tmp_path / "fs" / "proc" / "Kconfig").write_text(
        "config PROC_FS\n\tbool\n\nconfig SYSCTL\n\tbool \"Sysctl\" if EXPERT\n")
    (tmp_path / "init").mkdir()
    (tmp_path / "init" / "Kconfig").write_text("menuconfig EXPERT\n\tbool\n")
    return tmp_path


def fragment(tmp_path, text):
    path = tmp_path / "frag.config"
    path.write_text(text)
    return path


def test_the_first_alternative_the_tree_defines_is_set(tree, tmp_path):
    frag = fragment(tmp_path, "# sysctl\nCONFIG_EXPERT=y\n"
                              "CONFIG_PROC_SYSCTL=y | CONFIG_SYSCTL=y   # renamed\n")
    chosen = kconfig.resolve([frag], tree)
    assert [(s.line, s.text) for s in chosen] == [(2, "CONFIG_EXPERT=y"), (3, "CONFIG_SYSCTL=y")]
    merged = kconfig.merged_text([frag], chosen)
    assert "CONFIG_SYSCTL=y\n" in merged and "PROC_SYSCTL" not in merged and "|" not in merged


def test_an_older_tree_takes_the_older_name(tree, tmp_path):
    (tree / "fs" / "proc" / "Kconfig").write_text("config PROC_SYSCTL\n\tbool\n"
                                                  "config SYSCTL\n\tbool\n")
    frag = fragment(tmp_path, "CONFIG_PROC_SYSCTL=y | CONFIG_SYSCTL=y\n")
    assert [s.text for s in kconfig.resolve([frag], tree)] == ["CONFIG_PROC_SYSCTL=y"]


def test_an_unmet_setting_names_line_symbol_and_version(tree, tmp_path):
    frag = fragment(tmp_path, "CONFIG_EXPERT=y\nCONFIG_SYSCTL=y\nCONFIG_NO_SUCH=y\n"
                              "CONFIG_OLD_A=y | CONFIG_OLD_B=y\n")
    settings = kconfig.resolve([frag], tree)
    problems = kconfig.unmet(settings, "CONFIG_EXPERT=y\n# CONFIG_SYSCTL is not set\n", tree,
                             "7.3.4")
    assert problems == [
        f"{frag}:2: CONFIG_SYSCTL=y (the config has: # CONFIG_SYSCTL is not set)",
        f"{frag}:3: CONFIG_NO_SUCH=y (no such symbol in Linux 7.3.4)",
        f"{frag}:4: CONFIG_OLD_A=y (none of CONFIG_OLD_A=y, CONFIG_OLD_B=y is a symbol of "
        "Linux 7.3.4)"]


def test_a_line_that_is_no_setting_is_an_error_naming_it(tmp_path):
    frag = fragment(tmp_path, "CONFIG_A=y\nCONFIG_B=y || CONFIG_C=y\n")
    with pytest.raises(kconfig.FragmentError, match=r"frag.config:2: '' is not a "):
        kconfig.read(frag)


def test_the_shipped_fragments_read(tmp_path):
    from harness.image import KCONFIG_DIR
    for frag in KCONFIG_DIR.glob("*.config"):
        assert kconfig.read(frag)
