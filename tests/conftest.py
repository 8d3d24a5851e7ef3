import pytest

from tfllmer_fast.data.paths import shared_data_dir


@pytest.fixture(scope="session")
def data_dir():
    """The real datasets folder; tests that need it skip with a reason when it is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("real datasets not found: set TFLLMER_DATA to the folder holding beauty/")
    return d
