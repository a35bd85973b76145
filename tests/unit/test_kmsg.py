from harness import kmsg

SAMPLE = (
    "6,1,0,-;Linux version 6.1.0\n"
    " SUBSYSTEM=pci\n"
    "4,17,5000,-;livepatch: enabling patch 'x'\n"
    "12,18,6000,c;user\\x20space says\\x0ahi\n"
    "garbage line\n"
)


def test_parse_levels_sequence_and_escapes():
    records = kmsg.parse(SAMPLE)
    assert [r.seq for r in records] == [1, 17, 18]
    assert records[1].level == 4 and records[1].facility == 0
    assert records[2].facility == 1 and records[2].level == 4
    assert records[2].message == "user space says\nhi"
    assert records[1].usec == 5000


def test_text_joins_messages():
    assert kmsg.text(kmsg.parse(SAMPLE)[:2]) == "Linux version 6.1.0\nlivepatch: enabling patch 'x'"
