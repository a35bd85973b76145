"""Test files have unique names across tests/: pytest (rootdir import mode, no packages)
cannot import two test modules of one name, and reports it only as a collection error,
so a second test_bundle.py left the first one's tests silently unrun."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_name():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
