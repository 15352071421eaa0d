"""A stand-in app dump for crash tests: writes CHUNKS chunks, DELAY seconds apart.

Usage: slow_writer.py CHUNKS DELAY [MARKER [GATE]]; touches MARKER (if given, and not
"-") when it starts; with GATE, writes nothing until that file exists (a test opens
the gate once every process it wants to overlap holds a backup).
"""

import sys
import time
from pathlib import Path

chunks, delay = int(sys.argv[1]), float(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3] != "-":
    Path(sys.argv[3]).touch()
if len(sys.argv) > 4:
    gate = Path(sys.argv[4])
    deadline = time.monotonic() + 90
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
for i in range(chunks):
    sys.stdout.buffer.write(f"chunk {i}\n".encode() * 1000)
    sys.stdout.buffer.flush()
    time.sleep(delay)
