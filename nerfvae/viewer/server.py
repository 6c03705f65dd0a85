"""Start the viewer: load a run and a dataset split, open a viser server, build the page."""

from __future__ import annotations

from pathlib import Path

from nerfvae.errors import ConfigError, check_at_least
from nerfvae.viewer.session import ViewerSession

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def start_viewer(
    model,
    dataset,
    split: str = "test",
    host: str = "127.0.0.1",
    port: int = 7007,
    render_height: int | None = None,
    preview_scale: float = 0.25,
    settle_seconds: float = 0.25,
    std_samples: int = 4,
    seed: int = 0,
    verbose: bool = True,
    prior=None,
    density_grid=None,
):
    """Serve the viewer for ``model`` on ``dataset`` (a MultiSceneDataset split) at
    ``http://host:port`` (``port=0``: any free port) and return the running
    :class:`~nerfvae.viewer.app.ViewerApp` (``app.server.get_port()``; ``app.stop()``).

    ``render_height`` defaults to the dataset's image height; ``prior`` (a
    :class:`~nerfvae.evaluation.scene_priors.ScenePrior`) is what "new scene" draws from
    (default: the model's N(0, I)); ``density_grid`` (a
    :class:`~nerfvae.rendering.DensityGridConfig`) how full frames place the field's samples."""
    try:
        import viser
    except ImportError:
        raise ConfigError(
            "the viewer needs the viser package: pip install 'nerfvae[viewer]'"
        ) from None

    from nerfvae.viewer.app import ViewerApp, ViewerOptions

    if not 0 < preview_scale <= 1:
        raise ConfigError(f"--preview-scale must lie in (0, 1], got {preview_scale}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must lie in 0..65535 (0: any free port), got {port}")
    if not settle_seconds >= 0:  # also rejects NaN
        raise ConfigError(f"--settle-seconds must be 0 or more, got {settle_seconds}")
    check_at_least(std_samples, "--std-samples", 2, "2 latent samples for a std")
    height = render_height or dataset.meta.image_height
    if not 4 <= height <= 2048:
        raise ConfigError(f"--render-height must lie in 4..2048, got {height}")
    session = ViewerSession(
        model, dataset, split, std_samples=std_samples, seed=seed, prior=prior,
        density_grid=density_grid,
    )  # fmt: skip
    server = viser.ViserServer(host=host, port=port, label="nerfvae viewer", verbose=verbose)
    lo, hi = dataset.meta.scene_bounds
    centre = [(a + b) / 2 for a, b in zip(lo, hi)]
    # Start where the dataset's first camera of the first scene looks from.
    c2w = session.scene.c2w[0]
    server.initial_camera.position = tuple(float(v) for v in c2w[:3, 3])
    server.initial_camera.look_at = (centre[0], centre[1], lo[2])
    server.initial_camera.up = (0.0, 0.0, 1.0)
    options = ViewerOptions(
        render_height=height, preview_scale=preview_scale, settle_seconds=settle_seconds
    )
    return ViewerApp(session, server, options)


def serve(
    run: str | Path,
    data: str | Path,
    split: str = "test",
    host: str = "127.0.0.1",
    port: int = 7007,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    precision: str | None = None,
    prior: str = "auto",
    **options,
) -> None:
    """Load ``run`` and ``data`` and serve until interrupted (Ctrl-C); new scenes come from the
    run's prior ``prior`` (:func:`nerfvae.evaluation.scene_priors.scene_prior`)."""
    import time

    import torch

    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.scene_priors import scene_prior
    from nerfvae.training.loading import load_trained_model

    dataset = MultiSceneDataset(data, split)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, _, record = load_trained_model(run, checkpoint, precision, device=device)
    model.to(torch.device(device))
    chosen = scene_prior(run, model, record, prior)
    app = start_viewer(model, dataset, split, host, port, verbose=False, prior=chosen, **options)
    url_host = f"[{host}]" if ":" in host else host
    print(f"nerfvae viewer: http://{url_host}:{app.server.get_port()} (Ctrl-C to stop)")
    print(f"new scenes are drawn from {chosen.describe()}")
    if host not in LOCAL_HOSTS:
        print(f"warning: listening on {host}: anyone who can reach this address can use the viewer")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
