"""Options shared by the whole suite: ``--device cuda`` and ``--dtype float64`` run the same tests on
another device / precision. Every test that builds a model or a layer takes the ``device`` fixture;
those whose checks hold in either precision also take ``dtype`` (tolerances chosen per dtype). Checks
that need float64 (autograd Jacobian log-dets, reference fixtures to 1e-10) run in float64 on ``device``;
checks tied to float32 (underflow, float32 rounding) stay float32."""
import pytest
import torch

from attnflow_core.data import load_dataset


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for the tests (cpu, cuda, cuda:1, ...)")
    parser.addoption("--dtype", default="float32", choices=["float32", "float64"],
                     help="floating dtype of the tests that hold in either precision")


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    d = torch.device(request.config.getoption("--device"))
    if d.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda asked for but no GPU is available")
    return d


@pytest.fixture(scope="session")
def dtype(request) -> torch.dtype:
    return getattr(torch, request.config.getoption("--dtype"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests' tensors are tiny: one thread is several times faster than two, and far faster than
    several threads competing for a shared machine's cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def _scratch_results_root(tmp_path_factory):
    """Anything a test writes through the default results root lands in a temporary folder, never in the
    committed ``results/`` (tests that need a root pass their own ``tmp_path``)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ATTNFLOW_RESULTS", str(tmp_path_factory.mktemp("results")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
    yield


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8×8 digits, train and test splits (read-only in every test)."""
    return load_dataset("digits", "train"), load_dataset("digits", "test")
