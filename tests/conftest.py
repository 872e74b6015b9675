import torch
import pytest


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
    yield


def perturb_(module: torch.nn.Module, scale: float = 0.1, seed: int = 0) -> None:
    """Add noise to every parameter, so zero-initialised layers are not at their trivial identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p))


def jacobian_logdets(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det J| per sample of ``fn`` (which maps (1, ...) -> flat (1, D)), via autograd."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda t: fn(t).reshape(-1), xi, vectorize=True)
        jac = jac.reshape(jac.shape[0], -1)
        assert jac.shape[0] == jac.shape[1], "the map must be square"
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)
