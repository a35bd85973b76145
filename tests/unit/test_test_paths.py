"""`./klp test` with a mistyped path must say so and fail: under pytest-xdist (its default
-n) the controller collects nothing, and pytest alone would end with "no tests ran"."""
import subprocess
import sys

import pytest

from harness import image as imagemod


@pytest.mark.parametrize("workers", [["-n", "2"], ["-n", "0"]])
def test_a_mistyped_path_is_a_usage_error_naming_it(workers):
    result = subprocess.run([sys.executable, "-m", "pytest", *workers, "-p", "no:cacheprovider",
                             "scenarios/smoke", "scenarios/no-such-dir"],
                            cwd=imagemod.PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "file or directory not found: scenarios/no-such-dir" in result.stderr
