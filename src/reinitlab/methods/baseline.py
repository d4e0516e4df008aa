from ..core.method import Method, register


@register
class Baseline(Method):
    name = "baseline"
    summary = "no reset: one round of E epochs"
    resets = False
    redraws = False

    def epochs(self, rounds: int, epochs: int) -> list[int]:
        return [epochs]


@register
class Long(Method):
    name = "long"
    summary = "no reset: one round of (R+1)*E epochs with one schedule (the compute-matched baseline)"
    resets = False
    redraws = False

    def epochs(self, rounds: int, epochs: int) -> list[int]:
        return [(rounds + 1) * epochs]
