"""NeRF-VAE: amortized inference of a scene latent from context views, rendered by a shared NeRF."""

from __future__ import annotations

from copy import deepcopy

import torch
from torch import nn

from nerfvae.errors import ConfigError
from nerfvae.models.config import NeRFVAEConfig
from nerfvae.models.encoder import ContextEncoder
from nerfvae.models.latent import LOG_STD_MAX, LOG_STD_MIN, DiagonalGaussian
from nerfvae.models.planes import PlanesSceneFunction
from nerfvae.models.ray_model import RaySceneModel
from nerfvae.models.scene_function import SceneFunction
from nerfvae.rendering import RaySamplingConfig, render_rays


class IterativeInferenceUpdate(nn.Module):
    """One learned iterative-amortized-inference update (Marino et al., 2018), shared across steps.

    Maps (posterior parameters, ELBO gradient w.r.t. them) per latent token to a gated update of
    the parameters. Gradients are squashed with sign·log1p(|g|) because their scale varies by orders
    of magnitude over training.
    """

    def __init__(self, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(4 * channels, hidden), nn.ReLU(), nn.Linear(hidden, 4 * channels)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(
        self, posterior: DiagonalGaussian, grad_mean: torch.Tensor, grad_log_std: torch.Tensor
    ) -> DiagonalGaussian:
        squash = lambda g: g.sign() * g.abs().log1p()
        inputs = torch.cat(
            [posterior.mean, posterior.log_std, squash(grad_mean), squash(grad_log_std)], dim=-1
        )
        update, gate_logits = self.net(inputs).chunk(2, dim=-1)
        gate = torch.sigmoid(gate_logits)
        new = torch.cat([posterior.mean, posterior.log_std], dim=-1) * (1 - gate) + gate * update
        # gate starts at 0.5 and update at 0: blend towards a learned update, starting halfway.
        mean, log_std = new.chunk(2, dim=-1)
        return DiagonalGaussian(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX))


