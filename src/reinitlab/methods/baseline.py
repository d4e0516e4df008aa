from ..core.method import Method, register


@register
class Baseline(Method):
    """The plain baseline: one round of E epochs, no reset (R is ignored)."""
    name = "baseline"
    summary = "no reset: one round of E epochs"
    resets = False
    redraws = False

    def epochs(self, rounds: int, epochs: int) -> list[int]:
        return [epochs]


@register
class Long(Method):
    """The compute-matched baseline: one round of (R+1)*E epochs with one learning-rate schedule, as
    many epochs as a method that resets R times; what separates reinitialization from training
    longer."""
    name = "long"
    summary = "no reset: one round of (R+1)*E epochs with one schedule (the compute-matched baseline)"
    resets = False
    redraws = False

    def epochs(self, rounds: int, epochs: int) -> list[int]:
        return [(rounds + 1) * epochs]
