"""The fusion model (``arch = "fusion"``): each pixel chooses among the class evidence of its k
nearest EDS points, by dynamic attention on BSE context and BSE edge evidence.

Why (measured, docs/results.md): the paper's GAT is level with nearest-EDS labelling because its
static attention cannot compare a pixel with its neighbours, its EDS nodes carry no BSE, and each
pixel links to a single EDS node.  Here, per field:

1. BSE context: the standardised BSE and the valid mask (:mod:`mingraph.graphs.candidates`)
   through a 3×3 stem and residual blocks of dilated 3×3 convolutions (dilations 1, 2, 4, 8:
   a receptive field of 33 px, 16 px on each side, farther than the EDS spacing at 1 %),
   GroupNorm (per-field statistics) and ReLU, giving a feature f_i per pixel; an EDS point's
   features are f at its own pixel (it carries its BSE).
2. Cross layer: GATv2 attention of pixel i over its k candidates
   (:func:`mingraph_kernels.gatv2_candidates.gatv2_candidates`), edge features the 9 BSE
   segment features and f_i ⊙ f_j; H heads mixed by learnt softmax weights w_h.  The kernel
   (fused Numba on CPU, Triton on CUDA, or the plain-torch reference) is ``FusionModel.impl``.
3. Output: q_i = Σ_h w_h Σ_j α^h_ij p_j, where p_j is the spectral encoder's class
   probabilities for point j; logits log q_i.  A model file whose meta holds a ``temperature``
   T or a ``platt`` (a, b) (fitted on validation fields, :mod:`mingraph.analyse.calibrate_model`)
   predicts their calibration of q instead (:func:`calibrated_log_q`; ``FusionModel.temperature``
   and ``.platt``; never while training): the class is the same, the confidence calibrated.  The
   answer is always a mixture of measured evidence: BSE decides *which* point a pixel belongs
   with, never overrules what the EDS says, which keeps the model above nearest-EDS labelling on
   other instruments.
4. The palette (``palette`` > 0, issue 23): a field-level path past the k candidates, for a
   grain that holds no point and whose phase none of its k nearest points measured.  The field's
   palette holds every class that is the top class of at least one of its points; a class's key
   is W_k (the mean of f over those points, weighted by that class's probability), so it says
   what BSE level and texture the phase has *in this field*.  Pixel i's palette distribution is
   π_i = softmax_c((W_q f_i + b_q) · key_c / √d) over the present classes, and its answer
   (1 − g_i) q_i + g_i π_i, with a gate g_i = σ(w · [f_i, max_c s_ic − Σ_c q_ic s_ic, Σ_c q_ic log q_ic]
   + b) on the pixel's context, how far the palette's best class lies above the candidates' mix,
   and that mix's certainty.  Like the cross layer it never reads which class is which (a
   permutation of the class list permutes the answer), and a phase that no point in the field
   measured is never given.  When predicting in blocks the palette is that of the block's window
   (the block and its margin).
5. Inputs without a specimen mask (``mask_input = False``, ``standardise = "points"``): the mask
   channel is all ones and the BSE's median and spread come from the BSE around the EDS points
   (:func:`mingraph.graphs.candidates.point_bse_scale`), so a field predicted with or without a
   mask gives the same answer on its specimen pixels.  Files written before these options keep
   the mask channel and the valid-pixel scale.

Prediction (no gradients, CPU) runs the BSE context channels-last and in place through oneDNN,
in float32 or, as an option, with its dilated convolutions in bfloat16 (``FusionModel.precision``,
:func:`default_precision`): then labels agree with float32 on ≥ 99.5 % of pixels and confidences
within 0.01 (tests/test_default_model.py, docs/performance.md).  Training and other devices keep
PyTorch's default layout.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mingraph.graphs.candidates import (
    DEFAULT_K,
    N_FEATURES,
    STANDARDISE,
    CandidateGraph,
    build_candidate_graph,
    field_scale,
)
from mingraph.spectra.encoder import class_probabilities
from mingraph_kernels.gatv2_candidates import gatv2_candidates_layer

DILATIONS = (1, 2, 4, 8)
CROSS_CHUNK = 16384  # pixels per chunk of the cross layer when predicting (its tensors stay in cache)
PRECISIONS = ("float32", "bfloat16")


def default_precision() -> str:
    """The BSE context's precision when predicting on CPU: "float32".  "bfloat16" (where oneDNN
    has it natively: AVX-512 BF16 or AMX, :func:`bfloat16_native`) agrees as issue 24 asks but
    was not faster end to end on the 2-core bench machine (docs/performance.md), so it is an
    option, not the default.

    Examples
    --------
    >>> default_precision()
    'float32'
    """
    return "float32"


def bfloat16_native() -> bool:
    """Whether oneDNN runs bfloat16 convolutions natively on this CPU.

    Examples
    --------
    >>> isinstance(bfloat16_native(), bool)
    True
    """
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class _Block(nn.Module):
    """x + W2 ReLU(W1_dilated ReLU(GroupNorm(x))): a pre-activation residual block."""

    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv2d(ch, ch, 1)
        self.n = nn.GroupNorm(4, ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.c2(F.relu(self.c1(F.relu(self.n(x)))))


class FusionModel(nn.Module):
    """The fusion model (module docstring).  ``config`` round-trips through the model file.

    ``impl`` picks the cross layer's kernel: "numba" (CPU), "triton" (CUDA), "torch" (the
    reference, any device) or None, the fastest correct one for the device
    (:func:`mingraph_kernels.gatv2_candidates.default_impl`); ``precision`` the BSE context's
    when predicting on CPU: "float32", "bfloat16" or None for :func:`default_precision`.
    Neither is part of the model file.
    """

    arch = "fusion"
    label = "fusion model"
    min_margin = 64  # px: the BSE context's reach, and a candidate's distance at low fractions
    mixes_point_classes = True

    def __init__(
        self,
        num_classes: int = 50,
        channels: int = 32,
        heads: int = 4,
        head_dim: int = 8,
        k: int = DEFAULT_K,
        impl: str | None = None,
        precision: str | None = None,
        palette: int = 0,
        mask_input: bool = True,
        standardise: str = "valid",
    ):
        super().__init__()
        if standardise not in STANDARDISE:
            raise ValueError(f"unknown standardise {standardise!r}; expected one of {STANDARDISE}")
        self.impl = impl
        self.precision = precision
        # post-hoc calibration (a model file's meta "temperature" and "platt"), predicting only
        self.temperature: float = 1.0
        self.platt: tuple[float, float] | None = None
        self.config = {
            "arch": "fusion",
            "num_classes": num_classes,
            "channels": channels,
            "heads": heads,
            "head_dim": head_dim,
            "k": k,
        }
        if palette or not mask_input or standardise != "valid":  # older files: the defaults
            self.config |= {"palette": palette, "mask_input": mask_input, "standardise": standardise}
        self.num_classes, self.k, self.heads = num_classes, k, heads
        self.mask_input, self.standardise, self.palette_dim = bool(mask_input), standardise, int(palette)
        self.stem = nn.Conv2d(2, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(channels, d) for d in DILATIONS])
        hd = heads * head_dim
        self.lin_dst = nn.Linear(channels, hd)
        self.lin_src = nn.Linear(channels, hd)
        self.lin_edge = nn.Linear(N_FEATURES + channels, hd, bias=False)
        self.att = nn.Parameter(torch.randn(heads, head_dim) * 0.1)
        self.head_mix = nn.Parameter(torch.zeros(heads))
        if palette:  # the field-level path (module docstring, 4.)
            self.pal_query = nn.Linear(channels, palette)
            self.pal_key = nn.Linear(channels, palette)
            self.pal_gate = nn.Linear(channels + 2, 1)
            nn.init.zeros_(self.pal_gate.weight)
            nn.init.constant_(self.pal_gate.bias, -2.0)  # starts close to the candidates alone

    @property
    def eds_dim(self) -> int:
        """Values per EDS point the model takes: the encoder's class probabilities."""
        return self.num_classes

    # the phase-model interface (mingraph.learn.registry.PhaseModel)

    def point_features(self, encoder, spectra: np.ndarray) -> np.ndarray:
        """The encoder's (n, classes) class probabilities of (n, 3000) count spectra: the EDS
        evidence the model mixes (any classifier with a ``class_probabilities`` method, e.g. the
        physics classifier, whose classes need not be the model's)."""
        if hasattr(encoder, "class_probabilities"):
            return encoder.class_probabilities(spectra)
        return class_probabilities(encoder, spectra)

    def point_classes(self, encoder, features: np.ndarray) -> np.ndarray:
        """(n,) int64: the most probable class of each point's evidence."""
        return np.asarray(features).argmax(1).astype(np.int64)

    def field_context(
        self, bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray | None = None
    ) -> tuple[float, float]:
        """The whole field's BSE standardisation, shared by its blocks (:func:`field_scale` with
        the model's ``standardise``: over the valid pixels, or around the EDS points, which needs
        no specimen mask).

        Parameters
        ----------
        bse : (H, W) float
            BSE, any scale.
        valid : (H, W) bool
            Specimen pixels.
        eds_rc : (N, 2) int or None
            EDS points, row and column (px).

        Returns
        -------
        (float, float)
            (median, spread) in ``bse``'s units.

        Examples
        --------
        >>> b = np.zeros((20, 20), np.float32); b[:, 10:] = 1.0
        >>> FusionModel(3, standardise="points").field_context(b, np.ones((20, 20), bool), np.array([[5, 15]]))
        (1.0, 0.02)
        """
        return field_scale(bse, valid, eds_rc, self.standardise)

    def graph(
        self, bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray, scale: tuple[float, float] | None = None
    ) -> CandidateGraph:
        """The candidate graph this model reads (:func:`build_candidate_graph`), its BSE
        standardised as the model was trained.

        Parameters
        ----------
        bse : (H, W) float
            BSE, any scale.
        valid : (H, W) bool
            Specimen pixels (the graph keeps them; a model with ``mask_input = False`` ignores
            them).
        eds_rc : (N, 2) int
            EDS points, row and column (px), inside the field.
        scale : (float, float) or None
            The whole field's :meth:`field_context` when this is a block of it; None: this
            field's own.

        Returns
        -------
        CandidateGraph

        Raises
        ------
        InputError
            Shapes that disagree, or points outside the field (:func:`build_candidate_graph`).

        Examples
        --------
        >>> m = FusionModel(3, channels=8, heads=2, head_dim=4, k=2, standardise="points")
        >>> g = m.graph(np.random.default_rng(0).random((8, 8)), np.ones((8, 8), bool), np.array([[1, 1], [6, 6]]))
        >>> g.idx.shape, g.n_eds
        ((8, 8, 2), 2)
        """
        if scale is None:
            scale = self.field_context(bse, valid, eds_rc)
        return build_candidate_graph(bse, valid, eds_rc, self.k, scale)

    @torch.no_grad()
    def block_probabilities(self, bse, valid, rc, features, context, settings: dict) -> Tensor | None:
        """(h, w, classes) mixture q of one block window; None when the window holds no point."""
        g = self.graph(bse, valid, rc, context)
        if g.n_eds == 0:
            return None
        skip = int(bool(settings.get("unknown_column", False)))  # the physics' unknown: no palette class
        logp, _ = self(*batch_inputs([g], [features], next(self.parameters()).device), palette_skip=skip)
        return logp[0].exp()

    def field_maps(self, encoder, settings: dict, fields: list, graphs: list, spectra: list) -> list:
        """Class maps of evaluation fields on the points ``graphs[i].eds_rc``."""
        return [m for m, _ in self.field_predictions(encoder, settings, fields, graphs, spectra)]

    def field_predictions(self, encoder, settings: dict, fields: list, graphs: list, spectra: list) -> list:
        """(class map (H, W) int64, confidence (H, W) float32) of each evaluation field on the
        points ``graphs[i].eds_rc`` (:func:`predict_fusion`; the confidence is max q, after the
        file's ``temperature``)."""
        skip = int(bool(getattr(encoder, "unknown_column", False)))  # the physics' unknown column
        return [
            predict_fusion(
                self,
                self.graph(f.bse, f.valid, g.eds_rc),
                self.point_features(encoder, sp),
                palette_skip=skip,
            )
            for f, g, sp in zip(fields, graphs, spectra)
        ]

    def context(self, bse: Tensor, valid: Tensor) -> Tensor:
        """(B, H, W, C) pixel features from standardised BSE and valid mask, both (B, H, W).

        Without gradients on CPU: channels-last (the result is contiguous), in ``precision``
        (module docstring); the features are float32 either way.
        """
        if not self.mask_input:  # a model that never reads a specimen mask
            valid = torch.ones_like(bse)
        x = torch.stack([bse, valid], 1)
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
            return self.blocks(self.stem(x)).permute(0, 2, 3, 1)
        precision = self.precision or default_precision()
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
        dt = torch.bfloat16 if precision == "bfloat16" else torch.float32
        f = self.stem(x.contiguous(memory_format=torch.channels_last))
        for blk in self.blocks:  # _Block.forward in place: the dilated 3x3 in dt, the rest float32
            c1, c2 = blk.c1, blk.c2
            y = F.relu_(blk.n(f)).to(dt)
            y = F.conv2d(y, c1.weight.to(dt), c1.bias.to(dt), padding=c1.padding, dilation=c1.dilation)
            # the 1x1 in float32: a bfloat16 output rounds each residual step (confidences to 0.0105)
            f = f.add_(F.conv2d(y.relu_().float(), c2.weight, c2.bias))
        return f.permute(0, 2, 3, 1)

    def forward(
        self,
        bse: Tensor,
        valid: Tensor,
        idx: Tensor,
        features: Tensor,
        eds_prob: Tensor,
        eds_pixel: Tensor,
        palette_skip: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """(log-probabilities (B, H, W, classes), attention (B, H, W, k)) of a batch of fields.

        ``bse``, ``valid`` (B, H, W) float; ``idx`` (B, H, W, k) int64 indices into the batch's EDS
        points (−1 = none); ``features`` (B, H, W, k, 9); ``eds_prob`` (N, classes) the encoder's
        class probabilities; ``eds_pixel`` (N,) int64 flat index (b·H·W + r·W + c) of each point.
        ``palette_skip``: the last that many evidence columns never enter the palette (the physics
        classifier's "unknown": a set of rejected spectra has no BSE signature of its own, and the
        model never trained on one).
        """
        f = self.context(bse, valid)
        b, h, w, c = f.shape
        flat = f.reshape(-1, c)
        f_src = flat[eds_pixel]
        pix_idx = idx.reshape(-1, idx.shape[-1])
        feats = features.reshape(*pix_idx.shape, -1)
        keys = (
            self._palette_keys(f_src, eds_prob, eds_pixel // (h * w), b, palette_skip)
            if self.palette_dim
            else None
        )
        # without gradients (prediction) the cross layer runs in chunks of pixels: memory stays
        # O(chunk x k x features) whatever the field size
        if torch.is_grad_enabled():
            logp, a = self._cross(flat, f_src, pix_idx, feats, eds_prob)
            if keys is not None:
                logp = torch.cat(
                    [
                        self._palette_mix(lp, fb, *kb)
                        for lp, fb, kb in zip(logp.split(h * w), flat.split(h * w), keys)
                    ]
                )
            return logp.view(b, h, w, -1), a.view(b, h, w, -1)
        logp = flat.new_empty((len(flat), eds_prob.shape[-1]))  # the evidence's classes, any list
        a = flat.new_empty((len(flat), pix_idx.shape[-1]))
        for t in range(b):  # each field's chunks' results straight into place
            for s in range(t * h * w, (t + 1) * h * w, CROSS_CHUNK):
                e = min(s + CROSS_CHUNK, (t + 1) * h * w)
                lq, a[s:e] = self._cross(flat[s:e], f_src, pix_idx[s:e], feats[s:e], eds_prob)
                if keys is not None:
                    lq = self._palette_mix(lq, flat[s:e], *keys[t])
                logp[s:e] = calibrated_log_q(lq, self.temperature, self.platt)  # the file's calibration
        return logp.view(b, h, w, -1), a.view(b, h, w, -1)

    def _palette_keys(
        self, f_src: Tensor, eds_prob: Tensor, eds_field: Tensor, n_fields: int, skip: int = 0
    ) -> list:
        """Per field, (keys (classes, d), present (classes,) bool) of its palette: a class is
        present where it is the top class of at least one of the field's points, and its key is
        the mean BSE context of those points weighted by that class's probability.  Only the
        points' BSE context enters: the classes are never read, so any list can feed it."""
        out = []
        top = eds_prob.argmax(-1) if len(eds_prob) else eds_field
        for t in range(n_fields):
            on = eds_field == t
            p, fs, tc = eds_prob[on], f_src[on], top[on]
            w = torch.zeros_like(p).scatter_(1, tc[:, None], p.gather(1, tc[:, None]))  # (n, classes)
            mass = w.sum(0)
            present = mass > 0
            if skip:
                present[-skip:] = False
            mean = (w.t() @ fs) / mass.clamp_min(1e-12)[:, None]  # (classes, channels)
            keys = self.pal_key(mean)
            out.append((keys, present))
        return out

    def _palette_mix(self, logq: Tensor, f_dst: Tensor, keys: Tensor, present: Tensor) -> Tensor:
        """log((1 − g) q + g π) of a set of one field's pixels: π the softmax of the pixels' BSE
        context against the palette's keys over the present classes, g a learnt gate on the
        pixel's context and on how far the palette's best class is above the candidates' own."""
        if not bool(present.any()):
            return logq
        if not torch.is_grad_enabled():
            return self._palette_mix_predicting(logq, f_dst, keys, present)
        s = (self.pal_query(f_dst) @ keys.t()) / self.palette_dim**0.5  # (P, classes)
        s = s.masked_fill(~present, float("-inf"))
        pi = torch.softmax(s, -1)
        q = logq.exp()
        s0 = s.masked_fill(~present, 0.0)
        lift = s.max(-1).values - (q * s0).sum(-1)  # the palette's best over the candidates' mix
        ent = (q * logq).sum(-1)  # −entropy of the candidates' mix
        g = torch.sigmoid(self.pal_gate(torch.cat([f_dst, lift[:, None], ent[:, None]], -1)))
        return torch.log(((1 - g) * q + g * pi).clamp_min(1e-6))

    def _palette_mix_predicting(self, logq: Tensor, f_dst: Tensor, keys: Tensor, present: Tensor) -> Tensor:
        """:meth:`_palette_mix` without gradients, on the present classes only: the same
        mixture (to float rounding, tests/test_fusion_palette.py) at a fraction of the cost when
        the palette holds few of many classes (the physics' library: a dozen of 200).  Training
        keeps the dense form, so a recipe's weights do not depend on this path."""
        cols = present.nonzero().squeeze(1)
        kt = keys[cols].t() / self.palette_dim**0.5  # (d, present)
        # W_q and the keys folded into one (C, present) product; plain addmm (measured several
        # times faster than nn.Linear's path for these shapes on CPU)
        s = torch.addmm(self.pal_query.bias @ kt, f_dst, self.pal_query.weight.t() @ kt)
        pi = (s - s.amax(-1, keepdim=True)).exp_()
        pi = pi.div_(pi.sum(-1, keepdim=True))  # softmax over the present classes
        q = logq.exp()
        lift = s.amax(-1) - (q[:, cols] * s).sum(-1)
        ent = (q * logq).sum(-1)
        gw, gb = self.pal_gate.weight, self.pal_gate.bias
        g = torch.sigmoid_(torch.addmm(gb, torch.cat([f_dst, lift[:, None], ent[:, None]], -1), gw.t()))
        out = q.mul_(1 - g)
        out.index_add_(1, cols, pi.mul_(g))
        return out.clamp_min_(1e-6).log_()

    def _cross(
        self, f_dst: Tensor, f_src: Tensor, pix_idx: Tensor, feats: Tensor, eds_prob: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(log q (P, classes), mixed attention (P, k)) of a set of pixels: layers 2 and 3."""
        src = f_src[pix_idx.clamp_min(0)] if len(f_src) else f_dst.new_zeros((*pix_idx.shape, f_dst.shape[1]))
        edge = torch.cat([feats, f_dst[:, None, :] * src], -1)
        alpha, mixed = gatv2_candidates_layer(  # W_dst f_dst + b and W_edge edge inside the kernel
            f_dst,
            self.lin_dst.weight,
            self.lin_dst.bias,
            self.lin_src(f_src),
            edge,
            self.lin_edge.weight,
            pix_idx,
            self.att,
            eds_prob[:, None, :],  # (N, 1, classes): one set of values for all heads
            impl=self.impl,
        )  # α (P, k, H), Σ_j α^h_ij p_j (P, H, classes)
        w = torch.softmax(self.head_mix, 0)
        a = (alpha * w).sum(-1)  # (P, k)
        q = (mixed * w[:, None]).sum(1)
        return torch.log(q.clamp_min(1e-6)), a


def calibrated_log_q(
    logq: Tensor, temperature: float = 1.0, platt: tuple[float, float] | None = None
) -> Tensor:
    """The calibrated log-probabilities of (..., classes) ``logq``: first log softmax(log q / T),
    then, with ``platt`` (a, b), the top class's probability c made σ(a · logit(c) + b)
    (:func:`mingraph.common.calibration.platt_confidence`) and the others scaled to share the
    rest, c kept just above s / (1 − c + s) (s the second's: there the two tie) so that the class
    never changes.
    Unchanged (the same tensor) at T = 1 without ``platt``.

    Examples
    --------
    >>> lq = torch.log(torch.tensor([[0.9, 0.06, 0.04]]))
    >>> calibrated_log_q(lq) is lq
    True
    >>> q = calibrated_log_q(lq, platt=(1.0, -1.0)).exp()
    >>> round(float(q.sum()), 6), bool(q[0, 0] < 0.9), round(float(q[0, 1] / q[0, 2]), 6)
    (1.0, True, 1.5)
    """
    if temperature != 1.0:
        logq = torch.log_softmax(logq / temperature, -1)
    if platt is None:
        return logq
    a, b = platt
    q = logq.exp()
    top = q.topk(min(2, q.shape[-1]), -1)
    c = top.values[..., 0]
    s = top.values[..., 1] if q.shape[-1] > 1 else torch.zeros_like(c)
    eps = 1e-6
    cc = c.clamp(eps, 1 - eps)
    c_new = torch.sigmoid(a * torch.log(cc / (1 - cc)) + b)
    floor = torch.minimum(s / (1 - c + s).clamp_min(eps) * (1 + 1e-3), c)  # a hair above a tie with s
    c_new = torch.maximum(c_new, floor)  # the top class stays on top
    others = q.scatter(-1, top.indices[..., :1], 0.0)
    rest = others.sum(-1).clamp_min(1e-12)  # summed, not 1 − c: no cancellation when c is near 1
    out = others * ((1 - c_new) / rest)[..., None]
    out.scatter_(-1, top.indices[..., :1], c_new[..., None])
    return torch.log(out.clamp_min(1e-12))


def batch_inputs(
    graphs: list[CandidateGraph], eds_probs: list[np.ndarray], device="cpu"
) -> tuple[Tensor, ...]:
    """Stack fields of one size into the tensors :meth:`FusionModel.forward` takes."""
    h, w = graphs[0].shape
    idx, pix, off = [], [], 0
    for t, g in enumerate(graphs):
        idx.append(g.idx if off == 0 else np.where(g.idx >= 0, g.idx + off, -1))
        pix.append(t * h * w + g.eds_rc[:, 0] * w + g.eds_rc[:, 1])
        off += g.n_eds
    as_t = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a), dtype=dt, device=device)  # noqa: E731
    stack = (lambda a: a[0][None]) if len(graphs) == 1 else np.stack  # one field: no copies  # noqa: E731
    return (
        as_t(stack([g.bse for g in graphs]), torch.float32),
        as_t(stack([g.valid for g in graphs]), torch.float32),
        as_t(stack(idx), torch.int64),
        as_t(stack([g.features for g in graphs]), torch.float32),
        as_t(np.concatenate(eds_probs).reshape(-1, eds_probs[0].shape[-1]), torch.float32),
        as_t(np.concatenate(pix), torch.int64),
    )


@torch.no_grad()
def predict_fusion(
    model: FusionModel, graph: CandidateGraph, eds_prob: np.ndarray, palette_skip: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(class map (H, W) int64, confidence (H, W) float32) of one field; −1 where no point exists
    (``palette_skip``: :meth:`FusionModel.forward`)."""
    if graph.n_eds == 0:
        return np.full(graph.shape, -1, np.int64), np.zeros(graph.shape, np.float32)
    model.eval()
    logp, _ = model(
        *batch_inputs([graph], [eds_prob], next(model.parameters()).device), palette_skip=palette_skip
    )  # CPU or CUDA
    conf, cls = logp[0].exp().max(-1)
    return cls.cpu().numpy().astype(np.int64), conf.cpu().numpy().astype(np.float32)