class NeRFVAE(RaySceneModel):
    """Encoder -> q(z | context) (+ T learned iterative inference steps) -> scene function ->
    volume rendering."""

    def __init__(self, config: NeRFVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("scene_min", torch.tensor(config.scene_min, dtype=torch.float32))
        self.register_buffer("scene_max", torch.tensor(config.scene_max, dtype=torch.float32))
        background = config.background if config.background is not None else (0.0, 0.0, 0.0)
        self.register_buffer("background", torch.tensor(background, dtype=torch.float32))
        self.encoder = ContextEncoder(
            config.encoder, config.latent, config.scene_min, config.scene_max, config.up_axis
        )
        function_class = (
            PlanesSceneFunction if config.scene_function.conditioning == "planes" else SceneFunction
        )
        self.scene_function = function_class(
            config.scene_function,
            config.latent,
            config.scene_min,
            config.scene_max,
            config.up_axis,
        )
        if config.sampling.sampler == "proposal" and not self.scene_function.has_proposal:
            raise ConfigError(
                "sampling.sampler 'proposal' needs scene_function.conditioning 'planes' (the "
                f"{config.scene_function.conditioning!r} scene function has no proposal density)"
            )
        self.iterative_update = (
            IterativeInferenceUpdate(config.latent.channels)
            if config.iterative_inference_steps > 0
            else None
        )
        self.mixed_precision = False
        """Run the scene function under CPU/GPU bfloat16 autocast (set by the trainer/evaluator)."""

    # -- inference -------------------------------------------------------------------------
    def prior(self, scenes: int) -> DiagonalGaussian:
        shape = (scenes, self.config.latent.num_tokens, self.config.latent.channels)
        zeros = torch.zeros(shape, device=self.scene_min.device)
        return DiagonalGaussian(zeros, zeros.clone())

    def infer(self, context_images, context_K, context_c2w, generator=None) -> DiagonalGaussian:
        posterior = self.encoder(context_images, context_K, context_c2w)
        for _ in range(self.config.iterative_inference_steps):
            posterior = self._iterative_inference_step(
                posterior, context_images, context_K, context_c2w, generator
            )
        return posterior

    def _iterative_inference_step(self, posterior, images, K, c2w, generator) -> DiagonalGaussian:
        """One learned update from the gradient of the context-view ELBO w.r.t. q's parameters.

        The gradient is an input to the update network (no second-order terms), as in Marino et
        al.
        """
        pixel_dims = images[0].numel()
        with torch.enable_grad():
            mean = posterior.mean.detach().requires_grad_(True)
            log_std = posterior.log_std.detach().requires_grad_(True)
            elbo = self.context_elbo(
                DiagonalGaussian(mean, log_std),
                images,
                K,
                c2w,
                self.config.iterative_inference_rays,
                generator,
            )
            grad_mean, grad_log_std = torch.autograd.grad(elbo.sum(), [mean, log_std])
        return self.iterative_update(posterior, grad_mean / pixel_dims, grad_log_std / pixel_dims)

    # -- rendering -------------------------------------------------------------------------
    @property
    def sampling(self) -> RaySamplingConfig:
        return self.config.sampling

    def field(self, latent: torch.Tensor):
        """The scene function of scenes with ``latent [S, T, C]`` as a rendering callback
        ``(points [S, R, N, 3], directions [S, R, N, 3]) -> (density [S, R, N], colour [..., 3])``."""
        return self._fields(latent)[0]

    def _fields(self, latent: torch.Tensor):
        """``(field, proposal density)`` callbacks of scenes with ``latent [S, T, C]``; the
        proposal is ``None`` for a scene function without one. The per-scene decode runs once
        here (once per rendering call, or once per latent when rendering without gradients in
        chunks: see :meth:`_decode`)."""
        inference = self.mixed_precision and not torch.is_grad_enabled()
        function = self._bfloat16_scene_function() if inference else self.scene_function
        autocast = self.mixed_precision and not inference
        with torch.autocast(latent.device.type, torch.bfloat16, enabled=autocast):
            code = self._decode(function, latent)

        def query(points: torch.Tensor, directions: torch.Tensor):
            scenes = points.shape[0]
            sample_shape = points.shape[:-1]
            with torch.autocast(points.device.type, torch.bfloat16, enabled=autocast):
                density, colour = function(
                    points.reshape(scenes, -1, 3), directions.reshape(scenes, -1, 3), code
                )
            return density.reshape(sample_shape), colour.reshape(*sample_shape, 3)

        if not function.has_proposal:
            return query, None

        def proposal(points: torch.Tensor):
            scenes = points.shape[0]
            with torch.autocast(points.device.type, torch.bfloat16, enabled=autocast):
                density = function.proposal_density(points.reshape(scenes, -1, 3), code)
            return density.reshape(points.shape[:-1])

        return query, proposal

    def _decode(self, function: nn.Module, latent: torch.Tensor):
        """``function.decode(latent)``, remembered for the last latent while no gradient is
        needed: rendering a view calls :meth:`render` once per chunk of rays, and the per-scene
        decode must not be repeated for each chunk. The memo is keyed on the latent tensor itself
        (and its in-place version) and the weights' versions, so a new latent, an edited one or an
        optimiser step decodes afresh."""
        if torch.is_grad_enabled():
            return function.decode(latent)
        parameters = list(function.parameters())
        key = (id(function), latent._version, *(p._version for p in parameters))
        memo = getattr(self, "_decode_memo", None)
        if memo is not None and memo[0] is latent and memo[1] == key:
            return memo[2]
        code = function.decode(latent)
        object.__setattr__(self, "_decode_memo", (latent, key, code))  # not a submodule
        return code

    def _bfloat16_scene_function(self) -> SceneFunction:
        """A bfloat16 copy of the scene function for rendering without gradients.

        Autocast re-casts weights and activations at every layer; at inference that casting cost
        more than the matrix products (profiled: 23% of render time in copies), so a bfloat16
        copy runs instead, 1.5x faster. Buffers (scene box, encoding frequencies) stay float32.
        The copy is rebuilt whenever a parameter has changed (optimiser step, weight loading).
        """
        parameters = list(self.scene_function.parameters())
        key = (*(p._version for p in parameters), parameters[0].device.type)
        cached = getattr(self, "_bfloat16_cache", None)
        if cached is None or cached[0] != key:
            copy = deepcopy(self.scene_function).to(torch.bfloat16)
            for module_copy, module in zip(copy.modules(), self.scene_function.modules()):
                for name, buffer in module.named_buffers(recurse=False):
                    setattr(module_copy, name, buffer.clone())
            object.__setattr__(self, "_bfloat16_cache", (key, copy))  # not a submodule
            cached = (key, copy)
        return cached[1]

    def render(
        self,
        latent,
        origins,
        directions,
        near=None,
        far=None,
        *,
        generator=None,
        sampling=None,
        proposal_density=None,
    ):
        if near is None or far is None:
            near, far = self.ray_bounds(origins, directions)
        field, proposal = self._fields(latent)
        return render_rays(
            field,
            origins,
            directions,
            near,
            far,
            sampling or self.config.sampling,
            proposal_density=proposal if proposal_density is None else proposal_density,
            background=self.background,
            generator=generator,
            training=self.training,
        )
