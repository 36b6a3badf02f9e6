"""`make bench`: every benchmark, one after the other, each printing its own ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("decode.py", "stream.py"):
    print(f"\n=== bench/{script} ===", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=True)
