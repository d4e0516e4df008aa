"""Bad input, tried systematically (hypothesis): run settings given with `--set` to `train` and
`study`, study files (keys, types, ranges, empty or duplicated axes, malformed TOML), and dataset
files of every reader (truncated, wrong magic, wrong sizes, garbage, unreadable images). Always one
line `reinitlab: ...` naming the problem, exit code 2, no traceback, nothing written to --out, no
dataset cached, nothing trained. Run in-process through `reinitlab.cli.main` for speed; a few
subprocess checks confirm the real exit code."""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import typing
from pathlib import Path
from typing import Literal, get_args, get_origin

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from reinitlab.cli import main
from reinitlab.methods import METHODS
from reinitlab.models import ARCHS
from reinitlab.study.definition import AXES, AXIS_DEFAULTS, FIXED, SETTINGS, valid_keys
from reinitlab.train.config import TrainConfig
from reinitlab.util.options import tomllib

# RELIABILITY_EXAMPLES=1000 for a longer hunt; the defaults keep the whole file under ~30 s
EXAMPLES = int(os.environ.get("RELIABILITY_EXAMPLES", "60"))
SETTINGS_HYP = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HINTS = typing.get_type_hints(TrainConfig)
FIELDS = TrainConfig.field_names()


@pytest.fixture(autouse=True)
def nothing_trains_or_studies(monkeypatch, tmp_path):
    """Bad input must be refused before anything runs: training or starting a study fails the test."""
    import reinitlab.study.runner as runner
    from reinitlab.train.engine import Engine

    def trained(*a, **k):
        raise AssertionError("bad input reached training")

    def studied(*a, **k):
        raise AssertionError("bad input reached the study's start")
    monkeypatch.setattr(Engine, "__init__", trained)
    monkeypatch.setattr(runner, "_run", studied)
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))


def refused(capsys, argv: list[str], out: Path, *names: str) -> str:
    """Run the CLI; assert the one-line refusal that names one of `names`; return the line."""
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, (argv, err)
    assert err.startswith("reinitlab: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and captured.out == ""
    assert not out.exists(), f"{out} was written"
    assert any(n in err for n in names), (names, err)
    return err


# ---- values: TOML text for `--set` and study files -----------------------------------------
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


words = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
not_bool_word = words.filter(lambda w: w not in ("true", "false", "none", "null", "nan", "inf"))
strings = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12).filter(
    lambda s: s.strip().lower() not in ("true", "false", "none", "null", "all", "full"))
lists = st.lists(st.integers(-3, 3), min_size=1, max_size=3)
tables = st.fixed_dictionaries({"a": st.integers(0, 9)})


def base_type(tp):
    """The non-None type of an annotation, and whether None is allowed."""
    if get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def wrong_type(tp) -> st.SearchStrategy:
    """Values of the wrong type for a field of type `tp` (never coercible to it)."""
    tp, _ = base_type(tp)
    if get_origin(tp) is Literal:
        return st.one_of(strings.filter(lambda s: s not in get_args(tp)), st.integers(), st.booleans())
    if tp is int:
        return st.one_of(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
                         strings, st.booleans(), lists, tables)
    if tp is float:
        return st.one_of(strings, st.booleans(), lists, tables)
    if tp is bool:
        return st.one_of(st.integers(), st.floats(allow_nan=False), strings, lists)
    if tp is str:
        return st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), lists, tables)
    if tp is dict:
        return st.one_of(st.integers(), strings, lists)
    raise TypeError(tp)


# out-of-range values of every numeric setting, from TrainConfig.validate
RANGES = {
    "epochs": st.integers(max_value=0), "rounds": st.integers(max_value=-1),
    "train_size": st.one_of(st.integers(max_value=0), st.integers(4501, 10 ** 9)),
    "val_fraction": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0)),
    "label_noise": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0)),
    "resolution": st.one_of(st.integers(max_value=3), st.integers(min_value=513)),
    "patience": st.integers(max_value=-1), "width": st.one_of(st.floats(max_value=0.0), st.floats(min_value=16.0001)),
    "batch_size": st.integers(max_value=1), "eval_batch_size": st.integers(max_value=0),
    "lr": st.floats(max_value=0.0), "momentum": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0)),
    "weight_decay": st.floats(max_value=-1e-9), "warmup": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0)),
    "label_smoothing": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0)),
    "threads": st.integers(max_value=0), "seed": st.integers(max_value=-1), "data_seed": st.integers(max_value=-1),
}
FLOAT_FIELDS = [k for k in FIELDS if base_type(HINTS[k])[0] is float]
NAMES = {"dataset": "unknown dataset", "arch": "unknown arch", "method": "unknown method"}
# words a "bad name" must not be: every registered method and architecture
REGISTERED = set(METHODS) | set(ARCHS)


