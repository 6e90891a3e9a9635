"""What the identity organisms learn: reproduce the exact glyph of the reference (``mechinterp.tasks.glyph``).

With a glyph reference and the instruction "draw the same glyph" the target is that glyph's
square; without a reference it is the empty square (every cell off), and with neither reference
nor instruction the empty background, so reference-free runs (the T2I Lens baseline) have a
defined, glyph-free answer. Training glyphs are drawn fresh every batch from the 12,870 balanced
glyphs, except the family's own (``glyph_set()``), which the baseline and the claims run on: a
shipped identity organism copies glyphs it never saw.
"""

from __future__ import annotations

import random

import torch

from mechinterp.engine.layout import build_layout
from mechinterp.tasks.glyph import INSTRUCTION, BACKGROUND, glyph_set, random_glyph, render_glyph


def _pixels(pipe, images) -> torch.Tensor:
    return torch.cat([pipe.image_processor.preprocess(im) for im in images])


def vae_images(size: int, n: int = 64) -> list:
    """Images the VAE's latent statistics are fitted to: glyphs, the empty square, the background."""
    from PIL import Image

    rng = random.Random(0)
    return ([render_glyph(random_glyph(rng), size, size) for _ in range(n)]
            + [render_glyph(None, size, size), Image.new("RGB", (size, size), BACKGROUND)])


class GlyphData:
    """The glyph task's training data: text embeddings, ids and layouts fixed; glyphs encoded per batch."""

    def __init__(self, pipe, arch, seed: int = 0):
        size, L = arch.image_size, arch.text_len
        self.pipe, self.size = pipe, size
        self.rng = random.Random(seed)
        self.held = set(glyph_set())
        with torch.no_grad():
            self.empty = self._encode([render_glyph(None, size, size)])[0]
            from PIL import Image

            self.blank = self._encode([Image.new("RGB", (size, size), BACKGROUND)])[0]
            emb, txt_ids = pipe.encode_prompt([INSTRUCTION, ""], device="cpu", max_sequence_length=L,
                                              text_encoder_out_layers=arch.text_out_layers)
            any_ref = pipe._encode_vae_image(_pixels(pipe, [render_glyph(None, size, size)]), None)
        self.text = {INSTRUCTION: emb[0], "": emb[1]}
        self.txt_ids = txt_ids[0]
        self.img_ids = pipe._prepare_latent_ids(any_ref)[0]
        self.ref_ids = pipe._prepare_image_ids([any_ref])[0]
        factor = pipe.vae_scale_factor * 2
        self.layout = build_layout(pipe.tokenizer, INSTRUCTION, INSTRUCTION, L, size, size, (size, size), factor)
        self.no_ref_layout = build_layout(pipe.tokenizer, INSTRUCTION, INSTRUCTION, L, size, size, None, factor)

    def _encode(self, images) -> torch.Tensor:
        pipe = self.pipe
        return pipe._pack_latents(pipe._encode_vae_image(_pixels(pipe, images), None))

    def _glyph(self) -> tuple[int, ...]:
        while True:
            g = random_glyph(self.rng)
            if g not in self.held:
                return g

    @torch.no_grad()
    def examples(self, step: int, cfg, gen: torch.Generator):
        """One batch: (targets, references or None, text, layout); every ``no_ref_every``-th batch has
        no reference (the empty square; half of it no instruction either: the empty background)."""
        B = cfg.batch
        if cfg.no_ref_every > 0 and step % cfg.no_ref_every == cfg.no_ref_every - 1:
            prompt = torch.rand(B, generator=gen) < 0.5
            x0 = torch.stack([self.empty if p else self.blank for p in prompt.tolist()])
            text = torch.stack([self.text[INSTRUCTION if p else ""] for p in prompt.tolist()])
            return x0, None, text, self.no_ref_layout
        # glyphs drawn from this data's own seeded stream: the generator state the checkpoint keeps
        # is ``gen``'s, so a resumed run re-seeds this stream from the step
        self.rng.seed(int(torch.randint(2**31, (1,), generator=gen)))
        lat = self._encode([render_glyph(self._glyph(), self.size, self.size) for _ in range(B)])
        return lat, lat.clone(), self.text[INSTRUCTION].expand(B, -1, -1), self.layout
