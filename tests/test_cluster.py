"""`python -m tfrec.cluster` (tfrec/cluster.py): the server a worker or parameter server runs.

The real servers are exercised by the parameter-server cluster test in
tests/training/test_distribute.py; here, TF_CONFIG's checks and the command's answers to a
missing or wrong configuration (a clear message, exit code 2, no server started).
"""

import tfrec  # noqa: F401  # isort: skip
import json

import pytest

from tfrec import cluster

CLUSTER = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"], "ps": ["127.0.0.1:3"]}


def test_tf_config_is_parsed_and_checked(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster.tf_config() == {}
    config = {"cluster": CLUSTER, "task": {"type": "ps", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert cluster.tf_config() == config
    for bad, message in (
        ("[1, 2", "not valid JSON"),
        (json.dumps({"cluster": CLUSTER}), "needs a 'cluster'"),
        (
            json.dumps({"cluster": CLUSTER, "task": {"type": "ps", "index": 1}}),
            "not in its cluster",
        ),
        (json.dumps({"cluster": CLUSTER, "task": {"type": "evaluator"}}), "not in its cluster"),
    ):
        monkeypatch.setenv("TF_CONFIG", bad)
        with pytest.raises(ValueError, match=message):
            cluster.tf_config()


def test_the_command_serves_workers_and_ps_only(monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster.main([]) == 2
    assert "TF_CONFIG is not set" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": CLUSTER, "task": {"type": "chief"}}))
    assert cluster.main([]) == 2
    assert "the chief runs `tfrec train --strategy parameter_server`" in capsys.readouterr().err
