"""Writing a finished table: csv and markdown agree, the header states the provenance as written."""
import math

import pandas as pd

from attnflow_core.repro import code_hash, write_table
from attnflow_core.repro.provenance import numeric_files


def test_write_table_csv_markdown_and_header(tmp_path):
    # a paper-only row has blanks (NaN steps, empty hardware): the header must skip them,
    # and float steps from a column with blanks print as integers
    df = pd.DataFrame({"model": ["ours", "paper only"], "dataset": ["digits", ""],
                       "train_steps": [50.0, math.nan], "hardware": ["CPU x (1 threads)", ""],
                       "code_hash": ["abc", ""], "bpd": [1.25, math.nan]})
    csv_path, md_path = write_table(df, "table2_mnist", "smoke", tmp_path, columns=["model", "bpd"])
    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(df.columns) and back["bpd"].iloc[0] == 1.25
    md = md_path.read_text()
    assert "data set digits;" in md and "training steps 50;" in md and "code hash abc." in md
    assert "50.0" not in md.split("\n\n")[1]
    assert "| ours " in md and "dataset" not in md.split("|", 1)[1]  # only the chosen columns are tabulated
    assert not list(tmp_path.rglob("*.tmp*"))  # written atomically, nothing left behind


def test_report_module_does_not_enter_the_code_hash():
    names = {p.name for p in numeric_files()}
    assert "report.py" not in names and "cells.py" in names
    assert len(code_hash()) == 12
