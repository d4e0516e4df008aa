"""The reset API: a model's named groups (groups.py), reset events and the one function that applies
them (reset.py), the method interface and registry (method.py), and the Reinitializer that applies a
method to a model inside any training loop (reinit.py)."""
