"""provenance.json: what determined a run's numbers, which fields count, and how two are compared."""
import json
import shutil

import torch

from reinitlab import TrainConfig, run
from reinitlab.train import provenance
from reinitlab.train.provenance import Difference, differences

TINY = dict(width=0.25, epochs=1, rounds=1, batch_size=16, eval_batch_size=64, threads=1)


def test_a_run_records_its_resolved_config_and_machine(tmp_path, bundle):
    run(TrainConfig(method="lw", **TINY), tmp_path / "r", progress=False, bundle=bundle)
    doc = json.loads((tmp_path / "r/provenance.json").read_text())
    config = json.loads((tmp_path / "r/config.json").read_text())
    res, info = doc["result"], doc["info"]
    # every resolved default is there; the speed settings and trackers are not
    assert {"threads", "eval_batch_size", "compile", "tracker"} <= provenance.NOT_COMPARED
    assert res["config"] == {k: v for k, v in config.items() if k not in provenance.NOT_COMPARED}
    assert res["config"]["warmup"] == 0.05 and res["config"]["method_options"]["order"] == "bottom_up"
    assert res["config"]["device"] == "cpu" and res["config"]["precision"] == "fp32"
    assert res["torch"] == torch.__version__
    assert res["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert res["source_hash"] == provenance.source_hash() and len(res["source_hash"]) == 16
    assert "gpu" not in res  # a CPU run
    assert info["threads"] == 1 and info["eval_batch_size"] == 64 and info["compile"] is False
    assert info["reinitlab"] and info["host"] and info["cpu_model"]
    if shutil.which("git") and (provenance.PACKAGE.parents[1] / ".git").exists():  # run from a checkout's src/
        assert info["from"] == "git checkout" and len(info["commit"].split("+")[0]) == 40


def test_speed_only_settings_never_differ_and_the_rest_is_named_in_order():
    base = {"config": {"lr": 0.05, "warmup": 0.05, "threads": 1, "eval_batch_size": 256, "compile": False},
            "torch": "2.13.0", "cpu_capability": "AVX512", "source_hash": "a" * 16}
    fast = {**base, "config": {**base["config"], "threads": 8, "eval_batch_size": 1024, "compile": True}}
    assert differences(base, fast) == []
    other = {**base, "config": {**base["config"], "warmup": 0.1}, "cpu_capability": "AVX2", "source_hash": "b" * 16}
    assert differences(base, other) == [Difference("warmup", 0.05, 0.1), Difference("cpu_capability", "AVX512", "AVX2"),
                                        Difference("source_hash", "a" * 16, "b" * 16)]
    was, now = provenance.describe(differences(base, other)[2], {"commit": "4dddb07" + "0" * 33}, {"commit": None})
    assert was == f"source_hash={'a' * 16} (commit 4dddb0700000)" and now == f"source_hash={'b' * 16}"


def test_source_hash_follows_the_code_not_the_report_and_an_installed_copy_has_no_commit(tmp_path, monkeypatch):
    copy = tmp_path / "site-packages" / "reinitlab"
    shutil.copytree(provenance.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def hashed():
        provenance.source_hash.cache_clear()
        provenance.code_version.cache_clear()
        return provenance.source_hash(), provenance.code_version()

    monkeypatch.setattr(provenance, "PACKAGE", copy)
    try:
        same, version = hashed()
        assert version["commit"] is None and version["from"] == "installed package"
        (copy / "report" / "tables.py").write_text((copy / "report" / "tables.py").read_text() + "\n# a comment\n")
        assert hashed()[0] == same  # the report cannot change a run's numbers
        cfg = copy / "train" / "config.py"
        cfg.write_text(cfg.read_text().replace("warmup: float = 0.05", "warmup: float = 0.1"))
        assert hashed()[0] != same
    finally:
        monkeypatch.undo()
        hashed()
