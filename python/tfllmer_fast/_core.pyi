# Type stubs for the private extension module tfllmer_fast._core.
from typing import Any

def build_info() -> dict[str, Any]: ...
