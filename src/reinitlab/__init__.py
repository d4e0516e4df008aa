"""reinitlab: weight reinitialization during training of CNNs on small image datasets."""
from .version import __version__
from .config import TrainConfig  # noqa: E402
from .errors import UserError  # noqa: E402
from .groups import Groups, groups_of  # noqa: E402
from .methods import METHODS, make_method  # noqa: E402
from .models import ARCHS, build_model  # noqa: E402
from .reinit import Reinitializer  # noqa: E402
from .reset import Action, ResetEvent, apply_event, fresh_state  # noqa: E402
from .train import run  # noqa: E402

__all__ = ["TrainConfig", "UserError", "Groups", "groups_of", "METHODS", "make_method", "ARCHS", "build_model",
           "Reinitializer", "Action", "ResetEvent", "apply_event", "fresh_state", "run", "__version__"]
