"""What makes training fast without changing what it computes: process settings (threads, the CPU
allocator), the one optimizer step under the chosen precision, what `precision=auto` resolves to,
and the model-level detours (few-channel BatchNorm, the evaluation memory format), applied through
`accelerate` (tune.py). The cache of measured costs is probe.py."""