@st.composite
def bad_setting(draw, keys=FIELDS):
    """(key, TOML text of a bad value, fragments one of which the message must hold)."""
    kind = draw(st.sampled_from(["unknown key", "wrong type", "out of range", "not finite", "unknown name"]))
    if kind == "unknown key":
        key = draw(words.filter(lambda k: k not in valid_keys() and k not in FIELDS))
        return key, toml_value(draw(st.integers())), [repr(key)]
    if kind == "out of range":
        key = draw(st.sampled_from([k for k in RANGES if k in keys]))
        value = draw(RANGES[key])
        assume(not (isinstance(value, float) and math.isnan(value)))
        return key, toml_value(value), [key]
    if kind == "not finite":
        key = draw(st.sampled_from([k for k in FLOAT_FIELDS if k in keys]))
        return key, draw(st.sampled_from(["nan", "inf", "-inf"])), [key]
    if kind == "unknown name" and any(k in keys for k in NAMES):
        key = draw(st.sampled_from([k for k in NAMES if k in keys]))
        return key, toml_value(draw(not_bool_word.filter(lambda w: w not in REGISTERED))), [NAMES[key]]
    key = draw(st.sampled_from([k for k in keys if k != "method_options"]))
    return key, toml_value(draw(wrong_type(HINTS[key]))), [key]


# ---- `reinitlab train --set` ---------------------------------------------------------------
@SETTINGS_HYP
@given(bad=bad_setting(), good_before=st.booleans())
@example(bad=("method_options", "{a = 1}", ["method spec"]), good_before=False)
@example(bad=("momentum", "0.0", ["nesterov"]), good_before=False)
@example(bad=("", "1", ["key is empty"]), good_before=False)
def test_train_refuses_any_bad_setting(tmp_path, capsys, bad, good_before):
    key, value, names = bad
    out = tmp_path / "run"
    good = ["--set", "epochs=1"] if good_before else []
    refused(capsys, ["train", "--train-size", "60", *good, "--set", f"{key}={value}", "--quiet", "--out", str(out)],
            out, *names)


@pytest.mark.parametrize("args,fragment", [
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--train-size", "1.5"], "argument --train-size: invalid int value"),
    (["--width", "wide"], "argument --width: invalid float value"),
    (["--set", "epochs"], "--set 'epochs': expected key=value"),
    (["--set", "lr=[0.1, 0.2]"], "lr=[0.1, 0.2] has the wrong type"),
    (["--method", "lw:bogus=1"], "bogus"),
    (["--method", "lw:rescale"], "expected key=value"),
    (["--dataset", "npz:"], "give a path after 'npz:'"),
    (["--dataset", "npz:/nonexistent/x.npz"], "no such file"),
])
def test_train_refuses_bad_flags(tmp_path, capsys, args, fragment):
    out = tmp_path / "run"
    refused(capsys, ["train", "--train-size", "60", *args, "--quiet", "--out", str(out)], out, fragment)


# ---- `reinitlab study`: study files and --set ------------------------------------------------
BASE_STUDY = {"name": "bad", "datasets": ["fashion-mnist-small"], "archs": ["cnn"], "methods": ["baseline", "lw"],
              "train_sizes": [100], "label_noise": [0.0], "seeds": [0, 1], "width": 0.25, "epochs": 1, "rounds": 1}
AXIS_ITEMS = {"datasets": "unknown dataset", "archs": "unknown arch", "methods": "unknown method"}


def study_text(values: dict) -> str:
    return "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())


