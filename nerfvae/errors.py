"""Error types for problems with the user's input (files, configs, checkpoints).

The CLI prints these as one clear line without a traceback; anything else is a bug and keeps its
traceback. Every layer may import this module.
"""


class NerfVAEError(ValueError):
    """A problem with what the user gave us; the message names the file or field at fault."""


class DataError(NerfVAEError):
    """A dataset file is missing, truncated, of the wrong shape/dtype/version, or holds NaN/inf."""


class ConfigError(NerfVAEError):
    """A config file or override is invalid or does not match a run directory."""


class CheckpointError(NerfVAEError):
    """A checkpoint is missing, corrupt or does not match the model config."""
