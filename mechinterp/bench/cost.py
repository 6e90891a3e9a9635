"""GPU cost of a full reproduction of Tables 1–3 and D1, with baseline sharing.

Generation counts come from the paper's task counts (§4.1, §4.3.2; the released task and pair
lists): 2,875 tasks in all. With sharing, every task's clean I2I generation is made once and
carries the captures its lens and patching runs need; the T2I lens baseline depends only on
(seed, size) and is shared across tasks; then each table adds only its intervened runs.

Per-generation time is measured where a GPU bench result is given, and projected from FLOPs
otherwise (``flops / (peak × mfu)`` plus a fixed per-generation overhead for the text encoder,
VAE and host work). Every number says which it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mechinterp.bench.shapes import KLEIN_9B, TOKENS_1024, forward_flops

PAPER_H200_HOURS = 18.0
PAPER_TASKS = 2875
H200_BF16_DENSE_TFLOPS = 989.0

#: task counts per family (paper §4.1 and the released task lists)
LENS_TASKS = {"colour": 320, "style": 450, "add": 789, "remove": 726, "humans": 90}
KO_TASKS = {"colour": 320, "style": 450, "humans": 90}
KO_SETTINGS = ("ref->text", "ref->text.padding", "ref->text.content", "ref->image")  # Table 2 + D1
PATCH_PAIRS = {"colour": 448, "style": 450, "humans": 450}
PATCH_VARIANTS = ("text", "text.padding", "text.content")  # Table 3


@dataclass
class Line:
    """One line of the cost table: what, how many generations, seconds each, and where that came from."""

    what: str
    generations: int
    seconds_each: float
    source: str

    @property
    def hours(self) -> float:
        """GPU-hours of this line."""
        return self.generations * self.seconds_each / 3600


def projected_generation_seconds(mfu: float, overhead_s: float, steps: int = 4, with_ref: bool = True,
                                 cutoff_flat: int | None = None) -> float:
    """Projected seconds of one 1024² generation of FLUX.2-klein-9B on an H200 at ``mfu``."""
    t = TOKENS_1024
    flops = forward_flops(KLEIN_9B, t["text"], t["image"], t["ref"] if with_ref else 0, cutoff_flat)
    return steps * flops / (H200_BF16_DENSE_TFLOPS * 1e12 * mfu) + overhead_s


def generation_seconds(clean_s: float | None = None, ratios: dict[str, float] | None = None, *, mfu: float = 0.45,
                       overhead_s: float = 0.25) -> dict[str, tuple[float, str]]:
    """Seconds per generation of each kind of run, with where the number came from.

    Kinds: ``clean`` (an I2I baseline), ``t2i`` (a T2I lens baseline), ``lens`` (4 steps),
    ``lens1`` (same-layer, 1 step), ``ko:<source->dest>``, ``patch``. ``clean_s`` and ``ratios``
    (setting → × clean, as the transformer bench names them) are measured values when given;
    otherwise FLOP projections at ``mfu`` plus ``overhead_s`` per generation.
    """
    ratios = ratios or {}
    measured = clean_s is not None
    projected_clean = projected_generation_seconds(mfu, overhead_s)
    clean = clean_s if measured else projected_clean
    lens = projected_generation_seconds(mfu, overhead_s, with_ref=False)
    src = "measured" if measured else f"projected (FLOPs, MFU {mfu:.2f}, +{overhead_s}s/gen)"

    def kind(name: str, default: float) -> tuple[float, str]:
        ratio, how = (ratios[name], "measured ratio") if name in ratios else (default, "projected ratio")
        return clean * ratio, f"{src}; {how}"

    out = {"clean": (clean, src), "lens": kind("lens", lens / projected_clean)}
    # a T2I lens baseline is a lens run without its patch: as measured for the lens where it was
    if "lens" in ratios:
        out["t2i"], out["t2i1"] = out["lens"], (out["lens"][0] / 4, f"{out['lens'][1]} / 4")
    else:
        out["t2i"] = (lens, "projected")
        out["t2i1"] = (projected_generation_seconds(mfu, overhead_s, steps=1, with_ref=False), "projected")
    # the colour lens is one step of four: a quarter of a (measured or projected) lens run
    one_step = projected_generation_seconds(mfu, overhead_s, steps=1, with_ref=False) / projected_clean
    out["lens1"] = (clean * ratios["lens"] / 4, f"{src}; measured ratio / 4") if "lens" in ratios else kind("lens1", one_step)
    out.update({f"ko:{ko}": kind(f"ko:{ko}", 1.0) for ko in KO_SETTINGS})
    out["patch"] = kind("patch", 1.0)
    return out


def generation_ratios(generation_s: float, transformer_s: float, transformer_ratios: dict[str, float]) -> dict[str, float]:
    """Whole-generation ratios from transformer-bench ratios: an intervention changes only the
    transformer's share (``transformer_s`` of a clean ``generation_s``); text encoder and VAE stay."""
    return {k: (generation_s + (r - 1.0) * transformer_s) / generation_s for k, r in transformer_ratios.items()}


