"""The report's tables as a reader sees them, and what makes one clean."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# columns that count something: their cells are whole numbers (a fold may be k_r<repeat>)
COUNT_HEADERS = re.compile(r"(n|n_\w+|videos|patients|fold|best_epoch|epochs?)")


def assert_clean(table: dict) -> None:
    """Every header cell names its column, counts are whole numbers (not 28.0), and no cell shows a Python
    object where a value belongs. In the data table (id "data") every class column is a count.

    Args:
        table: {"id", "cls", "rows": [[cell text, ...], ...]}, the header row first.
    """
    header, *rows = table["rows"]
    where = f"table {table['id'] or table['cls']} {header}"
    assert header and all(header), f"{where}: an empty header cell"
    counts = [i for i, name in enumerate(header) if COUNT_HEADERS.fullmatch(name)]
    if table["id"] == "data" or "partition" in header:
        counts = list(range(header.index("partition") + 1, len(header)))
    for row in rows:
        assert not any("object at 0x" in cell or "<built-in" in cell for cell in row), f"{where}: {row}"
        for i in counts:
            assert re.fullmatch(r"\d+(_r\d+)?", row[i]), f"{where}: {header[i]} = {row[i]!r} is not a count"


def html_tables(text: str) -> list[dict]:
    """Every <table> of an HTML text as assert_clean takes it (cells' text, stripped), without a browser."""
    parser = _Tables()
    parser.feed(text)
    return parser.tables


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"id": attrs.get("id") or "", "cls": attrs.get("class") or "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
