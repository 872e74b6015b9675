"""The results index names every non-default grid beside the canonical tables."""


def test_the_index_lists_non_default_grids(tmp_path):
    from attnflow_core.repro.index import write_index

    (tmp_path / "_variants" / "ablation_heads-heads=2_4-0c08fd6e" / "smoke").mkdir(parents=True)
    write_index(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "## Non-default grids" in text and "ablation_heads-heads=2_4-0c08fd6e" in text


def test_the_index_holds_each_profiles_tables_under_its_heading(tmp_path):
    from attnflow_core.repro.index import write_index

    d = tmp_path / "smoke"
    d.mkdir()
    (d / "table2_mnist.md").write_text("# table2_mnist (smoke profile)\n\n| label | bpd |\n|---|---|\n| Glow | 4.9 |\n")
    (d / "table2_mnist.csv").write_text("label,bpd\nGlow,4.9\n")
    write_index(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "### The tables" in text and "#### table2_mnist (smoke profile)" in text and "| Glow | 4.9 |" in text
    assert text.index("## smoke") < text.index("#### table2_mnist") < text.index("## paper")
