"""User claim files for tests: the text of a ``*.claims.toml`` holding one colour knockout claim, as a lab
would write it (the same schema the registry uses), so tests of the plugin, the faults and the wheel drive
user claims through one definition."""

from __future__ import annotations

KNOCKOUT_CLAIM = """\
schema = 1

[[claim]]
id = "{cid}"
statement = "{statement}"
family = "color"
tasks = ["color"]
experiment = {{ name = "knockout", source = "ref", dest = "{dest}", blocks = "all" }}
question = "{question}"
markers = ["color", "knockout"]
hypothesis = "rate >= 0.5"
"""


def knockout_claim_toml(dest: str = "text.template", cid: str | None = None, question: str = "ko_text_padding.color",
                        statement: str = "Blocking the chat-template tokens from the reference destroys the colour.") -> str:
    """A ``*.claims.toml`` text with one colour claim: the reference->``dest`` knockout destroys the colour
    (``rate >= 0.5``), id ``knockout[ref-><dest>]-color`` unless ``cid`` is given."""
    return KNOCKOUT_CLAIM.format(cid=cid or f"knockout[ref->{dest}]-color", statement=statement, dest=dest,
                                 question=question)
