"""The allocator settings apply on this machine's glibc (cloudpacs.serving.malloc)."""

import subprocess
import sys


def test_malloc_tuning_applies():
    # In a child: the settings are process-wide and not for the test runner to keep.
    code = "from cloudpacs.serving.malloc import tune; print(tune())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
