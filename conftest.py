"""In-tree runs: load the klp-harness pytest plugin unless the installed package already
registers it through its pytest11 entry point."""
from importlib.metadata import entry_points

if not any(ep.name == "klp_harness" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["harness.pytest_plugin"]
