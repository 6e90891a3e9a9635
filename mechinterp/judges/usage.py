"""Token and dollar accounting for a judge run.

Prices are list prices in USD per million tokens, documented constants to update when
Anthropic's price list changes (https://docs.anthropic.com/en/docs/about-claude/pricing).
Claude Opus 4.7: $5 input, $25 output, prompt-cache writes (5 min) 1.25x input, cache reads
0.1x input; the Message Batches API halves every price.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mechinterp.judges.client import ClientReply


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def dollars(self, input_tokens: int, output_tokens: int, cache_write_tokens: int = 0, cache_read_tokens: int = 0) -> float:
        """Dollars for these token counts at list price (synchronous API)."""
        return (input_tokens * self.input + output_tokens * self.output + cache_write_tokens * self.cache_write
                + cache_read_tokens * self.cache_read) / 1e6


PRICES_USD_PER_MTOK: dict[str, Price] = {
    "claude-opus-4-7": Price(input=5.0, output=25.0, cache_write=6.25, cache_read=0.50),
}
#: the Message Batches API bills every token class at half price
BATCH_DISCOUNT = 0.5


def price_for(model: str) -> Price | None:
    """The price of ``model`` (exact id, or the id a dated snapshot starts with)."""
    if model in PRICES_USD_PER_MTOK:
        return PRICES_USD_PER_MTOK[model]
    for known, price in PRICES_USD_PER_MTOK.items():
        if model.startswith(known):
            return price
    return None


def reply_cost(model: str, reply: ClientReply, batch: bool = False) -> float | None:
    """Dollars one reply cost, or None when the model has no price here."""
    price = price_for(model)
    if price is None:
        return None
    dollars = price.dollars(reply.input_tokens, reply.output_tokens, reply.cache_creation_input_tokens,
                            reply.cache_read_input_tokens)
    return dollars * (BATCH_DISCOUNT if batch else 1.0)


class Usage:
    """Running totals of API replies paid for in this run (cached verdicts cost nothing).
    Thread-safe; ``cost_usd`` is None when the model has no known price."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.calls = 0
        self.abstentions = 0
        self.reasked = 0  # calls repeated because the reply before was no verdict (malformed, empty, pass=2)
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_creation_input_tokens = 0
        self.cache_read_input_tokens = 0
        self.cost_usd: float | None = 0.0 if price_for(model) else None
        self._lock = threading.Lock()

    def add(self, reply: ClientReply, batch: bool = False, abstained: bool = False) -> None:
        """Count one reply once."""
        cost = reply_cost(self.model, reply, batch)
        with self._lock:
            self.calls += 1
            self.abstentions += int(abstained)
            self.input_tokens += reply.input_tokens
            self.output_tokens += reply.output_tokens
            self.cache_creation_input_tokens += reply.cache_creation_input_tokens
            self.cache_read_input_tokens += reply.cache_read_input_tokens
            if self.cost_usd is not None and cost is not None:
                self.cost_usd += cost

    def add_reask(self) -> None:
        """Count one reply that was no verdict and is asked again (its call is counted by :meth:`add`)."""
        with self._lock:
            self.reasked += 1

    def as_dict(self) -> dict:
        """The totals as a plain dict (for reports)."""
        return {k: getattr(self, k) for k in (
            "model", "calls", "abstentions", "reasked", "input_tokens", "output_tokens",
            "cache_creation_input_tokens", "cache_read_input_tokens", "cost_usd")}

    def __repr__(self) -> str:
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (f"Usage(model={self.model!r}, calls={self.calls}, in={self.input_tokens}, "
                f"out={self.output_tokens}, cost={cost})")
