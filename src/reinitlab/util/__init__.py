"""The bottom layer: errors, seeded random streams, the registry type, typed options, files that survive
a kill, the progress bar. Imports nothing else of reinitlab."""
