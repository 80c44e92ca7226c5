import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Tests see only the shipped price catalogs, never ones a developer refreshed on this
# machine (`reconciler catalog refresh` writes to ~/.cache/reconciler/catalogs).
os.environ["RECONCILER_CATALOG_DIR"] = tempfile.mkdtemp(prefix="reconciler-test-catalogs-")
