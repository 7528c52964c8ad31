"""Plain-text and Markdown tables, and human units for durations."""

from collections.abc import Sequence


def duration(ms: float) -> str:
    """`0.0071` -> `7.1 µs`, `4.4` -> `4.40 ms`, `3100` -> `3.10 s`."""
    if ms < 1:
        return f"{ms * 1000:.3g} µs"
    if ms < 1000:
        return f"{ms:.3g} ms" if ms >= 10 else f"{ms:.2f} ms"
    return f"{ms / 1000:.2f} s"


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Columns padded to their widest cell; as a Markdown table when `markdown`."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).ljust(w) for c, w in zip(cells, widths, strict=True)]
        return f"| {' | '.join(padded)} |" if markdown else "  ".join(padded).rstrip()

    lines = [line(headers)]
    lines.append(
        f"|{'|'.join('-' * (w + 2) for w in widths)}|"
        if markdown
        else "  ".join("-" * w for w in widths)
    )
    lines.extend(line(row) for row in rows)
    return "\n".join(lines)
