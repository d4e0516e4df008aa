"""What is specific to the source paper (Alabdulmohsin, Maennel and Keysers, 2021): the verdict on its
five claims (claims.py, a report part) and the studies that reproduce its grid and test its claims
(presets.py). The rest of reinitlab knows nothing of it."""
