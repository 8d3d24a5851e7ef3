import pytest

# Load the compiled core once, before any test captures the output: an editable install
# rebuilds it on first import and streams the build log to the terminal.
import tfllmer_fast._core  # noqa: F401
from tfllmer_fast.data.paths import shared_data_dir


@pytest.fixture(scope="session")
def data_dir():
    """The real datasets folder; tests that need it skip with a reason when it is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("real datasets not found: set TFLLMER_DATA to the folder holding beauty/")
    return d


@pytest.fixture
def one_thread():
    """torch on one thread for the test (a shared, oversubscribed CI box makes OpenMP
    spin-waiting very slow), restored afterwards. torch is imported here, not at the top:
    the torch-free tests must not load it."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt during the test, as in an interactive session, even
    when the test run inherited it ignored (a shell starts background jobs that way)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
