"""The package's shape: imports go one way, modules stay small, every subpackage says what belongs in it,
classes that implement a paper cite it, and the results cache key covers every module that decides numbers."""
import ast
import inspect
from pathlib import Path

import pytest

import attnflow_core
from attnflow_core.core import registered_layers

PKG = Path(attnflow_core.__file__).resolve().parent
# rank of each subpackage: a module may import only from its own subpackage or a lower rank
RANK = {"core": 0, "nn": 1, "data": 1, "flows": 2, "attention": 2, "priors": 2, "models": 3,
        "metrics": 4, "training": 4, "diagnostics": 4, "testing": 4, "repro": 5}
TOP_LEVEL_SHIMS = {"__init__"}  # re-exports the public API; may import anything
MAX_LINES = 360


def _modules():
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG)
        if "__pycache__" not in rel.parts:
            yield p, rel


def _owner(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_subpackages(p: Path, rel: Path):
    tree = ast.parse(p.read_text())
    pkg_parts = ["attnflow_core", *rel.parent.parts]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("attnflow_core"):
                target = node.module.split(".")
            else:
                continue
            if len(target) == 1:  # `from .. import x` at the top: the names are subpackages
                for a in node.names:
                    yield a.name, node.lineno
            else:
                yield target[1], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("attnflow_core."):
                    yield a.name.split(".")[1], node.lineno


def test_imports_go_one_way():
    bad = []
    for p, rel in _modules():
        owner = _owner(rel)
        if owner in TOP_LEVEL_SHIMS:
            continue
        assert owner in RANK, f"{rel}: a new top-level module? Put it in a subpackage (or give it a rank here)"
        for target, line in _imported_subpackages(p, rel):
            if target == owner:
                continue
            if target not in RANK or RANK[target] >= RANK[owner]:
                bad.append(f"{rel}:{line} imports attnflow_core.{target}")
    assert not bad, "imports against the direction core -> nn/data -> flows/attention/priors -> models -> " \
                    "metrics/training/diagnostics -> repro:\n" + "\n".join(bad)


def test_import_direction_check_can_fail(tmp_path):
    # the checker sees a core module that imports the pipeline
    fake = tmp_path / "x.py"
    fake.write_text("from ..repro import cells\nfrom ..core import errors\nimport attnflow_core.models.base\n")
    assert [t for t, _ in _imported_subpackages(fake, Path("core/x.py"))] == ["repro", "core", "models"]


def test_modules_are_small():
    big = [f"{rel} ({n} lines)" for p, rel in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not big, f"modules over {MAX_LINES} lines; split them by concept: {big}"


def test_every_subpackage_says_what_belongs_there():
    for init in PKG.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 80, f"{init.relative_to(PKG)} needs a docstring saying what belongs there"


def _paper_classes():
    from attnflow_core.models.registry import MODELS
    from attnflow_core.priors import Prior

    classes = [c for c in registered_layers().values() if not c.contract_exempt]
    classes += [c for c in _subclasses(Prior) if c.__module__.startswith("attnflow_core.")]
    classes += [MODELS[name].build for name in MODELS if inspect.isclass(MODELS[name].build)]
    return [c for c in classes if not c.__name__.startswith("_")]


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.mark.parametrize("cls", _paper_classes(), ids=lambda c: c.__name__)
def test_paper_classes_cite_their_paper(cls):
    from attnflow_core.priors import GaussianPrior, Prior, StandardNormal

    if cls in (Prior, GaussianPrior, StandardNormal):  # generic, no paper
        return
    assert "References:" in (cls.__doc__ or ""), f"{cls.__name__} implements a paper: add a 'References:' line"


def test_code_hash_covers_every_numeric_module():
    from attnflow_core.repro.provenance import NON_NUMERIC, numeric_files

    covered = {p.relative_to(PKG).as_posix() for p in numeric_files()}
    every = {rel.as_posix() for _, rel in _modules()}
    allowed = {r for r in every if any(r == n or (n.endswith("/") and r.startswith(n)) for n in NON_NUMERIC)}
    assert every - covered == allowed
    # the modules that build models, train, evaluate and define cells are all in it
    for must in ("models/multiscale.py", "training/trainer.py", "repro/cells.py", "data/images.py",
                 "repro/tables/_mnist.py", "repro/tables/table2_mnist.py", "attention/itrans.py"):
        assert must in covered


def test_a_new_module_changes_the_code_hash(tmp_path, monkeypatch):
    import shutil

    from attnflow_core.repro import provenance

    copy = tmp_path / "attnflow_core"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "package_root", lambda: copy)
    provenance.code_hash.cache_clear()
    before = provenance.code_hash()
    (copy / "models" / "newfamily.py").write_text("SCALE = 2.0\n")
    provenance.code_hash.cache_clear()
    after = provenance.code_hash()
    provenance.code_hash.cache_clear()
    assert before != after


def test_repo_root_is_found_by_pyproject_not_by_counting():
    from attnflow_core.repro.paths import repo_root

    root = repo_root()
    assert root is not None and (root / "pyproject.toml").is_file() and (root / "attnflow_core").is_dir()
