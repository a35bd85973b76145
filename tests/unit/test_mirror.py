from harness import mirror


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_deb822_main_archive_first_security_skipped(tmp_path):
    write(tmp_path, "etc/apt/sources.list.d/debian.sources", """\
Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
""")
    assert mirror.candidates(str(tmp_path)) == ["http://mirror.example/debian"]


def test_one_line_format_with_options(tmp_path):
    write(tmp_path, "etc/apt/sources.list",
          "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n"
          "deb-src http://src.example/debian bookworm main\n")
    assert mirror.candidates(str(tmp_path)) == ["http://m.example/debian"]


def test_override_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(mirror.ENV, "http://env.example/debian")
    assert mirror.debian_mirror(root=str(tmp_path)) == "http://env.example/debian"
    assert mirror.debian_mirror("http://arg.example/debian", str(tmp_path)) == \
        "http://arg.example/debian"


def test_no_source_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(mirror.ENV, raising=False)
    import pytest
    with pytest.raises(Exception, match="KLP_HARNESS_MIRROR"):
        mirror.debian_mirror(root=str(tmp_path))