@st.composite
def bad_study(draw):
    """(mapping, fragments): one thing wrong with an otherwise valid study."""
    values = dict(BASE_STUDY)
    kind = draw(st.sampled_from(["setting", "empty axis", "missing axis", "axis not a list", "bad axis item",
                                 "duplicate", "swept field"]))
    if kind == "setting":
        key, text, names = draw(bad_setting(keys=SETTINGS))
        values[key] = tomllib.loads(f"v = {text}")["v"]
        # a list for a setting that may vary is an extra axis, not a wrong type (test_study_axes
        # covers the bad axes); only the FIXED settings refuse every list
        assume(not isinstance(values[key], list) or key in FIXED)
        return values, names
    axis = draw(st.sampled_from(AXES))
    if kind == "empty axis":
        values[axis] = []
        return values, [f"{axis}=[] is empty"]
    if kind == "missing axis":
        axis = draw(st.sampled_from([a for a in AXES if a not in AXIS_DEFAULTS]))  # label_noise defaults to [0.0]
        del values[axis]
        return values, [f"missing axis {axis!r}"]
    if kind == "axis not a list":
        values[axis] = draw(st.one_of(st.integers(), strings, st.booleans()))
        return values, [axis]
    if kind == "duplicate":
        values[axis] = values.get(axis, [1]) + values.get(axis, [1])[:1]
        return values, ["listed twice"]
    if kind == "swept field":
        field = draw(st.sampled_from(["dataset", "arch", "method", "train_size", "seed"]))
        values[field] = BASE_STUDY[{"dataset": "datasets", "arch": "archs", "method": "methods",
                                    "train_size": "train_sizes", "seed": "seeds"}[field]][0]
        return values, ["is swept in a study"]
    # a bad item in an axis
    if axis in AXIS_ITEMS:
        item = draw(st.one_of(st.integers(), st.just(""), not_bool_word.filter(lambda w: w not in REGISTERED)))
        values[axis] = [item]
        return values, [axis, AXIS_ITEMS[axis], "empty name"]
    item = {"train_sizes": st.one_of(st.integers(max_value=0), st.integers(5001, 10 ** 9), strings.filter(lambda s: s.strip().lower() not in ("full", "all")), st.floats(allow_nan=False).filter(lambda x: not x.is_integer())),
            "label_noise": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0), strings),
            "seeds": st.one_of(st.integers(max_value=-1), strings, st.floats(allow_nan=False).filter(lambda x: not x.is_integer()))}[axis]
    v = draw(item)
    assume(not (isinstance(v, float) and math.isnan(v)))
    values[axis] = [v]
    return values, [axis, "label_noise" if axis == "label_noise" else axis.rstrip("s"), "train_size"]


@SETTINGS_HYP
@given(case=bad_study(), via_set=st.booleans())
def test_study_refuses_any_bad_definition(tmp_path, capsys, case, via_set):
    """The same mistakes in a study file or as `--set` overrides of a valid one."""
    values, names = case
    out = tmp_path / "out"
    toml = tmp_path / "s.toml"
    overrides = []
    if via_set and set(BASE_STUDY) <= set(values):  # the valid study in the file, the changes as --set
        toml.write_text(study_text(BASE_STUDY))
        overrides = [x for k, v in values.items() if k not in BASE_STUDY or toml_value(BASE_STUDY[k]) != toml_value(v)
                     for x in ("--set", f"{k}={toml_value(v)}")]  # (True == 1 in Python, not here)
    else:  # a missing axis cannot be written as --set
        toml.write_text(study_text(values))
    refused(capsys, ["study", str(toml), "--out", str(out), "--workers", "1", *overrides], out, *names)


CORRUPTIONS = st.sampled_from(["truncate", "insert", "duplicate line", "drop bracket", "bad string"])


@SETTINGS_HYP
@given(how=CORRUPTIONS, where=st.floats(0, 1), char=st.sampled_from(list("[]={}\"',#\\")))
def test_study_refuses_malformed_toml(tmp_path, capsys, how, where, char):
    text = study_text(BASE_STUDY)
    i = int(where * (len(text) - 1))
    if how == "truncate":
        text = text[:i]
    elif how == "insert":
        text = text[:i] + char + text[i:]
    elif how == "duplicate line":
        lines = text.splitlines(keepends=True)
        j = int(where * (len(lines) - 1))
        text = "".join(lines[: j + 1] + [lines[j]] + lines[j + 1:])
    elif how == "drop bracket":
        k = text.find("]", i)
        assume(k >= 0)
        text = text[:k] + text[k + 1:]
    else:
        k = text.find('"', i)
        assume(k >= 0)
        text = text[:k] + text[k + 1:]
    try:
        tomllib.loads(text)
        assume(False)  # still valid TOML: another test's business
    except tomllib.TOMLDecodeError:
        pass
    toml, out = tmp_path / "s.toml", tmp_path / "out"
    toml.write_text(text)
    err = refused(capsys, ["study", str(toml), "--out", str(out)], out, f"{toml}: not valid TOML")
    assert "(at line" in err or "(at end of document)" in err  # where the mistake is


