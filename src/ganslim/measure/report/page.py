"""HTML building blocks of the report page: the template, tables that never overflow, values with units, images.

Every table sits in a ``<div class="table-wrap">`` that scrolls sideways on its own when it is wider than the
page, and long cells (paths) wrap, so the page itself never scrolls sideways.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; line-height: 1.45;
       max-width: 1100px; margin: 0 auto; padding: 1.2em 1.5em 3em; }}
h1 {{ font-size: 1.45em; margin: 0.2em 0; overflow-wrap: anywhere; }}
h2 {{ font-size: 1.15em; margin: 1.6em 0 0.4em; border-bottom: 1px solid #e3e3e3; padding-bottom: 0.2em; }}
h3 {{ font-size: 1em; margin: 1em 0 0.3em; }}
.subtitle {{ color: #555; margin: 0 0 1em; overflow-wrap: anywhere; }}
.note, .caption {{ color: #555; font-size: 0.88em; max-width: 75em; }}
.table-wrap {{ max-width: 100%; overflow-x: auto; margin: 0.4em 0 0.8em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #dcdcdc; padding: 0.3em 0.65em; text-align: right; vertical-align: top;
          overflow-wrap: anywhere; }}
thead th {{ background: #f2f2f4; }}
tbody th {{ text-align: left; font-weight: normal; background: #fafafa; }}
table.summary {{ font-size: 0.95em; }}
table.summary td.ratio {{ font-weight: 600; background: #f4f8f4; }}
table.grid {{ table-layout: fixed; width: 100%; border: none; }}
table.grid th {{ background: none; border: none; text-align: center; font-weight: 600; padding: 0.2em; }}
table.grid td {{ border: none; padding: 2px; }}
table.grid img {{ display: block; width: 100%; height: auto; outline: 1px solid #e2e2e2; outline-offset: -1px; }}
img.pixelated {{ image-rendering: pixelated; }}
img.plot {{ max-width: 100%; }}
code {{ background: #f2f2f4; padding: 0 0.25em; border-radius: 3px; font-size: 0.9em; overflow-wrap: anywhere; }}
ul.todo {{ font-size: 0.88em; padding-left: 1.4em; }}
ul.todo li {{ margin: 0.3em 0; }}
.curves {{ display: flex; flex-wrap: wrap; gap: 0.6em 1.2em; }}
figure.curve {{ margin: 0; width: 240px; }}
figure.curve figcaption {{ font-size: 0.85em; }}
figure.curve figcaption span {{ color: #777; }}
figure.curve svg {{ background: #fafafa; border: 1px solid #e2e2e2; }}
figure.curve polyline {{ fill: none; stroke: #2f6fd0; stroke-width: 1.5; }}
details {{ margin: 1.6em 0 0; }}
details summary {{ cursor: pointer; font-weight: 600; }}
pre {{ background: #f7f7f9; padding: 0.8em; font-size: 0.82em; white-space: pre-wrap; overflow-wrap: anywhere; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
# Images smaller than this are scaled up without smoothing (blurred 64 px thumbnails hide what the model did).
PIXELATED_BELOW = 128
GRID_CELL_PX = 256  # widest a grid image is shown


def page(title: str, body: Sequence[str]) -> str:
    return PAGE.format(title=html.escape(title), body="\n".join(body))


def section(title: str, *body: str) -> str:
    return "\n".join([f"<h2>{html.escape(title)}</h2>", *body])


def paragraph(text: str, css: str = "note") -> str:
    """A paragraph of already-escaped HTML."""
    return f'<p class="{css}">{text}</p>'


def code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "", ratio_column: bool = False) -> str:
    """A table of plain-text cells; the first cell of each row is its header. ``ratio_column``: the last column
    is highlighted (the student-vs-teacher ratios)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [f"<th>{html.escape(row[0])}</th>"]
        for index, cell in enumerate(row[1:], start=1):
            ratio = ratio_column and index == len(row) - 1
            cells.append(f'<td class="ratio">{html.escape(cell)}</td>' if ratio else f"<td>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    css_attr = f' class="{css}"' if css else ""
    return (f'<div class="table-wrap"><table{css_attr}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table></div>")


def image_grid_table(columns: Sequence[tuple[str, Tensor]]) -> str:
    """Images as a table: a header row of column labels, then one row per image (each cell an inline PNG)."""
    from ganslim.data.images import tensor_to_image

    side = columns[0][1].shape[-1]
    css = ' class="pixelated"' if side < PIXELATED_BELOW else ""
    head = "".join(f'<th scope="col">{html.escape(label)}</th>' for label, _ in columns)
    rows = []
    for index in range(columns[0][1].shape[0]):
        cells = "".join(f'<td><img{css} alt="{html.escape(label)}, image {index + 1}" '
                        f'src="{_png_data(tensor_to_image(images[index]))}"></td>' for label, images in columns)
        rows.append(f"<tr>{cells}</tr>")
    width = len(columns) * GRID_CELL_PX
    return (f'<div class="table-wrap"><table class="grid" style="max-width: {width}px">\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table></div>")


def png_file(path: Path, alt: str) -> str:
    """An image file inline (base64), as wide as the page allows."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _png_data(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def folded(summary: str, body: str) -> str:
    return f"<details>\n<summary>{html.escape(summary)}</summary>\n{body}\n</details>"


def preformatted(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


# ----------------------------------------------------------------------------------------------------------
# Values with units


def si(value: float) -> str:
    """A count with an SI prefix: 2_770_000_000 -> ``2.77G``, 137_000 -> ``137K``."""
    from ganslim.compress.search import format_macs

    return format_macs(value)


def format_value(key: str, value: Any) -> str:
    """A results-file value for a reader: counts of parameters / MACs with SI prefixes, PSNR in dB, floats to 4
    significant digits; the unit is read from the key's last part (``student.macs_published``, ``val.psnr``)."""
    name = key.rsplit(".", 1)[-1].lower()
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(key, item) for item in value)
    if isinstance(value, (int, float)) and ("macs" in name or name == "params"):
        return si(value)
    if name.startswith("psnr") and isinstance(value, (int, float, str)):
        return f"{value:.2f} dB" if isinstance(value, (int, float)) else f"{value} dB"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_table(results: Any) -> str:
    """A results file (``summary.json``, ``eval.json``) as tables: objects of models (``teacher``, ``student``)
    side by side as columns, their flattened keys as rows; the other values as key | value rows."""
    if not isinstance(results, dict):
        return preformatted(json.dumps(results, indent=1))
    columns = {key: _flatten(value) for key, value in results.items()
               if isinstance(value, dict) and value and not all(isinstance(v, str) for v in value.values())}
    scalars = _flatten({key: value for key, value in results.items() if key not in columns})
    parts = []
    if columns:
        keys = list(dict.fromkeys(key for flat in columns.values() for key in flat))
        rows = [[key, *(format_value(key, flat.get(key)) for flat in columns.values())] for key in keys]
        parts.append(table(["", *columns], rows))
    if scalars:
        parts.append(table(["key", "value"], [[key, format_value(key, value)] for key, value in scalars.items()]))
    return "\n".join(parts)


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
