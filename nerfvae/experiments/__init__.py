"""The paper's experiments, each one command (``nerfvae experiment NAME``) that writes JSON, a
figure and a markdown table under ``docs/results/NAME/`` with the commands, configs, training
budgets and hardware recorded beside them (see :mod:`nerfvae.experiment_reports.provenance`)."""