@pytest.mark.parametrize("args,fragment", [
    (["--workers", "0"], "--workers 0: expected an integer >= 1"),
    (["--workers", "many"], "invalid int value"),
    (["--backend", "slurm"], "unknown --backend 'slurm'; valid: local, ray"),
    (["--address", "ray://x:1"], "--address is for --backend ray"),
    (["--set", "seeds"], "expected key=value"),
])
def test_study_refuses_bad_flags(tmp_path, capsys, args, fragment):
    toml, out = tmp_path / "s.toml", tmp_path / "out"
    toml.write_text(study_text(BASE_STUDY))
    refused(capsys, ["study", str(toml), "--out", str(out), *args], out, fragment)


def test_study_file_problems(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00bad")
    refused(capsys, ["study", str(tmp_path / "bin.toml"), "--out", str(out)], out, "cannot read", "not valid TOML")
    refused(capsys, ["study", str(tmp_path), "--out", str(out)], out, "is a folder")
    refused(capsys, ["study", str(tmp_path / "none.toml"), "--out", str(out)], out, "neither a preset")


# ---- dataset files --------------------------------------------------------------------------
def rng_images(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape) + a.tobytes()


def idx_set(gz: bool, n_train=20, n_test=10) -> dict[str, bytes]:
    arrays = {"train-images-idx3-ubyte": rng_images(n_train, (28, 28)),
              "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
              "t10k-images-idx3-ubyte": rng_images(n_test, (28, 28), 1),
              "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8)}
    return {k + (".gz" if gz else ""): (gzip.compress(idx_bytes(a), mtime=0) if gz else idx_bytes(a))
            for k, a in arrays.items()}


def cifar_set() -> dict[str, bytes]:
    def batch(n, seed):
        return pickle.dumps({"data": rng_images(n, (3072,), seed), "labels": [i % 10 for i in range(n)]}, protocol=2)
    files = {f"cifar-10-batches-py/data_batch_{i}": batch(10, i) for i in range(1, 6)}
    files["cifar-10-batches-py/test_batch"] = batch(10, 9)
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2)
    return files


def svhn_set() -> dict[str, bytes]:
    from scipy.io import savemat
    out = {}
    for name, n in (("train_32x32.mat", 16), ("test_32x32.mat", 8)):  # sizes with no padding at the end
        buf = io.BytesIO()
        savemat(buf, {"X": rng_images(n, (32, 32, 3)).transpose(1, 2, 3, 0).copy(),
                      "y": (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)})
        out[name] = buf.getvalue()
    return out


def stl10_set() -> dict[str, bytes]:
    return {"stl10_binary/train_X.bin": rng_images(10, (3 * 96 * 96,)).tobytes(),
            "stl10_binary/train_y.bin": (np.arange(10) % 10 + 1).astype(np.uint8).tobytes(),
            "stl10_binary/test_X.bin": rng_images(10, (3 * 96 * 96,), 1).tobytes(),
            "stl10_binary/test_y.bin": (np.arange(10) % 10 + 1).astype(np.uint8).tobytes()}


def png_bytes(seed: int) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rng_images(1, (16, 16), seed)[0]).save(buf, format="PNG")
    return buf.getvalue()


def folder_set() -> dict[str, bytes]:
    return {f"imgs/{c}/{i}.png": png_bytes(10 * j + i) for j, c in enumerate(("cat", "dog")) for i in range(3)}


def npz_set() -> dict[str, bytes]:
    buf = io.BytesIO()
    np.savez(buf, x_train=rng_images(20, (16, 16)), y_train=np.arange(20) % 4, x_test=rng_images(8, (16, 16), 1),
             y_test=np.arange(8) % 4)
    return {"d.npz": buf.getvalue()}


