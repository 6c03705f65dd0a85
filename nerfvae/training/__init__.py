"""Training: configs, ELBO optimisation loop, run directories and checkpoints."""
