"""What the benches time: every intervention, by the engine and by its peers, on two kinds of run.

- ``pipeline_settings``: whole generations (text encoder, transformer steps, VAE) of one edit on a
  ``Model`` — the tiny pipeline on CPU, a random-weight pipeline at FLUX.2-klein-9B shapes on a GPU;
- ``transformer_settings``: one generation's transformer forwards of a random-weight transformer
  on synthetic inputs — the FLUX.2-klein-9B shape on a GPU, a CPU-sized one elsewhere.

Both share one list (``_shared``): clean; capture and patch of the text stream at the colour site
by the engine and its peers (plain hooks, nnsight); the four knockouts of Tables 2/D1 in each
engine mode (``split`` default, ``flex``, ``dense``) and the authors' additive-mask processors;
reference drops at several cutoffs. Each builder adds its own extras (T2I lens run, masking drop,
a batch). Every setting names its operation (``op``) and who does it (``by``), so tables can put
the peers side by side without parsing names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import torch

import mechinterp as mi
from mechinterp.bench import peers
from mechinterp.bench.cost import KO_SETTINGS
from mechinterp.bench.harness import AUTHORS, DENSE, ENGINE, FLEX, HOOKS, NNSIGHT, Setting
from mechinterp.engine.hooks import Intervene

_MODE_BY = {"split": ENGINE, "flex": FLEX, "dense": DENSE}
_MODE_NOTE = {"split": "split (default)", "flex": "flex_attention BlockMask",
              "dense": "dense boolean mask (engine reference)"}


def bench_sites(table) -> tuple[str, list[str]]:
    """The colour site (the paper's ``single.9`` where it exists, the same depth otherwise) and the
    reference-drop cutoffs (first severed block): the second block, the first single block (the
    paper's cutoff 8), the colour site and the last block."""
    blocks = [s.name for s in table.blocks]
    colour = "single.9" if "single.9" in blocks else blocks[min(len(blocks) - 1, round(17 / 32 * len(blocks)))]
    first_single = blocks[table.n_double] if table.n_single else blocks[-1]
    return colour, list(dict.fromkeys([blocks[min(1, len(blocks) - 1)], first_single, colour, blocks[-1]]))


class _Run(ABC):
    """How one generation of a bench runs: under the engine, inside a peer's context, or via nnsight."""

    def __init__(self, transformer, table, layout, steps: int):
        self.transformer, self.table, self.layout, self.steps = transformer, table, layout, steps

    @abstractmethod
    def engine(self, items=(), ko: str = "auto", rd: str = "truncate") -> Callable[[], object]:
        """One generation under ``Intervene(items)`` with the given knockout and reference-drop modes."""

    @abstractmethod
    def raw(self, context: Callable[[], object]) -> Callable[[], object]:
        """One generation with no engine involved, inside ``context()`` (a peer's hooks or processors)."""

    @abstractmethod
    def nnsight(self, module, values: Sequence[torch.Tensor]) -> tuple[Callable, Callable]:
        """nnsight's capture and patch runs of ``module``'s text rows (values per step for the patch)."""


@dataclass(frozen=True)
class Include:
    """What a bench times besides clean, capture and patch by the engine: the engine's knockout
    ``modes``, the authors' additive-mask knockouts, the capture/patch peers, which knockouts and
    which reference-drop cutoffs (``None``: ``bench_sites``'s)."""

    modes: tuple[str, ...] = ("split", "dense")
    authors: bool = True
    capture_peers: tuple[str, ...] = (HOOKS, NNSIGHT)
    knockouts: tuple[str, ...] = KO_SETTINGS
    cutoffs: tuple[str, ...] | None = None


def _shared(run: _Run, values: Sequence[torch.Tensor], patch_values, inc: Include) -> list[Setting]:
    """The settings both benches have (see the module docstring)."""
    colour, default_cutoffs = bench_sites(run.table)
    module, n_text = run.table.module(run.transformer, colour), run.layout.text_len
    where = f"text at {colour}, every step"
    out = [Setting("clean", "clean", run.engine(), op="clean")]
    cap, pat = [mi.Capture(colour, "text")], [mi.Patch(colour, patch_values, "text")]
    out += [Setting("capture", "capture", run.engine(cap), where, op="capture"),
            Setting("patch", "patch", run.engine(pat), where, op="patch")]
    if HOOKS in inc.capture_peers:
        out += [Setting("capture [hooks]", "capture", run.raw(lambda: peers.hooks_capture(module, n_text)),
                        "plain forward hook, rows copied to host", op="capture", by=HOOKS),
                Setting("patch [hooks]", "patch",
                        run.raw(lambda: peers.hooks_patch(run.transformer, module, n_text, values)),
                        "plain forward hook, output cloned", op="patch", by=HOOKS)]
    if NNSIGHT in inc.capture_peers:
        missing = peers.nnsight_missing()
        if missing is None:
            capture, patch = run.nnsight(module, values)
            out += [Setting("capture [nnsight]", "capture", capture, "nnsight trace, rows copied to host", op="capture",
                            by=NNSIGHT),
                    Setting("patch [nnsight]", "patch", patch, "nnsight trace, in-place", op="patch", by=NNSIGHT)]
        else:
            print(f"[bench] nnsight peer skipped: {missing}")
    for ko in inc.knockouts:
        name, (src, dst) = f"ko:{ko}", ko.split("->")
        for mode in inc.modes:
            label = name if mode == "split" else f"{name} [{mode}]"
            out.append(Setting(label, "knockout", run.engine([mi.Knockout(src, dst)], ko=mode), _MODE_NOTE[mode], op=name,
                               by=_MODE_BY[mode]))
        if inc.authors:
            ctx = lambda s=src, d=dst: peers.additive_mask_knockout(run.transformer, run.layout, s, d)  # noqa: E731
            out.append(Setting(f"{name} [authors]", "knockout", run.raw(ctx), "additive -inf mask, stock processors",
                               op=name, by=AUTHORS))
    for cut in default_cutoffs if inc.cutoffs is None else inc.cutoffs:
        out.append(Setting(f"ref_drop@{cut}", "ref_drop", run.engine([mi.RefDrop(cut)]), "truncating",
                           op=f"ref_drop@{cut}"))
    return out


class _PipelineRun(_Run):
    def __init__(self, model: mi.Model, edit: mi.Edit):
        super().__init__(model.transformer, model.table, model.layout(edit), edit.steps)
        self.model, self.edit = model, edit

    def engine(self, items=(), ko="auto", rd="truncate", edit=None):
        model, e = self.model, edit or self.edit

        moded = model.with_modes(ko, rd)

        def run():
            return moded.generate(e, items)

        return run

    def raw(self, context):
        @torch.inference_mode()
        def run():
            with context():
                return self.model.pipe(**self.model.pipeline_kwargs(self.edit), output_type="np")

        return run

    def nnsight(self, module, values):
        nn = peers.NnsightPipeline(self.model.pipe, module, self.layout.text_len)
        # a fresh generator per run
        kwargs = lambda: dict(self.model.pipeline_kwargs(self.edit), output_type="np")  # noqa: E731
        return (lambda: nn.capture(kwargs(), self.steps)), (lambda: nn.patch(kwargs(), self.steps, values))


def pipeline_settings(model: mi.Model, edit: mi.Edit, include: Include = Include(), *, batch: int = 4,
                      extras: bool = True) -> list[Setting]:
    """The settings of the pipeline bench for ``edit`` on ``model`` (``extras``: lens run and masking drop)."""
    from mechinterp.experiments import lens_edit

    colour, default_cutoffs = bench_sites(model.table)
    source = model.generate(edit.replace(seed=edit.seed + 100), capture=[mi.Capture(colour, "text")])
    values = [source.captures[(colour, s)].to(model.device) for s in range(edit.steps)]
    run = _PipelineRun(model, edit)
    out = _shared(run, values, source.captures, include)
    if extras:
        cut = default_cutoffs[1]
        out.append(Setting(f"ref_drop@{cut} [mask]", "ref_drop", run.engine([mi.RefDrop(cut)], ko="dense", rd="mask"),
                           "masking reference", op=f"ref_drop@{cut}", by=DENSE))
        lens = [mi.Patch("embed", source.captures[(colour, 0)], "text")]
        out.append(Setting("lens", "lens", run.engine(lens, edit=lens_edit(edit)),
                           "T2I lens run (no reference), embed overwritten", op="lens"))
    if batch > 1:
        edits = [edit.replace(seed=edit.seed + i) for i in range(batch)]
        out.append(Setting(f"batch x{batch} (per edit)", "batch", lambda: model.generate_many(edits),
                           f"{batch} seeds in one call; time divided by {batch}", per_call=batch, op="batch"))
    return out


class _TransformerRun(_Run):
    def __init__(self, transformer, layout, inputs: dict, steps: int):
        super().__init__(transformer, mi.SiteTable.for_transformer(transformer), layout, steps)
        self.inputs = inputs

    def engine(self, items=(), ko="auto", rd="truncate", kw=None, layout=None):
        kw, layout = kw or self.inputs, layout or self.layout

        @torch.inference_mode()
        def run():
            with Intervene(self.transformer, layout, items, table=self.table, n_steps=self.steps, knockout_mode=ko,
                           ref_drop_mode=rd) as ctx:
                for _ in range(self.steps):
                    self.transformer(**kw)
            return ctx

        return run

    def raw(self, context, kw=None):
        kw = kw or self.inputs

        @torch.inference_mode()
        def run():
            with context():
                return [self.transformer(**kw) for _ in range(self.steps)]

        return run

    def nnsight(self, module, values):
        nn = peers.NnsightTransformer(self.transformer, module, self.layout.text_len)
        return (torch.inference_mode()(lambda: nn.capture(self.inputs, self.steps)),
                torch.inference_mode()(lambda: nn.patch(self.inputs, self.steps, values[0])))


def transformer_settings(transformer, layout, inputs: dict, steps: int = 4, include: Include = Include(), *,
                         batch: int = 2) -> list[Setting]:
    """The settings of the transformer bench: ``steps`` forwards of ``transformer`` per run."""
    run = _TransformerRun(transformer, layout, inputs, steps)
    x = inputs["hidden_states"]
    values = torch.zeros(layout.text_len, transformer.inner_dim, device=x.device, dtype=x.dtype)
    out = _shared(run, [values] * steps, values, include)
    n = layout.n_image
    lens_kw = dict(inputs, hidden_states=x[:, :n], img_ids=inputs["img_ids"][:, :n])
    lens_layout = type(layout)(layout.text_len, layout.n_image, 0, groups={**layout.groups, "ref": layout.groups["ref"][:0]})
    out.append(Setting("lens", "lens", run.engine([mi.Patch("embed", values, "text")], kw=lens_kw, layout=lens_layout),
                       "T2I lens forwards (no reference), embed overwritten", op="lens"))
    if batch > 1:
        rep = lambda t: t.expand(batch, *t.shape[1:]).contiguous()  # noqa: E731
        batched = dict(inputs, hidden_states=rep(x), encoder_hidden_states=rep(inputs["encoder_hidden_states"]),
                       timestep=inputs["timestep"].expand(batch).contiguous())
        out.append(Setting(f"batch x{batch} (per edit)", "batch", run.engine(kw=batched),
                           f"{batch} edits in one forward; time divided by {batch}", per_call=batch, op="batch"))
    return out
