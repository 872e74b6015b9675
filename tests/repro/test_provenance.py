"""The code hash keys cached cells: it follows the code that makes numbers, not its docstrings or comments."""
import shutil

import pytest

from attnflow_core.repro import provenance
from attnflow_core.repro.provenance import module_fingerprint

PKG = provenance.package_root()


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    copy = tmp_path / "attnflow_core"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "package_root", lambda: copy)
    provenance.code_hash.cache_clear()
    yield copy
    provenance.code_hash.cache_clear()


def _rehash() -> str:
    provenance.code_hash.cache_clear()
    return provenance.code_hash()


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_docstring_comment_and_layout_edits_keep_the_hash(package_copy):
    before = _rehash()
    f = package_copy / "training" / "trainer.py"
    _edit(f, '"""The resumable, deterministic trainer', '"""The resumable, deterministic (reworded) trainer')
    _edit(f, "    config.validate()\n", "    # a new comment\n    config.validate()  # and another\n\n")
    g = package_copy / "repro" / "tables" / "_ablations.py"
    _edit(g, '"""A grid over attention settings', '"""A grid (reworded) over attention settings')
    assert _rehash() == before


@pytest.mark.parametrize("path, old, new", [
    ("training/config.py", "warmup_steps: int = 200", "warmup_steps: int = 201"),  # a default
    ("repro/tables/_mnist.py", "lr=5e-3", "lr=4e-3"),  # a profile setting
    ("training/trainer.py", "0.95 * running", "0.9 * running"),  # an expression
    ("models/multiscale.py", "+", "-"),  # an operator
])
def test_a_numeric_edit_changes_the_hash(package_copy, path, old, new):
    before = _rehash()
    _edit(package_copy / path, old, new)
    assert _rehash() != before


def test_a_presentation_module_is_not_hashed(package_copy):
    before = _rehash()
    _edit(package_copy / "repro" / "report.py", "return str(v)", "return repr(v)")
    assert _rehash() == before


def _table_hashes() -> dict[str, str]:
    provenance.code_hash.cache_clear()
    return {n: provenance.code_hash(n) for n in ("table2_mnist", "ablation_masks", "table3_cifar10")}


def test_a_table_hash_follows_only_the_table_modules_that_train_and_score_its_cells(package_copy):
    before = _table_hashes()
    # Table 2 and the ablations share their cells' data and evaluators (_mnist.py): one hash, shared records
    assert before["table2_mnist"] == before["ablation_masks"] != before["table3_cifar10"]
    _edit(package_copy / "repro" / "tables" / "table3_cifar10.py", "lr=", "lr=0.5*")  # another table's setting
    after = _table_hashes()
    assert after["table3_cifar10"] != before["table3_cifar10"]
    assert after["table2_mnist"] == before["table2_mnist"] and after["ablation_masks"] == before["ablation_masks"]
    _edit(package_copy / "repro" / "tables" / "_mnist.py", "lr=5e-3", "lr=4e-3")
    third = _table_hashes()
    assert third["table2_mnist"] == third["ablation_masks"] != after["table2_mnist"]
    assert third["table3_cifar10"] == after["table3_cifar10"]
    _edit(package_copy / "training" / "trainer.py", "0.95 * running", "0.9 * running")  # the core: every table
    assert all(v != third[k] for k, v in _table_hashes().items())


def test_fingerprint_strips_only_docstrings():
    a = module_fingerprint('"""mod"""\nclass A:\n    """doc"""\n    def f(self):\n        """doc"""\n        return 1\n')
    b = module_fingerprint("class A:\n    def f(self):\n        return 1  # one\n")
    assert a == b
    # a docstring-only body still means "do nothing", and a string that is not first is code
    assert module_fingerprint('def f():\n    """doc"""\n') == module_fingerprint("def f():\n    pass\n")
    assert module_fingerprint('def f():\n    x = 1\n    "s"\n') != module_fingerprint("def f():\n    x = 1\n")
    assert module_fingerprint("x = 'a'\n") != module_fingerprint("x = 'b'\n")
