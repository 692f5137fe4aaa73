import sys
from pathlib import Path

# Test helpers (tests/shapes.py) are importable as plain modules.
sys.path.insert(0, str(Path(__file__).parent))
