"""The account roll-up in /score follows params.yaml's `accounts` section."""

import pytest
import yaml

from tests.conftest import ROOT
from tests.serving.test_faults import _core, _score, _settings, request_body  # noqa: F401 (a fixture)


def test_the_roll_up_method_comes_from_params(trained, tmp_path, request_body):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["accounts"] = {"rollup": "max", "max_leads": None}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(data))
    body = request_body.model_copy(deep=True)
    for item in body.leads:
        item.lead.email = "someone@one-account.de"  # all three leads in one account
    results = _score(_core(_settings(tmp_path, params_path=params_file)), body)
    probabilities = [s.out.probability for s in results]
    account = results[0].out.account
    assert account.n_leads == 3 and account.probability == pytest.approx(max(probabilities), abs=1e-12)
    noisy = _score(_core(_settings(tmp_path)), body)[0].out.account
    expected = 1.0
    for p in probabilities:
        expected *= 1 - p
    assert noisy.probability == pytest.approx(1 - expected, abs=1e-12)
