"""`leadscore audit`: a flat export's leaky column is named, a clean one passes, no traceback."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from leadscore.cli import app

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPECS = Path(__file__).resolve().parents[2] / "specs"


def _flat(tmp_path: Path, leaky: bool) -> Path:
    rng = np.random.default_rng(0)
    won = rng.random(600) < 0.3
    frame = pd.DataFrame({
        "id": [f"x{i}" for i in range(600)],
        "won": np.where(won, "yes", "no"),
        "employees": rng.integers(1, 1000, 600),
        "visits": rng.poisson(3, 600) + won * rng.poisson(1, 600),
        # the rep's verdict, written after the call: nearly the label itself
        "status": np.where(won ^ (rng.random(600) < 0.03), "hot", "cold"),
    })
    frame.to_csv(tmp_path / "leads.csv", index=False)
    spec = {"name": "tiny", "file": "leads.csv", "id_column": "id", "label": {"column": "won", "positive": "yes"},
            "drop": [] if leaky else [{"column": "status", "why": "set by sales after the call"}],
            "fit": ["employees"] + (["status"] if leaky else []), "interest": ["visits"]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "spec.yaml"


def test_audit_names_the_leaky_column_and_exits_1(tmp_path):
    result = CliRunner().invoke(app, ["audit", "--spec", str(_flat(tmp_path, leaky=True)), "--data-root", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "status [single_feature_auc]" in result.output and "Traceback" not in result.output


def test_audit_passes_when_the_spec_drops_it(tmp_path):
    result = CliRunner().invoke(app, ["audit", "--spec", str(_flat(tmp_path, leaky=False)), "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no feature looks leaky" in result.output


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
@pytest.mark.parametrize("name", ["x_education", "olist_funnel", "bank_marketing"])
def test_shipped_specs_pass_the_audit(name):
    result = CliRunner().invoke(app, ["audit", "--spec", str(SPECS / f"{name}.yaml"), "--data-root", str(SHARED_DATA)])
    assert result.exit_code == 0, result.output


def test_a_flat_leak_says_to_use_the_specs_drop_list(tmp_path):
    """A flat export leaves a column out in its spec, not in params.yaml: the error says exactly where."""
    spec = _flat(tmp_path, leaky=True)
    result = CliRunner().invoke(app, ["retrain", "--spec", str(spec), "--data-root", str(tmp_path)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "status [single_feature_auc]" in text
    assert f"add them to the `drop:` list of {spec}, each with a `why`" in text
    assert "features.exclude" not in text and "Traceback" not in text
