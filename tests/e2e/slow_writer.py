"""A stand-in app dump for crash tests: writes CHUNKS chunks, DELAY seconds apart.

Usage: slow_writer.py CHUNKS DELAY [MARKER]; touches MARKER (if given) when it starts.
"""

import sys
import time
from pathlib import Path

chunks, delay = int(sys.argv[1]), float(sys.argv[2])
if len(sys.argv) > 3:
    Path(sys.argv[3]).touch()
for i in range(chunks):
    sys.stdout.buffer.write(f"chunk {i}\n".encode() * 1000)
    sys.stdout.buffer.flush()
    time.sleep(delay)
