"""Every term a notebook sets in italics, and every abbreviation it uses, is in the glossary.

The notebooks' convention: *italics* mark a term the reader can look up in
``notebooks/glossary.md``, nothing else (quotations of the post go in quotation marks, a column
of a printed table in backticks, emphasis in bold). The glossary defines a term in a bold
heading (``**Ack, early ack, late ack.**``) or in italics inside an entry's text
(``a *binding* ties...``); an abbreviation in its list of abbreviations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
GLOSSARY = NOTEBOOKS_DIR / "glossary.md"

#: CommonMark's emphasis, roughly: no space just inside the markers, none of them inside a word.
ITALIC = re.compile(
    r"(?<![*\w])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![*\w])|(?<![_\w])_(?!\s)([^_\n]+?)(?<!\s)_(?![_\w])"
)
BOLD = re.compile(r"\*\*(.+?)\*\*")
ABBREVIATION = re.compile(r"\b[A-Z][A-Z0-9]+(?=s?\b)")
#: Not prose: code spans, link targets, HTML comments.
NOT_PROSE = re.compile(r"`[^`\n]*`|\]\([^)]*\)|<!--.*?-->", re.S)


def _prose(text: str) -> str:
    return NOT_PROSE.sub("", text)


def _key(term: str) -> str:
    """A term as looked up: lower case, one space between words, no plural ``s``."""
    words = " ".join(term.lower().replace("-", " ").split())
    return words[:-1] if words.endswith("s") and not words.endswith("ss") else words


def _italics(text: str) -> list[str]:
    return [a or b for a, b in ITALIC.findall(BOLD.sub("", _prose(text)))]


def glossary_terms() -> set[str]:
    text = _prose(GLOSSARY.read_text())
    terms = set()
    for heading in BOLD.findall(text):
        for part in re.split(r",|;|\(|\)|/| or | and ", heading.rstrip(".")):
            if part.strip():
                terms.add(_key(part))
    terms |= {_key(t) for t in _italics(text)}
    return terms


def glossary_abbreviations() -> set[str]:
    return set(ABBREVIATION.findall(_prose(GLOSSARY.read_text())))


def _markdown(path: Path) -> list[tuple[int, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_italic_term_is_in_the_glossary(path):
    terms = glossary_terms()
    missing = [
        f"cell {i}: *{t}*"
        for i, text in _markdown(path)
        for t in _italics(text)
        if _key(t) not in terms
    ]
    assert not missing, (
        f"{path.name}: italics mark glossary terms only; define these in notebooks/glossary.md "
        f"or write them another way: {missing}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_abbreviation_is_in_the_glossary(path):
    known = glossary_abbreviations()
    missing = sorted(
        {a for _, text in _markdown(path) for a in ABBREVIATION.findall(_prose(text))} - known
    )
    assert not missing, f"{path.name}: add these to the glossary's abbreviations: {missing}"


def test_the_checks_find_what_they_look_for():
    """The patterns on a sample: italics in either spelling, not bold, not code; plurals."""
    sample = "a *prefetch* and _early ack_, **bold**, `*code*`, 2 * 3 * 4, snake_case_name"
    assert _italics(sample) == ["prefetch", "early ack"]
    assert _key("Publisher confirms") == _key("publisher confirm")
    assert ABBREVIATION.findall("AMQP and URLs, not Celery") == ["AMQP", "URL"]
    assert "prefetch" in glossary_terms()