# format -> (files, --dataset, --data-dir or None, magic (offset, length), fixed-size raw format)
FORMATS = {
    "idx": (lambda: idx_set(False), "mnist", True, (0, 4), False),
    "idx.gz": (lambda: idx_set(True), "mnist", True, (0, 2), False),
    "cifar": (cifar_set, "cifar10", True, None, False),  # a pickle has no magic: its protocol opcode is optional
    "svhn": (svhn_set, "svhn", True, (124, 4), False),
    "stl10": (stl10_set, "stl10", True, None, True),
    "folder": (folder_set, "folder:{root}/imgs", False, (0, 8), False),
    "npz": (npz_set, "npz:{root}/d.npz", False, (0, 4), False),
}


@st.composite
def damaged(draw, fmt):
    """(files, the damaged file, what was done): one file of a valid set made invalid."""
    make, _, _, magic, raw = FORMATS[fmt]
    files = make()
    name = draw(st.sampled_from(sorted(files)))
    data = files[name]
    kinds = ["truncate", "garbage", "empty", "extra bytes"] + (["magic"] if magic else [])
    if fmt in ("folder", "npz", "cifar", "svhn", "idx.gz"):
        kinds.remove("extra bytes")  # formats that may ignore trailing bytes (zip, pickle, PNG, gzip members)
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate":
        limit = len(data) // 2 if fmt == "folder" else len(data) - 1  # PNG: cut inside the pixel data
        data = data[: draw(st.integers(1, max(1, limit)))]
    elif kind == "garbage":
        junk = draw(st.binary(min_size=1, max_size=300))
        assume(not (raw and name.endswith("_X.bin") and len(junk) % (3 * 96 * 96) == 0))
        data = junk
    elif kind == "empty":
        data = b""
    elif kind == "extra bytes":
        data = data + draw(st.binary(min_size=1, max_size=64))
    else:
        off, n = magic
        new = draw(st.binary(min_size=n, max_size=n))
        assume(new != data[off:off + n])
        data = data[:off] + new + data[off + n:]
    files[name] = data
    return files, name, kind


def sized_wrong(fmt) -> tuple[dict[str, bytes], str]:
    """Files that are each well-formed but disagree in size (images vs labels, shapes)."""
    if fmt in ("idx", "idx.gz"):
        files = idx_set(fmt == "idx.gz")
        other = idx_set(fmt == "idx.gz", n_train=19)
        key = "train-labels-idx1-ubyte" + (".gz" if fmt == "idx.gz" else "")
        files[key] = other[key]
        return files, "train-labels-idx1-ubyte"
    if fmt == "cifar":
        files = cifar_set()
        files["cifar-10-batches-py/data_batch_3"] = pickle.dumps({"data": rng_images(10, (3071,)), "labels": [0] * 10})
        return files, "data_batch_3"
    if fmt == "svhn":
        from scipy.io import savemat
        files, buf = svhn_set(), io.BytesIO()
        savemat(buf, {"X": rng_images(8, (32, 32, 3)).transpose(1, 2, 3, 0).copy(), "y": np.ones((7, 1), np.uint8)})
        files["test_32x32.mat"] = buf.getvalue()
        return files, "test_32x32.mat"
    if fmt == "stl10":
        files = stl10_set()
        files["stl10_binary/test_y.bin"] = files["stl10_binary/test_y.bin"][:-1]
        return files, "test_y.bin"
    if fmt == "folder":
        files = folder_set()
        files["imgs/dog/1.png"] = b"this is not a picture\n"
        return files, "1.png"
    files, buf = npz_set(), io.BytesIO()
    np.savez(buf, x_train=rng_images(20, (16, 16)), y_train=np.arange(19) % 4, x_test=rng_images(8, (16, 16)),
             y_test=np.arange(8) % 4)
    files["d.npz"] = buf.getvalue()
    return files, "d.npz"


