"""`init_from`: round 0 starts from another run's final weights (or a state_dict file's).

    reinitlab train --method lw --set init_from=runs/baseline-0 --out runs/lw-from-baseline

PATH is a finished run folder (its model.pt) or a file holding a state_dict (`torch.save(model.
state_dict(), f)`, or `reinitlab export-model --format state_dict`). The weights must fit the run's
model exactly: a run folder is refused in one line when its arch, width, input channels or classes
differ, a file when a key or a shape differs. LW's frozen standardizations in the source come along
as they are (they are part of the function the source computes) and stay frozen in the new run.

The resolved config records a hash of the tensors loaded (`init_from_sha256`), so provenance.json
names the exact weights: a study whose source run was trained again since refuses to count the
runs made from the old weights unless told to mix (study/mixing.py), and a run folder is resumed
only from the same weights. Setting init_from_sha256 yourself pins the weights: a different file
is then refused.
"""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..core.reset import STD_MEAN, STD_STD, insert_standardize
from ..util.errors import UserError
from ..util.files import read_json_dict, torch_file_problem


@dataclass(frozen=True)
class InitSource:
    path: Path
    state: dict[str, torch.Tensor]  # parameters and buffers, standardizations included
    config: dict | None  # the source run's config.json (None for a state_dict file)

    @property
    def sha256(self) -> str:
        return weights_hash(self.state)


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 (first 16 hex digits) of names, dtypes, shapes and values: the same weights give the
    same hash whatever file (and pickle layout) they came in."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def load(path: str | Path, context: str | None = None) -> InitSource:
    """The weights at `path` (a run folder or a state_dict file), or a one-line UserError that begins
    with `context`: what the user gave that led here (default `init_from=PATH`; `export-model`
    reads a run's model.pt through here too, and says so)."""
    p = Path(path)
    where = context or f"init_from={path}"
    if p.is_dir():
        if not (p / "model.pt").is_file():
            why = "an unfinished run (no model.pt yet)" if (p / "config.json").is_file() else "no reinitlab run"
            raise UserError(f"{where}: the folder holds {why}; name a finished run folder or a state_dict file")
        saved = _torch_load(p / "model.pt", where, ours=True)
        state = saved.get("model") if isinstance(saved, dict) else None
        config = read_json_dict(p / "config.json") or (saved.get("config") if isinstance(saved, dict) else None)
    elif p.is_file():
        saved = _torch_load(p, where)
        state = saved.get("model") if isinstance(saved, dict) and isinstance(saved.get("model"), dict) else saved
        config = saved.get("config") if isinstance(saved, dict) and isinstance(saved.get("config"), dict) else None
    else:
        raise UserError(f"{where}: no such file or folder")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{where}: holds no state_dict (a mapping of names to tensors)")
    return InitSource(p, {k: v.detach().cpu() for k, v in state.items()}, config)


def _torch_load(path: Path, where: str, ours: bool = False):
    """torch.load, data only. `ours`: a run's model.pt, which reinitlab writes as a zip archive, so
    a failure is named as for any run file (torn, garbled, holds code); a user's file may be in
    torch's older non-zip format, where only the loader's own words apply."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torn, not a torch file, or a pickle of code
        problem = torch_file_problem(path) if ours or zipfile.is_zipfile(path) else None
        if problem is None:
            problem = f"not a readable torch state_dict file ({type(e).__name__}: {' '.join(str(e).split())[:160]})"
        raise UserError(f"{where}: {path}: {problem}; not loaded") from None


def check(source: InitSource, model: nn.Module, arch: str, width: float, in_channels: int, classes: int,
          context: str | None = None) -> None:
    """Refuse weights that do not fit `model` (built for arch/width/in_channels/classes): one line,
    beginning with `context` as in `load`."""
    where = context or f"init_from={source.path}"
    c = source.config
    if c:
        mine = {"arch": arch, "width": width}
        for key, value in mine.items():
            if key in c and c[key] != value:
                raise UserError(f"{where}: that run trained {key}={c[key]}, this run has {key}={value}; the "
                                "weights fit only the same architecture and width")
    own = model.state_dict()
    extra = [k for k in source.state if k not in own and not _is_standardization(k)]
    missing = [k for k in own if k not in source.state]
    if extra or missing:
        k = (missing or extra)[0]
        what = "lacks" if missing else "has an extra"
        raise UserError(f"{where}: the weights do not fit arch={arch} width={width:g}: they {what} {k!r} "
                        f"({len(missing)} missing, {len(extra)} extra keys)")
    for k, v in own.items():
        got = tuple(source.state[k].shape)
        if got != tuple(v.shape):
            head = getattr(model, "group_spec", None) and k.startswith(list(model.group_spec)[-1] + ".")
            if head and v.dim() >= 1 and got[:1] != tuple(v.shape[:1]):
                raise UserError(f"{where}: the weights are for {got[0]} classes, this run's data has {classes}")
            raise UserError(f"{where}: {k} has shape {list(got)}, arch={arch} width={width:g} with {in_channels} "
                            f"input channel(s) and {classes} classes needs {list(v.shape)}")


def _is_standardization(key: str) -> bool:
    return key.rpartition(".")[2] in (STD_MEAN, STD_STD)


@torch.no_grad()
def apply(model: nn.Module, source: InitSource) -> None:
    """Load the source's weights into `model` (built for the same architecture), carrying its frozen
    standardizations over."""
    for key, mean in source.state.items():
        module, _, leaf = key.rpartition(".")
        if leaf == STD_MEAN:
            insert_standardize(model, module, mean, source.state[f"{module}.{STD_STD}"])
    model.load_state_dict(source.state)
