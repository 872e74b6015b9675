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


def test_write_evidence_appends_the_summary_claims_protocol_and_curves(tmp_path):
    from attnflow_core.repro.evidence import Claim
    from attnflow_core.repro.report import write_evidence

    rows, records = [], []
    for seed in (0, 1, 2):
        for method, bpd in (("mARFlow", 2.0), ("AttnFlow-iMap", 1.9)):
            rows.append({"method": method, "seed": seed, "bpd": bpd + 0.01 * seed + 0.001 * (seed == 1 and method == "mARFlow"),
                         "train_steps": 3000, "hardware": "CPU x (1 threads)", "code_hash": "h",
                         "weights": "best-ema", "n_spikes": seed == 2})
            records.append({"spec": {"method": method}, "label": f"{method} seed={seed}", "train_seconds": 1800.0,
                            "eval_seconds": 0.0, "val_curve": [{"step": 500, "val_bpd": bpd + 1}, {"step": 1000, "val_bpd": bpd}]})
    df = pd.DataFrame(rows)
    write_table(df, "table2_mnist", "cpu", tmp_path)
    ct = write_evidence(df, "table2_mnist", "cpu", tmp_path, records=records,
                        claims=[Claim("iMap below mARFlow", "AttnFlow-iMap", "mARFlow", paper_method=0.43, paper_baseline=0.56)])
    assert list(ct["verdict"]) == ["supports"]  # -0.1 on every seed (± 0.001)
    md = (tmp_path / "cpu" / "table2_mnist.md").read_text()
    assert "## Evidence" in md and "Seeds 0, 1, 2" in md and "best-ema" in md and "loss spikes restored: 2" in md
    assert "3.00 core-hours for 6 cell(s)" in md and "supports" in md and "table2_mnist_curves.png" in md
    assert (tmp_path / "cpu" / "table2_mnist_curves.png").stat().st_size > 0
    assert (tmp_path / "cpu" / "table2_mnist.claims.csv").exists()
