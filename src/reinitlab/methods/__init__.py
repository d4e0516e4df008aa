"""The reset methods, one per file; each registers itself in the method registry
(reinitlab.core.method.METHODS), which imports this package's modules when first asked. The
interface and the registry are re-exported here for users' code."""
from ..core.method import (  # noqa: F401
                           METHODS,
                           Method,
                           NoOptions,
                           RedrawOptions,
                           ResetContext,
                           make_method,
                           parse_spec,
                           register,
                           warn_budget,
)
