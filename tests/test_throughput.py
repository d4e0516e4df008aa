"""estimate_seconds: the structure of its model, its cache, and a sanity check against a real run."""
import json

import pytest
from conftest import synthetic_bundle

from reinitlab import TrainConfig, UserError
from reinitlab.bench import throughput
from reinitlab.bench.throughput import estimate, estimate_seconds

TINY = dict(arch="cnn", width=0.25, batch_size=32, eval_batch_size=128, threads=1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache" / "probes.json"


def test_probe_is_cached_per_setting(cache, monkeypatch):
    bundle = synthetic_bundle(n_train=200, n_test=64, size=16)
    cfg = TrainConfig(method="lw", epochs=2, rounds=1, **TINY)
    first = estimate(cfg, bundle=bundle)
    assert cache.exists()
    stored = json.loads(cache.read_text())
    assert len(stored) == 1
    (key, probe), = stored.items()
    assert json.loads(key)["arch"] == "cnn" and json.loads(key)["resolution"] == 16
    assert json.loads(key)["kind"] == "throughput"
    assert probe["train_ips"] > 0 and probe["eval_ips"] > 0 and probe["epoch_s"] >= 0

    def no_probe(*a, **k):
        raise AssertionError("a cached setting was measured again")

    monkeypatch.setattr(throughput, "measure", no_probe)
    again = estimate(cfg.replace(epochs=5, seed=3), bundle=bundle)  # schedule and seed are not speed
    assert again.probe == first.probe
    with pytest.raises(AssertionError, match="measured again"):
        estimate(cfg.replace(width=0.5), bundle=bundle)  # a different network is a new probe


def test_model_counts_what_the_run_trains_and_evaluates(cache):
    bundle = synthetic_bundle(n_train=200, n_test=64, size=16)
    val_n, n = 20, 180  # val_fraction 0.1 of 200, stratified over 4 classes
    lw = estimate(TrainConfig(method="lw", epochs=2, rounds=2, **TINY), bundle=bundle)
    assert lw.epochs == 6
    assert lw.train_images == 6 * (n // 32) * 32
    stat = 2 * 4 * 32  # two resets, four statistics batches each
    assert lw.eval_images == 6 * val_n + 3 * (64 + n) + stat
    assert lw.seconds == pytest.approx(lw.setup_s + lw.train_s + lw.eval_s + lw.overhead_s)
    assert lw.train_s == pytest.approx(lw.train_images / lw.probe.train_ips)

    base = estimate(TrainConfig(method="baseline", epochs=2, rounds=2, **TINY), bundle=bundle)
    long = estimate(TrainConfig(method="long", epochs=2, rounds=2, **TINY), bundle=bundle)
    assert base.epochs == 2 and long.epochs == 6
    assert long.train_s == pytest.approx(lw.train_s) and long.train_s == pytest.approx(3 * base.train_s)
    assert long.eval_images < lw.eval_images  # one round: one test pass, no resets
    assert "epochs" in lw.describe()


def test_invalid_config_is_refused_before_probing(cache):
    with pytest.raises(UserError, match="arch"):
        estimate_seconds(TrainConfig(arch="nope"))
    assert not cache.exists()


_FAULTS = """
import resource, sys, torch
from reinitlab.speed import allocator, runtime
if sys.argv[1] == "configured":
    runtime.configure(device="cpu")
    assert allocator.keep_freed_memory() is True
n = 16 * 2**20  # 64 MiB of float32
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(n)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def test_a_cpu_run_keeps_freed_memory_so_big_activations_do_not_fault_again():
    """glibc maps blocks over 32 MiB afresh on every allocation; a run's process switches that off
    (runtime.configure), so a 64 MiB activation allocated again reuses pages freed before (counted in
    page faults). Measured in fresh processes, as a run starts: inside the test process the heap
    depends on what earlier tests allocated. The heap does not hold the block on every round (in 6
    fresh processes here, Zen 4, 3-4 of 12 allocations faulted nothing, the last two always), so the
    test counts rounds without faults: none without the setting, several with it."""
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("the malloc setting exists on glibc only")

    def free_rounds(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        faults = [int(f) for f in out.stdout.split()]
        return sum(f < 1000 for f in faults), faults

    default, faults = free_rounds("default")
    assert default == 0, f"without the setting every 64 MiB block is mapped anew, got {faults}"
    configured, faults = free_rounds("configured")
    assert configured >= 2, f"page faults per 64 MiB allocation with the setting: {faults} (16384 when mapped anew)"


def test_one_probe_cache_keyed_by_machine_torch_and_sources(cache, monkeypatch, tmp_path):
    from reinitlab.speed import probe
    m = probe.host_info()
    assert m["cpu"] and m["cores"] and isinstance(m["cpu_units"], list)  # avx512_bf16 / AMX where present
    a = probe.key("throughput", 1, {"arch": "cnn"}, ["engine.py"])
    assert json.loads(a)["machine"] == m and json.loads(a)["torch"]
    assert probe.key("analyses", 1, {"arch": "cnn"}, ["engine.py"]) != a  # the kinds share the file, not keys
    probe.store(a, {"x": 1.0})
    probe.store("other", {"y": 2.0})  # read-merge-write keeps the first entry
    assert probe.lookup(a) == {"x": 1.0} and set(json.loads(cache.read_text())) == {a, "other"}
    src = tmp_path / "src"
    src.mkdir()
    (src / "engine.py").write_text("one")
    monkeypatch.setattr(probe, "SOURCE_ROOT", src)
    before = probe.files_hash(["engine.py"])
    (src / "engine.py").write_text("two")
    assert probe.files_hash(["engine.py"]) != before  # an edited loop is measured again