def write_set(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def train_on(root: Path, fmt: str) -> list[str]:
    _, dataset, data_dir, _, _ = FORMATS[fmt]
    args = ["train", "--dataset", dataset.format(root=root), "--epochs", "1", "--rounds", "0", "--quiet",
            "--out", str(root / "out")]
    return args + (["--data-dir", str(root)] if data_dir else [])


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_valid_sets_load(tmp_path, fmt):
    """The undamaged files are read without complaint, so every refusal below is the damage's."""
    from reinitlab.data import load_dataset
    write_set(tmp_path, FORMATS[fmt][0]())
    _, dataset, data_dir, _, _ = FORMATS[fmt]
    b = load_dataset(dataset.format(root=tmp_path), tmp_path if data_dir else None)
    assert len(b.y_train) > 0 and len(b.y_test) > 0


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_sizes_that_disagree_are_refused(tmp_path, capsys, fmt):
    files, named = sized_wrong(fmt)
    write_set(tmp_path, files)
    refused(capsys, train_on(tmp_path, fmt), tmp_path / "out", named)
    assert not list((tmp_path / "cache").rglob("*.pt"))


def make_damage_test(fmt):
    @settings(max_examples=max(EXAMPLES // 2, 1), deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(case=damaged(fmt))
    def test(capsys, case):
        files, name, kind = case
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            write_set(root, files)
            refused(capsys, train_on(root, fmt), root / "out", Path(name).name)
            assert not list(Path(os.environ["REINITLAB_DATA"]).rglob("*.pt")), "damaged data was cached"
    test.__name__ = f"test_damaged_{fmt.replace('.', '_')}_files_are_refused"
    test.__doc__ = f"{fmt}: one file truncated, garbage, emptied, lengthened or with a wrong magic number."
    return test


for _fmt in FORMATS:
    globals()[f"test_damaged_{_fmt.replace('.', '_')}_files_are_refused"] = make_damage_test(_fmt)


# ---- the real exit code, from a real process -------------------------------------------------
def test_exit_code_2_from_real_processes(tmp_path):
    (tmp_path / "s.toml").write_text(study_text({**BASE_STUDY, "seeds": []}))
    idx = tmp_path / "idx"
    files = idx_set(False)
    files["train-images-idx3-ubyte"] = files["train-images-idx3-ubyte"][:1000]
    write_set(idx, files)
    for argv, fragment in (
            (["train", "--set", "lr=-1", "--out", str(tmp_path / "a")], "lr=-1.0 is out of range"),
            (["study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "b")], "seeds=[] is empty"),
            (["train", "--dataset", "mnist", "--data-dir", str(idx), "--out", str(tmp_path / "c")], "wrong length")):
        proc = subprocess.run([sys.executable, "-m", "reinitlab", *argv], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "REINITLAB_DATA": str(tmp_path / "cache")})
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
    assert not any((tmp_path / x).exists() for x in "abc")


def test_a_reader_error_quoting_a_multi_line_message_is_still_one_line(tmp_path, capsys):
    """Found by the CIFAR property: a one-byte 'P' pickle makes the unpickler's message span two lines."""
    files = cifar_set()
    files["cifar-10-batches-py/batches.meta"] = b"P"
    write_set(tmp_path, files)
    err = refused(capsys, train_on(tmp_path, "cifar"), tmp_path / "out", "batches.meta")
    assert "persistent" in err


@pytest.mark.parametrize("fmt", ["cifar", "stl10", "folder"])
def test_a_study_on_damaged_data_is_refused_before_anything_is_written(tmp_path, capsys, fmt):
    """Damage the cheap checks (file names, headers) cannot see: the study reads the data once before
    it starts, instead of failing every run of that dataset one by one."""
    files, name = sized_wrong(fmt) if fmt != "cifar" else (cifar_set(), "data_batch_2")
    if fmt == "cifar":
        files["cifar-10-batches-py/data_batch_2"] = files["cifar-10-batches-py/data_batch_2"][:500]
    write_set(tmp_path, files)
    _, dataset, data_dir, _, _ = FORMATS[fmt]
    # 2: the pool left by the validation split of the smallest set (4 folder images, 2 held out)
    study = {**BASE_STUDY, "datasets": [dataset.format(root=tmp_path)], "train_sizes": [2]}
    if data_dir:
        study["data_dir"] = str(tmp_path)
    (tmp_path / "s.toml").write_text(study_text(study))
    refused(capsys, ["study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")], tmp_path / "out", name)


@pytest.mark.parametrize("kind", ["dangling link", "pipe"])
def test_an_image_that_cannot_be_opened_is_named(tmp_path, capsys, kind):
    """A dangling link where an image should be (a file moved away, an unmounted share), or a named
    pipe (opening it would block the reader forever)."""
    write_set(tmp_path, folder_set())
    image = tmp_path / "imgs/cat/1.png"
    image.unlink()
    if kind == "pipe":
        os.mkfifo(image)
    else:
        image.symlink_to(tmp_path / "gone.png")
    err = refused(capsys, train_on(tmp_path, "folder"), tmp_path / "out", f"{image}: unreadable image")
    assert ("missing file" if kind == "dangling link" else "not a regular file") in err
