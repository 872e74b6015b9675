"""The results index names every non-default grid beside the canonical tables."""


def test_the_index_lists_non_default_grids(tmp_path):
    from attnflow_core.repro.index import write_index

    (tmp_path / "_variants" / "ablation_heads-heads=2_4-0c08fd6e" / "smoke").mkdir(parents=True)
    write_index(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "## Non-default grids" in text and "ablation_heads-heads=2_4-0c08fd6e" in text