def reproduction(clean_s: float | None = None, ratios: dict[str, float] | None = None, *, mfu: float = 0.45,
                 overhead_s: float = 0.25, distinct_t2i_baselines: int = 50) -> list[Line]:
    """The lines of a full reproduction (every task of every cell; seconds from :func:`generation_seconds`)."""
    sec = generation_seconds(clean_s, ratios, mfu=mfu, overhead_s=overhead_s)
    lines = [Line("I2I baselines (shared; carry lens/patch captures)", PAPER_TASKS, *sec["clean"]),
             Line("T2I lens baselines (shared per seed and size)", distinct_t2i_baselines, *sec["t2i"])]
    n_lens4 = sum(v for k, v in LENS_TASKS.items() if k != "colour")
    lines.append(Line("Table 1 lens runs (4 steps)", n_lens4, *sec["lens"]))
    lines.append(Line("Table 1 colour lens runs (same-layer, 1 step)", LENS_TASKS["colour"], *sec["lens1"]))
    lines += t2i_prompt_lines(n_lens4, LENS_TASKS["colour"], sec)
    n_ko = sum(KO_TASKS.values())
    lines += [Line(f"Table 2/D1 knockout {ko}", n_ko, *sec[f"ko:{ko}"]) for ko in KO_SETTINGS]
    lines += [Line(f"Table 3 patching [{variant}]", sum(PATCH_PAIRS.values()), *sec["patch"]) for variant in PATCH_VARIANTS]
    return lines


def t2i_prompt_lines(n_lens4: float, n_lens1: float, sec: dict) -> list[Line]:
    """The lens judge's Image 2: one T2I of each lens task's own prompt (seed + 1, the lens's steps)."""
    return [Line(f"T2I baselines of the instruction prompt ({label})", round(n), *sec[key])
            for label, n, key in (("lens judge's Image 2, 4 steps", n_lens4, "t2i"),
                                  ("colour lens judge's Image 2, 1 step", n_lens1, "t2i1")) if n]


def break_even_mfu(target_hours: float, overhead_s: float = 0.25) -> float:
    """The MFU at which the projected reproduction takes ``target_hours`` (bisection)."""
    lo, hi = 0.01, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        total = sum(line.hours for line in reproduction(mfu=mid, overhead_s=overhead_s))
        lo, hi = (mid, hi) if total > target_hours else (lo, mid)
    return hi


def gpu_label(device_name: str) -> str:
    """The short name of a GPU for an hours column: ``"NVIDIA H100 80GB HBM3"`` -> ``"H100"`` (the
    first model number in the name; the whole name when there is none)."""
    found = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", device_name)
    return found.group(1) if found else device_name.strip()


#: what a cost table's numbers are: FLOP projections, projections from times measured on a GPU, or a
#: dry run's tiny-model CPU timings (a check of the arithmetic, no figure of any GPU)
KINDS = ("projected", "measured", "dry-run")


def report(lines: list[Line], target_hours: float = 3.0, *, gpu: str = "H200", kind: str = "projected") -> str:
    """The cost table as Markdown, in ``gpu``-hours (the GPU that measured or is projected), with the
    total against the paper's 18 H200-hours; ``kind`` (``KINDS``) says what the numbers are, and a
    dry run gives no verdict on the ``target_hours`` goal."""
    if kind not in KINDS:
        raise ValueError(f"unknown cost kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    unit = f"{gpu}-hours"
    out = [f"| run | generations | s / generation | {unit} | source |", "|---|---:|---:|---:|---|"]
    for line in lines:
        out.append(f"| {line.what} | {line.generations} | {line.seconds_each:.2f} | {line.hours:.2f} | {line.source} |")
    total = sum(line.hours for line in lines)
    gens = sum(line.generations for line in lines)
    out.append(f"| **total** | {gens} | | **{total:.2f}** | paper: {PAPER_H200_HOURS:.0f} H200-hours for {PAPER_TASKS} tasks |")
    verdict = "meets" if total <= target_hours else "misses"
    if kind == "dry-run":
        out.append(f"\nDry run: {total:.2f} hours from tiny-model {gpu} timings; this checks the arithmetic only, "
                   f"it is no GPU figure and says nothing about the {target_hours:g}-hour goal.")
    elif kind == "measured":
        out.append(f"\nProjected from times measured on the {gpu}: {total:.2f} {unit} for the whole run = "
                   f"{total / PAPER_H200_HOURS:.0%} of the paper's {PAPER_H200_HOURS:.0f} H200-hours; on this projection "
                   f"it {verdict} the {target_hours:g}-hour goal.")
    else:
        out.append(f"\nProjected {total:.2f} {unit} = {total / PAPER_H200_HOURS:.0%} of the paper's; {verdict} the "
                   f"{target_hours:g}-hour goal.")
    return "\n".join(out)
