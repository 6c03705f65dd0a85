"""The experiments' reports: each experiment's markdown and figures drawn from its saved JSON, the
intervals and verdicts of the paper's claims, provenance, and the results summary. Nothing here
computes a model or reads a dataset; :mod:`nerfvae.experiments` computes the results."""
