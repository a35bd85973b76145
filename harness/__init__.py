"""klp-harness: a QEMU-based integration test harness for Linux kernel livepatching."""

__version__ = "0.1.0"
