"""The one unknown-name message (did-you-mean) and the one version."""
import importlib
import re
from importlib import metadata
from pathlib import Path

import pytest

from reinitlab.data import check_dataset
from reinitlab.methods import parse_spec
from reinitlab.models import check_arch
from reinitlab.util.errors import UserError, did_you_mean, unknown_message


def test_did_you_mean_ignores_case_and_stays_quiet_when_nothing_is_close():
    assert did_you_mean("LW", ["lw", "llf", "fc"]) == "lw"
    assert did_you_mean("resnet19", ["cnn", "resnet18", "resnet50"]) == "resnet18"
    assert did_you_mean("zzzz", ["cnn", "vgg"]) is None
    assert unknown_message("arch", "zzzz", ["vgg", "cnn"]) == "unknown arch 'zzzz'; valid: cnn, vgg"


@pytest.mark.parametrize("check,name,hint", [
    (parse_spec, "lww:rescale=false", "unknown method 'lww' (did you mean 'lw'?); valid: baseline, cbp, dash"),
    (check_arch, "Resnet18", "unknown arch 'Resnet18' (did you mean 'resnet18'?); valid: cnn"),
    (check_dataset, "fashion-mnist-smal", "unknown dataset 'fashion-mnist-smal' (did you mean "
                                          "'fashion-mnist-small'?); valid: "),
])
def test_every_registry_suggests_the_closest_name(check, name, hint):
    with pytest.raises(UserError) as e:
        check(name)
    assert str(e.value).startswith(hint), str(e.value)


def test_version_comes_from_package_metadata_or_the_checkouts_pyproject(monkeypatch):
    import reinitlab
    import reinitlab.version as v
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    assert reinitlab.__version__ == v.__version__ == metadata.version("reinitlab")

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    try:
        assert importlib.reload(v).__version__ == declared
    finally:
        monkeypatch.undo()
        importlib.reload(v)
