"""Studies: a definition (axes x shared settings), expanded into run folders under one study folder,
executed by local worker processes or Ray tasks, resumable after any interruption."""
from .definition import StudyDefinition, load_definition  # noqa: F401
from .expand import Budget, RunSpec, expand  # noqa: F401
from .presets import PRESETS  # noqa: F401
from .runner import StudyResult, run_study  # noqa: F401
from .store import Store  # noqa: F401
